"""Fast table I/O on both dialects: ``bulk_insert``, ``read_sql``, ``read_table`` and the COPY statements.

PostgreSQL writes go through ``COPY FROM STDIN`` (binary when :mod:`.pgcopy` can encode the frame,
else CSV) and whole-table reads through ``COPY TO STDOUT``; SQLite uses ``executemany`` and plain
queries. Timestamps on SQLite are UTC text ``YYYY-MM-DD HH:MM:SS``, booleans 0/1.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from typing import IO, Any

import pandas as pd
from sqlalchemy import Connection, text

from include.segmentation.store.engine import is_sqlite
from include.segmentation.store.identifiers import WarehouseError, validate_identifier
from include.segmentation.store.pgcopy import READ_FIXED, binary_payloads, days_to_dates, decode_fixed, fixed_select


def _prepare_frame(df: pd.DataFrame, sqlite: bool) -> pd.DataFrame:
    """Timestamps to UTC (text on SQLite), booleans to 0/1 on SQLite, missing values as None."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(s.dtype):
            s = pd.to_datetime(s, utc=True)
            if sqlite:
                out[col] = s.dt.strftime("%Y-%m-%d %H:%M:%S").astype(object).where(s.notna(), None)
            else:
                out[col] = s.dt.strftime("%Y-%m-%d %H:%M:%S+00").astype(object).where(s.notna(), None)
        elif pd.api.types.is_bool_dtype(s.dtype) and sqlite:
            out[col] = s.astype("Int64")
    return out


def bulk_insert(conn: Connection, schema: str, table: str, df: pd.DataFrame, columns: Iterable[str] | None = None) -> int:
    """Append ``df`` to ``schema.table`` inside the caller's transaction.

    PostgreSQL uses ``COPY FROM STDIN``: in binary format when every target column has a type the
    binary encoder knows (text, integers, floats, boolean, date, timestamps), which avoids
    formatting and parsing every number as text (1M rows x 24 columns: a few seconds instead of
    half a minute); otherwise, or when a value does not convert cleanly, CSV, so PostgreSQL
    reports bad values itself. SQLite uses ``executemany``. Returns the number of rows written.
    """
    validate_identifier(schema, "schema")
    validate_identifier(table, "table")
    cols = [validate_identifier(c, "column") for c in (list(columns) if columns is not None else list(df.columns))]
    if df.empty:
        return 0
    if is_sqlite(conn):
        frame = _prepare_frame(df[cols], True)
        placeholders = ", ".join("?" for _ in cols)
        sql = f"INSERT INTO {schema}.{table} ({', '.join(cols)}) VALUES ({placeholders})"
        records = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
        conn.exec_driver_sql(sql, list(records))
        return len(frame)
    types = pg_column_types(conn, schema, table)
    payloads = binary_payloads(df[cols], [types.get(c, types.get(c.lower(), "")) for c in cols])
    if payloads is not None:
        return sum(copy_binary(conn, schema, table, cols, payload) for payload in payloads)
    frame = _prepare_frame(df[cols], False)
    payload = frame.to_csv(index=False, header=False, na_rep="\\N", lineterminator="\n")
    return copy_csv(conn, schema, table, cols, payload)


def pg_column_types(conn: Connection, schema: str, table: str) -> dict[str, str]:
    """PostgreSQL type name (``pg_type.typname``: text, float8, int4, ...) of each column of ``schema.table``, in order."""
    validate_identifier(schema, "schema")
    validate_identifier(table, "table")
    rows = conn.execute(
        text(
            "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = to_regclass(:q) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        ),
        {"q": f"{schema}.{table}"},
    ).all()
    return {str(name): str(typ) for name, typ in rows}


def copy_binary(conn: Connection, schema: str, table: str, columns: list[str], payload: bytes) -> int:
    """COPY a binary-format payload into ``schema.table`` on PostgreSQL."""
    return _copy_in(conn, schema, table, columns, "FORMAT binary", io.BytesIO(payload))


def copy_csv(conn: Connection, schema: str, table: str, columns: list[str], payload: str) -> int:
    """COPY a CSV payload (``\\N`` for NULL) into ``schema.table`` on PostgreSQL."""
    return _copy_in(conn, schema, table, columns, "FORMAT csv, NULL '\\N'", io.StringIO(payload))


def psycopg2_connection(conn: Connection) -> Any:
    """The psycopg2 connection under ``conn`` (PostgreSQL only).

    Typed ``Any``: psycopg2 ships no type information, and SQLAlchemy's generic DB-API protocol
    lacks what this module uses (cursors as context managers, ``copy_expert``).
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None  # only None once the connection is closed or invalidated
    return raw


def _copy_in(conn: Connection, schema: str, table: str, columns: list[str], options: str, data: IO[Any]) -> int:
    """``COPY schema.table (columns) FROM STDIN WITH (options)`` reading ``data``; returns the row count."""
    validate_identifier(schema, "schema")
    validate_identifier(table, "table")
    cols = ", ".join(validate_identifier(c, "column") for c in columns)
    with psycopg2_connection(conn).cursor() as cur:
        cur.copy_expert(f"COPY {schema}.{table} ({cols}) FROM STDIN WITH ({options})", data)
        return cur.rowcount


def _copy_out(conn: Connection, query: str, options: str = "") -> io.BytesIO:
    """The output of ``COPY (query) TO STDOUT [WITH (options)]``, in memory."""
    buf = io.BytesIO()
    with psycopg2_connection(conn).cursor() as cur:
        cur.copy_expert(f"COPY ({query}) TO STDOUT" + (f" WITH ({options})" if options else ""), buf)
    return buf


def read_sql(conn: Connection, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run a parameterised query and return a DataFrame."""
    result = conn.execute(text(sql), dict(params or {}))
    columns = list(result.keys())
    # Plain DB-API tuples: the same values as SQLAlchemy rows (text() has no result processors),
    # but pandas builds the frame from them several times faster.
    if result.cursor is not None:
        rows = result.cursor.fetchall()
        result.close()
    else:
        rows = result.all()
    return pd.DataFrame(rows, columns=columns)


_TEXT_ESCAPE = re.compile(r"\\([\\bfnrtv])")
_TEXT_UNESCAPE = {"\\": "\\", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def read_table(conn: Connection, schema: str, table: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Every row of ``schema.table`` (optionally only ``columns``) as a DataFrame, quickly.

    On PostgreSQL the rows are streamed with ``COPY ... TO STDOUT`` instead of fetched one by one:
    numbers, booleans, dates and timestamps in binary (every field fixed-width, so numpy reads
    them without parsing), text columns as text parsed by pandas' C reader, both in one
    REPEATABLE READ transaction so they see the same rows in the same order (1M rows x 28
    columns: about 2 s instead of 15 s for ``read_sql``). Inside a caller's transaction only the
    text form is used. Values match ``read_sql``'s (text -> str, NULL -> NaN/None, integers ->
    int64, or float64 with NULLs, booleans, dates as ``datetime.date``, timestamps as
    ``datetime64[us, UTC]``), except that ``numeric`` columns come back as float64. On SQLite it
    is ``read_sql``.
    """
    validate_identifier(schema, "schema")
    validate_identifier(table, "table")
    wanted = [validate_identifier(c, "column") for c in columns] if columns is not None else None
    if is_sqlite(conn):
        return read_sql(conn, f"SELECT {', '.join(wanted) if wanted else '*'} FROM {schema}.{table}")
    if conn.in_transaction():
        return _read_table_text(conn, schema, table, _table_types(conn, schema, table, wanted))
    with conn.begin():
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        types = _table_types(conn, schema, table, wanted)
        fixed = {n: t for n, t in types.items() if t in READ_FIXED}
        if not fixed:
            return _read_table_text(conn, schema, table, types)
        texts = {n: t for n, t in types.items() if n not in fixed}
        # Two plain sequential scans of one snapshot return the rows in the same order.
        conn.exec_driver_sql("SET LOCAL synchronize_seqscans = off")
        conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        numbers = _read_table_fixed(conn, schema, table, fixed)
        words = _read_table_text(conn, schema, table, texts) if texts else None
    n = len(next(iter(numbers.values())))
    if words is not None and len(words) != n:  # pragma: no cover - one snapshot guarantees it
        raise WarehouseError(f"table {schema}.{table}: the two reads saw {n} and {len(words)} rows")
    data = {}
    for name in types:
        if name in numbers:
            values = numbers[name]
            data[name] = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(values)
        else:
            data[name] = words[name].reset_index(drop=True)  # type: ignore[index]
    return pd.DataFrame(data)


def _table_types(conn: Connection, schema: str, table: str, wanted: list[str] | None) -> dict[str, str]:
    """The PostgreSQL types of ``wanted`` (default: all) columns of ``schema.table``; clear errors if missing."""
    types = pg_column_types(conn, schema, table)
    if not types:
        raise WarehouseError(f"table {schema}.{table} does not exist")
    if wanted is None:
        return types
    missing = [c for c in wanted if c not in types]
    if missing:
        raise WarehouseError(f"table {schema}.{table} has no column(s) {', '.join(missing)}")
    return {c: types[c] for c in wanted}


def _read_table_fixed(conn: Connection, schema: str, table: str, types: dict[str, str]) -> dict[str, Any]:
    """Read non-text columns with a binary COPY whose rows are all the same size; decode with numpy."""
    buf = _copy_out(conn, f"SELECT {fixed_select(types)} FROM {schema}.{table}", "FORMAT binary")
    return decode_fixed(buf.getvalue(), types, f"table {schema}.{table}")


def _read_table_text(conn: Connection, schema: str, table: str, types: dict[str, str]) -> pd.DataFrame:
    """Read ``types``' columns of ``schema.table`` with one text-format COPY parsed by ``pandas.read_csv``."""
    select = []
    for name, typ in types.items():
        if typ in ("bool",):
            select.append(f"{name}::int")
        elif typ == "date":
            select.append(f"({name} - DATE '1970-01-01')")
        elif typ in ("timestamp", "timestamptz"):
            select.append(f"(EXTRACT(EPOCH FROM {name}) * 1000000)::int8")
        elif typ in ("int2", "int4", "int8", "float4", "float8", "numeric", "oid"):
            select.append(name)
        else:
            select.append(f"{name}::text")
    buf = _copy_out(conn, f"SELECT {', '.join(select)} FROM {schema}.{table}")
    names = list(types)
    texts = [n for n, t in types.items() if _is_text(t)]
    if buf.tell() == 0:
        return pd.DataFrame({n: pd.Series(dtype="str" if n in texts else "float64") for n in names})
    buf.seek(0)
    frame = pd.read_csv(
        buf, sep="\t", header=None, names=names, quoting=csv.QUOTE_NONE, keep_default_na=False,
        na_values={n: ["\\N"] if n in texts else ["\\N", "NaN"] for n in names},
        dtype={n: "str" for n in texts}, encoding="utf-8", low_memory=False, skip_blank_lines=False,
    )
    escaped = b"\\" in buf.getvalue()  # COPY escapes tabs, newlines and backslashes in text with a backslash
    for name, typ in types.items():
        col = frame[name]
        if name in texts:
            if escaped and col.str.contains("\\", regex=False).any():
                frame[name] = col.str.replace(_TEXT_ESCAPE, lambda m: _TEXT_UNESCAPE[m.group(1)], regex=True)
        elif typ == "bool":
            frame[name] = col.astype(bool) if not col.isna().any() else col.map(
                lambda v: None if pd.isna(v) else bool(v)).astype(object)
        elif typ == "date":
            frame[name] = days_to_dates(col)
        elif typ in ("timestamp", "timestamptz"):
            frame[name] = pd.to_datetime(col, unit="us", utc=typ == "timestamptz").astype(
                "datetime64[us, UTC]" if typ == "timestamptz" else "datetime64[us]")
        elif typ in ("float4", "float8", "numeric"):
            frame[name] = pd.to_numeric(col).astype("float64")
    return frame


def _is_text(typ: str) -> bool:
    """Whether a column of PostgreSQL type ``typ`` is read as text (everything not numeric, bool or temporal)."""
    return typ not in ("bool", "date", "timestamp", "timestamptz", "int2", "int4", "int8", "float4", "float8",
                       "numeric", "oid")
