"""Loading synthetic data into the warehouse: argument validation, then chunk after chunk into
``raw.*`` and ``evaluation.planted_types`` in ONE transaction (PostgreSQL: COPY; SQLite: executemany).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from include.segmentation.sources import contract
from include.segmentation.sources.synthetic.catalogue import ALL_TYPES, COLUMNS, MAX_CUSTOMERS
from include.segmentation.sources.synthetic.chunk import ChunkArrays, build_chunk
from include.segmentation.sources.synthetic.encode import csv_payload, string_columns
from include.segmentation.sources.synthetic.frames import frames
from include.segmentation.sources.synthetic.payload import fast_events, fast_transactions
from include.segmentation.store import WarehouseError, bulk_insert, describe, is_sqlite
from include.segmentation.store.tableio import psycopg2_connection

# (table, schema) in load order
_TABLES = (("customers", "raw"), ("transactions", "raw"), ("browsing_events", "raw"), ("planted_types", "evaluation"))
_TARGETS = tuple(f"{schema}.{name}" for name, schema in _TABLES)


def validate_arguments(customers: int, days: int, end_date: date, seed: int, chunk_customers: int, today: date | None = None) -> None:
    """Raise ``ValueError`` with a clear message when the generator's arguments make no sense."""
    for name, value, low in (("customers", customers, 1), ("days", days, 30), ("chunk_customers", chunk_customers, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        if value < low:
            what = {"days": "days of history"}.get(name, name)
            raise ValueError(f"{what} must be at least {low}, got {value}")
    if customers > MAX_CUSTOMERS:
        raise ValueError(f"customers must be at most {MAX_CUSTOMERS:,}, got {customers:,}")
    if isinstance(end_date, datetime) or not isinstance(end_date, date):
        raise ValueError(f"end_date must be a date (YYYY-MM-DD), got {end_date!r}")
    today = today or datetime.now(timezone.utc).date()
    if end_date > today + timedelta(days=1):
        raise ValueError(f"end_date {end_date.isoformat()} is in the future (today is {today.isoformat()} UTC); use a past date")


def _has_rows(conn: Connection, table: str) -> bool:
    return conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None


def _copy(conn: Connection, table: str, columns: list[str], payload: bytes) -> None:
    """COPY a CSV payload (``\\N`` = NULL) with large reads (faster than 8 KiB ones)."""
    if not payload:
        return
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
    dbapi = conn.dialect.loaded_dbapi  # .dbapi, known to be loaded: the connection is open
    cur = psycopg2_connection(conn).cursor()
    try:
        cur.copy_expert(sql, io.BytesIO(payload), size=1 << 20)
    except dbapi.Error as exc:  # the same exception classes as any other statement (IntegrityError ...)
        raise DBAPIError.instance(sql, None, exc, dbapi.Error, dialect=conn.dialect) from exc
    finally:
        cur.close()


def _write_chunk(conn: Connection, ch: ChunkArrays) -> dict[str, int]:
    """Insert one chunk; returns the rows written per table."""
    if is_sqlite(conn):
        chunk_frames = frames(ch)
        return {name: bulk_insert(conn, schema, name, chunk_frames[name], COLUMNS[name]) for name, schema in _TABLES}
    small = string_columns(ch, ("customers", "planted_types"))
    payloads = {
        "customers": csv_payload(small["customers"]).encode("utf-8"),
        "transactions": fast_transactions(ch),
        "browsing_events": fast_events(ch),
        "planted_types": csv_payload(small["planted_types"]).encode("utf-8"),
    }
    for name, schema in _TABLES:
        _copy(conn, f"{schema}.{name}", COLUMNS[name], payloads[name])
        payloads[name] = b""  # free memory early
    n_customers = int(ch.cust_number.size)
    return {
        "customers": n_customers,
        "transactions": int(ch.ln_order.size),
        "browsing_events": int(ch.ev_number.size),
        "planted_types": n_customers,
    }


def _prepare(conn: Connection, engine: Engine, replace: bool) -> None:
    """Session settings, then empty the tables (``replace``) or refuse filled ones; drop the indexes."""
    sqlite = is_sqlite(conn)
    if not sqlite:
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
    if replace:
        if sqlite:
            for table in _TARGETS:
                conn.exec_driver_sql(f"DELETE FROM {table}")
        else:
            conn.exec_driver_sql("TRUNCATE " + ", ".join(_TARGETS))
    else:
        busy = [t for t in _TARGETS if _has_rows(conn, t)]
        if busy:
            raise WarehouseError(
                f"{', '.join(busy)} already hold data in {describe(engine)}; "
                "refusing to add synthetic data to it (use --replace / replace=True to empty the tables first)"
            )
    for ix in contract.RAW_INDEXES:
        ix.drop(conn, checkfirst=True)


def _chunk_layout(customers: int, chunk_customers: int) -> list[tuple[int, int, int]]:
    """``(chunk_index, first_customer, n_customers)`` of every chunk."""
    n_chunks = (customers + chunk_customers - 1) // chunk_customers
    return [(i, 1 + i * chunk_customers, min(chunk_customers, customers - i * chunk_customers)) for i in range(n_chunks)]


def _load_chunks(
    conn: Connection,
    layout: list[tuple[int, int, int]],
    days: int,
    end_date: date,
    seed: int,
    say: Callable[[str], None],
    started: float,
    price_response: bool = False,
) -> tuple[dict[str, int], dict[str, int]]:
    """Build and write every chunk; returns the row counts and the customers per planted type."""
    counts = {"customers": 0, "transactions": 0, "browsing_events": 0, "planted_types": 0}
    type_counts = dict.fromkeys(ALL_TYPES, 0)
    for i, first, size in layout:
        ch = build_chunk(i, first, size, days, end_date, seed, price_response)
        for k, v in _write_chunk(conn, ch).items():
            counts[k] += v
        for code, c in enumerate(np.bincount(ch.cust_type, minlength=len(ALL_TYPES))):
            type_counts[ALL_TYPES[code]] += int(c)
        say(
            f"chunk {i + 1}/{len(layout)}: {counts['customers']:,} customers, {counts['transactions']:,} lines, "
            f"{counts['browsing_events']:,} events, {time.perf_counter() - started:.1f}s"
        )
    return counts, type_counts


def _finish(conn: Connection, say: Callable[[str], None]) -> None:
    """Rebuild the dropped indexes and refresh the planner statistics."""
    say("rebuilding indexes")
    for ix in contract.RAW_INDEXES:
        ix.create(conn)
    if is_sqlite(conn):
        conn.exec_driver_sql("ANALYZE raw")
        conn.exec_driver_sql("ANALYZE evaluation")
    else:
        conn.exec_driver_sql("ANALYZE raw.customers, raw.transactions, raw.browsing_events, evaluation.planted_types")


def generate_to_warehouse(
    engine: Engine,
    customers: int,
    days: int,
    end_date: date,
    seed: int,
    chunk_customers: int = 50_000,
    replace: bool = False,
    progress: Callable[[str], None] | None = None,
    price_response: bool = False,
) -> dict[str, Any]:
    """Generate ``customers`` customers with ``days`` days of history ending on ``end_date`` and load
    them into ``raw.*`` (ground truth into ``evaluation.planted_types``).

    Creates the source contract if missing (its own small transaction). Everything else runs in
    ONE transaction: emptying the tables (``replace=True``), dropping the window indexes, loading
    chunk after chunk (PostgreSQL: COPY; SQLite: executemany), rebuilding the indexes and ANALYZE.
    If anything fails the transaction rolls back and the warehouse is exactly as before. While it
    runs, other sessions wait for the raw tables (the index drop locks them).

    Without ``replace``, non-empty raw tables (or planted types) are refused with a
    ``WarehouseError``. Returns the row counts, the shares of planted types and the seconds taken.
    ``price_response=True`` plants price-responsive quantities (``pricing``; off by default).
    """
    validate_arguments(customers, days, end_date, seed, chunk_customers)
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    contract.create_source_contract(engine)
    layout = _chunk_layout(customers, chunk_customers)
    with engine.begin() as conn:
        _prepare(conn, engine, replace)
        counts, type_counts = _load_chunks(conn, layout, days, end_date, seed, say, started, price_response)
        _finish(conn, say)
    s_date = end_date + timedelta(days=1)
    return {
        **counts,
        "planted_type_counts": type_counts,
        "chunks": len(layout),
        "seed": seed,
        "days": days,
        "end_date": end_date.isoformat(),
        "first_day": (s_date - timedelta(days=days)).isoformat(),
        "snapshot_date": s_date.isoformat(),
        "warehouse": describe(engine),
        "seconds": round(time.perf_counter() - started, 2),
        **({"price_response": True} if price_response else {}),
    }
