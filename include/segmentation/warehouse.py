"""Warehouse access: one SQLAlchemy engine for PostgreSQL (production) and SQLite (embedded default).

Schemas: ``raw`` (source contract), ``segmentation`` (published output) and ``evaluation``
(planted types of synthetic data, never read by the pipeline). On PostgreSQL they are real
schemas. On SQLite each schema is a separate database file ATTACHed under the schema's name,
next to the main file: ``warehouse.db`` gets ``warehouse.raw.db``, ``warehouse.segmentation.db``
and ``warehouse.evaluation.db``. SQL written as ``raw.customers`` therefore runs unchanged on both.

Timestamps on SQLite are stored as UTC text ``YYYY-MM-DD HH:MM:SS`` so that they sort and compare
as strings and ``julianday()`` understands them.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url

SCHEMAS: tuple[str, ...] = ("raw", "segmentation", "evaluation")
DEFAULT_SQLITE_PATH = Path(__file__).resolve().parents[2] / "data" / "warehouse.db"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class WarehouseError(RuntimeError):
    """A warehouse problem the user can act on (bad URL, missing table, bad identifier)."""


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise: config never reaches SQL raw."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise WarehouseError(f"invalid {what} {name!r}: use letters, digits and _ (max 63)")
    return name


def connection_to_url(
    conn_type: str,
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    port: int | None = None,
    schema: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> URL:
    """Turn Airflow-connection fields into a SQLAlchemy URL.

    ``postgres``/``postgresql`` -> ``postgresql+psycopg2``; ``sqlite`` -> the file in ``host``
    (or in ``schema``, as Airflow parses ``sqlite:////abs/path.db``). ``extra`` may carry libpq
    options (``sslmode`` ...), passed as query parameters.
    """
    kind = (conn_type or "").lower().replace("-", "_")
    if kind in {"postgres", "postgresql", "postgresql+psycopg2"}:
        query = {k: str(v) for k, v in (extra or {}).items() if k in _PG_QUERY_KEYS}
        return URL.create(
            "postgresql+psycopg2",
            username=login or None,
            password=password or None,
            host=host or "127.0.0.1",
            port=int(port) if port else 5432,
            database=schema or "postgres",
            query=query,
        )
    if kind == "sqlite":
        path = host or ""
        if not path and schema:
            path = schema if schema.startswith("/") else "/" + schema
        if not path:
            raise WarehouseError("sqlite warehouse connection needs the file path in 'host'")
        return URL.create("sqlite", database=path)
    raise WarehouseError(f"unsupported warehouse connection type {conn_type!r} (use postgres or sqlite)")


_PG_QUERY_KEYS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options"}


def resolve_url(url: str | URL | None = None) -> URL:
    """The warehouse URL: explicit argument, else ``WAREHOUSE_URL``, else ``AIRFLOW_CONN_WAREHOUSE``
    (URI or JSON form), else the embedded SQLite file ``data/warehouse.db``."""
    if url:
        return _normalise(make_url(url) if isinstance(url, str) else url)
    if os.environ.get("WAREHOUSE_URL"):
        return _normalise(make_url(os.environ["WAREHOUSE_URL"]))
    conn = os.environ.get("AIRFLOW_CONN_WAREHOUSE")
    if conn:
        return parse_airflow_conn_env(conn)
    return URL.create("sqlite", database=str(DEFAULT_SQLITE_PATH))


def parse_airflow_conn_env(value: str) -> URL:
    """Parse an ``AIRFLOW_CONN_*`` value (JSON or URI) the way the pipeline needs it."""
    value = value.strip()
    if value.startswith("{"):
        data = json.loads(value)
        return connection_to_url(
            data.get("conn_type", ""),
            host=data.get("host"),
            login=data.get("login"),
            password=data.get("password"),
            port=data.get("port"),
            schema=data.get("schema"),
            extra=data.get("extra") if isinstance(data.get("extra"), dict) else None,
        )
    u = make_url(value)
    if u.drivername.startswith("sqlite"):
        return _normalise(u)
    return connection_to_url(
        u.drivername.split("+")[0], host=u.host, login=u.username, password=u.password,
        port=u.port, schema=u.database, extra=dict(u.query),
    )


def _normalise(u: URL) -> URL:
    if u.drivername in {"postgres", "postgresql"}:
        return u.set(drivername="postgresql+psycopg2")
    return u


def is_sqlite(bind: Engine | Connection) -> bool:
    """True when the warehouse is the embedded SQLite flavour."""
    return bind.dialect.name == "sqlite"


def sqlite_schema_path(main_db: str | Path, schema: str) -> Path:
    """The file that holds ``schema`` for the SQLite warehouse whose main file is ``main_db``."""
    p = Path(main_db)
    return p.with_name(f"{p.stem}.{schema}{p.suffix or '.db'}")


def get_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """Create the warehouse engine; on SQLite the schema files are attached on every connection."""
    u = resolve_url(url)
    if u.drivername.startswith("sqlite"):
        db = u.database
        if not db or db == ":memory:":
            raise WarehouseError("the SQLite warehouse must be a file (schemas are attached files)")
        Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"timeout": 60}, **kwargs)

        @event.listens_for(engine, "connect")
        def _attach(dbapi_conn: Any, _record: Any) -> None:
            # Autocommit at the driver level; SQLAlchemy emits BEGIN itself (see below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 60000")
            for schema in SCHEMAS:
                cur.execute("ATTACH DATABASE ? AS " + schema, (str(sqlite_schema_path(db, schema)),))
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock up front, so concurrent writers queue instead of failing.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(u, **kwargs)


def describe(bind: Engine | Connection) -> str:
    """A loggable description of the warehouse, never with its password."""
    u = bind.engine.url if isinstance(bind, Connection) else bind.url
    return u.render_as_string(hide_password=True)


def ensure_schemas(engine: Engine) -> None:
    """Create the raw/segmentation/evaluation schemas (PostgreSQL); SQLite attaches them on connect."""
    if is_sqlite(engine):
        with engine.begin():
            pass
        return
    with engine.begin() as conn:
        for schema in SCHEMAS:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {validate_identifier(schema)}")


def table_exists(bind: Engine | Connection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists."""
    validate_identifier(schema, "schema")
    validate_identifier(table, "table")
    if is_sqlite(bind):
        sql = text(f"SELECT 1 FROM {schema}.sqlite_master WHERE type IN ('table','view') AND name = :t")
        params: dict[str, Any] = {"t": table}
    else:
        sql = text(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = :s AND table_name = :t"
        )
        params = {"s": schema, "t": table}
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return conn.execute(sql, params).first() is not None
    return bind.execute(sql, params).first() is not None


def ts_param(bind: Engine | Connection, value: datetime | date) -> Any:
    """A timestamp bound parameter that compares correctly with stored timestamps on either dialect."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    if is_sqlite(bind):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value


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

    PostgreSQL uses ``COPY FROM STDIN`` (hundreds of thousands of rows a second); SQLite uses
    ``executemany``. Returns the number of rows written.
    """
    validate_identifier(schema, "schema")
    validate_identifier(table, "table")
    cols = [validate_identifier(c, "column") for c in (list(columns) if columns is not None else list(df.columns))]
    if df.empty:
        return 0
    frame = _prepare_frame(df[cols], is_sqlite(conn))
    if is_sqlite(conn):
        placeholders = ", ".join("?" for _ in cols)
        sql = f"INSERT INTO {schema}.{table} ({', '.join(cols)}) VALUES ({placeholders})"
        records = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
        conn.exec_driver_sql(sql, list(records))
        return len(frame)
    payload = frame.to_csv(index=False, header=False, na_rep="\\N", lineterminator="\n")
    return copy_csv(conn, schema, table, cols, payload)


def copy_csv(conn: Connection, schema: str, table: str, columns: list[str], payload: str) -> int:
    """COPY a CSV payload (``\\N`` for NULL) into ``schema.table`` on PostgreSQL."""
    validate_identifier(schema, "schema")
    validate_identifier(table, "table")
    cols = ", ".join(validate_identifier(c, "column") for c in columns)
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.copy_expert(
            f"COPY {schema}.{table} ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
            io.StringIO(payload),
        )
        return cur.rowcount


def read_sql(conn: Connection, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run a parameterised query and return a DataFrame."""
    result = conn.execute(text(sql), dict(params or {}))
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
