"""Extract: per-customer aggregates of the trailing window, computed inside the warehouse.

Raw event rows never reach Python: GROUP BYs over ``[S - window_days, S)`` write a staging table
of one row per customer (``CREATE TABLE ... AS SELECT``), and only that table is read by the
feature stage.

Each aggregate is written once (``_TX_SPEC``, ``_EV_SPEC``: column and expression) and rendered
for the dialect (``_render``). SQLite writes the transactions and the events aggregate into
staging tables with a unique index on customer_id, joins them (index lookups: linear in the
customers; joining CTEs instead was quadratic) and drops them. PostgreSQL runs the aggregates
as three statements on three connections at once, each into an UNLOGGED staging table, then
combines them with the customers' attributes: the exact distinct counts (orders, categories,
sessions) cannot use PostgreSQL's parallel aggregation, so this is how the extract uses more
than one core. Sessions are counted with a two-level GROUP BY (customer, session) -> customer,
which hashes (a sort of the window's events on a libc collation such as C.UTF-8 takes several
times longer); money is summed as float8 (numeric arithmetic per line costs more than the rest
of the aggregate); the statements run with a larger ``work_mem`` so that hash tables stay in
memory. Guest lines and anonymous events are counted in the same scans (their NULL-customer
group), on both. Both flavours give the same aggregates as the one-statement reference
(``tests/integration/sources/test_extract_pg.py``, ``test_extract_sqlite_plan.py``, which also
checks the SQLite join's plan); measurements: ``benchmarks/README.md``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from include.segmentation.store import (
    STAGING_SCHEMA,
    drop_table,
    is_sqlite,
    pg_column_types,
    staging_table,
    ts_param,
    validate_identifier,
)

log = logging.getLogger("include.segmentation")

# The aggregates, each written once as (column, expression) and rendered for either dialect
# (``_render``): ``COUNT_IF(cond)`` is ``SUM(CASE WHEN cond THEN 1 ELSE 0 END)`` on SQLite and
# ``COUNT(*) FILTER (WHERE cond)`` on PostgreSQL; ``FLOAT(col)`` is the bare column on SQLite and
# ``col::float8`` on PostgreSQL (money summed as float8: numeric arithmetic per line costs more
# than the rest of the aggregate). Both flavours give the same values.
_TX_SPEC: tuple[tuple[str, str], ...] = (
    ("orders", "COUNT(DISTINCT CASE WHEN quantity > 0 THEN order_id END)"),
    ("purchase_lines", "COUNT_IF(quantity > 0)"),
    ("return_lines", "COUNT_IF(quantity < 0)"),
    ("items", "SUM(CASE WHEN quantity > 0 THEN quantity ELSE 0 END)"),
    ("gross_revenue", "SUM(CASE WHEN quantity > 0 THEN quantity * FLOAT(unit_price) ELSE 0 END)"),
    ("returned_value", "SUM(CASE WHEN quantity < 0 THEN -quantity * FLOAT(unit_price) ELSE 0 END)"),
    ("discount_total", "SUM(CASE WHEN quantity > 0 THEN FLOAT(discount) ELSE 0 END)"),
    ("discounted_lines", "COUNT_IF(quantity > 0 AND discount > 0)"),
    ("categories", "COUNT(DISTINCT CASE WHEN quantity > 0 THEN category END)"),
    ("first_order_at", "MIN(CASE WHEN quantity > 0 THEN ordered_at END)"),
    ("last_order_at", "MAX(CASE WHEN quantity > 0 THEN ordered_at END)"),
    ("last_tx_at", "MAX(ordered_at)"),
)
# Sessions: COUNT(DISTINCT session_id) in the events aggregate on SQLite; on PostgreSQL its own
# two-level GROUP BY (``_PG_SESSIONS``), which hashes instead of sorting.
_SESSIONS_SPEC: tuple[str, str] = ("sessions", "COUNT(DISTINCT session_id)")
_EV_SPEC: tuple[tuple[str, str], ...] = (
    ("events", "COUNT(*)"),
    ("page_views", "COUNT_IF(event_type = 'page_view')"),
    ("product_views", "COUNT_IF(event_type = 'product_view')"),
    ("searches", "COUNT_IF(event_type = 'search')"),
    ("add_to_carts", "COUNT_IF(event_type = 'add_to_cart')"),
    ("remove_from_carts", "COUNT_IF(event_type = 'remove_from_cart')"),
    ("checkouts", "COUNT_IF(event_type = 'checkout')"),
    ("dwell_seconds_total", "SUM(dwell_seconds)"),
    ("dwell_events", "COUNT(dwell_seconds)"),
    ("last_event_at", "MAX(occurred_at)"),
)
_CUSTOMER_COLUMNS: tuple[str, ...] = ("created_at", "birth_year", "gender", "country")
_SOURCES: dict[str, tuple[str, str]] = {  # kind -> (raw table, its timestamp column)
    "tx": ("raw.transactions", "ordered_at"),
    "ev": ("raw.browsing_events", "occurred_at"),
}
_COUNT_IF = re.compile(r"COUNT_IF\(([^()]*)\)")
_FLOAT = re.compile(r"FLOAT\((\w+)\)")


def _render(expression: str, dialect: str) -> str:
    """One aggregate expression of the specs in ``dialect`` ('sqlite' or 'postgresql')."""
    if dialect == "sqlite":
        return _FLOAT.sub(r"\1", _COUNT_IF.sub(r"SUM(CASE WHEN \1 THEN 1 ELSE 0 END)", expression))
    if dialect == "postgresql":
        return _FLOAT.sub(r"\1::float8", _COUNT_IF.sub(r"COUNT(*) FILTER (WHERE \1)", expression))
    raise ValueError(f"unknown dialect {dialect!r}")


def _aggregate_sql(
    kind: str, spec: tuple[tuple[str, str], ...], dialect: str, with_guests: bool, customers_in: str | None = None
) -> str:
    """GROUP BY customer_id of one source table over the window; ``with_guests`` keeps the NULL-customer
    group; ``customers_in`` (a table with a customer_id column) limits it to those customers."""
    source, ts = _SOURCES[kind]
    columns = ",\n       ".join(f"{_render(expr, dialect)} AS {name}" for name, expr in spec)
    guests = "" if with_guests else " AND customer_id IS NOT NULL"
    subset = f" AND customer_id IN (SELECT customer_id FROM {customers_in})" if customers_in else ""
    return (
        f"SELECT customer_id,\n       {columns}\nFROM {source}\n"
        f"WHERE {ts} >= :start AND {ts} < :cutoff{guests}{subset}\nGROUP BY customer_id"
    )


def _join_sql(tx: str, ev: str) -> str:
    """One row per customer active in ``tx`` or ``ev`` (in customer_id order), with raw.customers' attributes.

    Customers without a row in raw.customers are still segmented (attributes unknown); the
    data-quality stage reports such orphans.
    """
    picked = ", ".join(
        [*(f"t.{c}" for c, _ in _TX_SPEC), f"e.{_SESSIONS_SPEC[0]}", *(f"e.{c}" for c, _ in _EV_SPEC),
         *(f"c.{c}" for c in _CUSTOMER_COLUMNS)]
    )
    return (
        f"SELECT a.customer_id, {picked}\n"
        f"FROM (SELECT customer_id FROM {tx} WHERE customer_id IS NOT NULL\n"
        f"      UNION SELECT customer_id FROM {ev} WHERE customer_id IS NOT NULL) a\n"
        f"LEFT JOIN {tx} t ON t.customer_id = a.customer_id\n"
        f"LEFT JOIN {ev} e ON e.customer_id = a.customer_id\n"
        "LEFT JOIN raw.customers c ON c.customer_id = a.customer_id"
    )


# SQLite: each aggregate (with its NULL-customer group: the guest lines / anonymous events) into
# a staging table with a unique index on customer_id, then one join. Joining CTEs instead lets
# SQLite scan one aggregate per row of the other (quadratic: > 11 minutes at 100k customers).
_SQLITE_PARTS: dict[str, tuple[tuple[str, str], ...]] = {"tx": _TX_SPEC, "ev": (_SESSIONS_SPEC, *_EV_SPEC)}


def subset_aggregate_sql(kind: str, dialect: str, customers_in: str) -> str:
    """The extract's aggregate of one source (``tx`` or ``ev``: the same expressions, one definition)
    over ``[:start, :cutoff)`` for the customers listed in the table ``customers_in`` only."""
    return _aggregate_sql(kind, _SQLITE_PARTS[kind], dialect, with_guests=False, customers_in=customers_in)


# The portable one-statement form (no NULL group), kept as the reference of the tests.
_TX_AGG = _aggregate_sql("tx", _TX_SPEC, "sqlite", with_guests=False)
_EV_AGG = _aggregate_sql("ev", (_SESSIONS_SPEC, *_EV_SPEC), "sqlite", with_guests=False)
_JOIN = _join_sql("tx", "ev")


@dataclass(frozen=True)
class Window:
    """The run's reading window: ``[start, cutoff)`` with cutoff = snapshot date 00:00 UTC."""

    snapshot_date: date
    days: int

    @property
    def start(self) -> date:
        return self.snapshot_date - timedelta(days=self.days)

    def params(self, bind: Engine | Connection) -> dict[str, Any]:
        """Bound parameters for the window's timestamps, in the dialect's comparable form."""
        return {"start": ts_param(bind, self.start), "cutoff": ts_param(bind, self.snapshot_date)}


# PostgreSQL: the three aggregates, each written by its own connection (NULL customer included
# in the first two: that group holds the guest lines and the anonymous events).
_PG_TX = _aggregate_sql("tx", _TX_SPEC, "postgresql", with_guests=True)
_PG_EV = _aggregate_sql("ev", _EV_SPEC, "postgresql", with_guests=True)

_PG_SESSIONS = """
SELECT customer_id, COUNT(*) AS sessions
FROM (SELECT customer_id, session_id FROM raw.browsing_events
      WHERE occurred_at >= :start AND occurred_at < :cutoff AND customer_id IS NOT NULL
      GROUP BY customer_id, session_id) s
GROUP BY customer_id
"""

# The three aggregates and the customers' attributes become one row per active customer with one
# hash aggregation over their UNION ALL (each branch fills its own columns, MAX picks them):
# about half the time of joining the four tables on customer_id. Column order is the SQLite
# statement's (``_JOIN``).
_PG_COLUMNS: dict[str, tuple[str, ...]] = {
    "tx": tuple(name for name, _ in _TX_SPEC),
    "sessions": (_SESSIONS_SPEC[0],),
    "ev": tuple(name for name, _ in _EV_SPEC),
    "customers": _CUSTOMER_COLUMNS,
}


def _pg_combine_sql(conn: Connection, names: dict[str, str]) -> str:
    """The statement that combines the aggregate tables ``names`` (kind -> qualified name) and raw.customers."""
    types: dict[str, str] = {}
    for qualified in (*names.values(), "raw.customers"):
        schema, _, table = qualified.partition(".")
        types.update({k: v for k, v in pg_column_types(conn, schema, table).items() if k not in types})
    columns = [c for cols in _PG_COLUMNS.values() for c in cols]
    missing = [c for c in columns if c not in types]
    if missing:
        raise ValueError(f"raw.customers: missing column(s) {', '.join(missing)} (rule: the source contract)")

    def branch(kind: str, source: str, active: int) -> str:
        own = _PG_COLUMNS[kind]
        values = ", ".join(c if c in own else f"NULL::{validate_identifier(types[c], 'type')} AS {c}" for c in columns)
        return f"SELECT customer_id, {active} AS active, {values} FROM {source}"

    union = " UNION ALL ".join(
        [
            branch("tx", f"{names['tx']} WHERE customer_id IS NOT NULL", 1),
            branch("sessions", names["sessions"], 1),
            branch("ev", f"{names['ev']} WHERE customer_id IS NOT NULL", 1),
            branch("customers", "raw.customers", 0),
        ]
    )
    picked = ", ".join(f"MAX({c}) AS {c}" for c in columns)
    return f"SELECT customer_id, {picked} FROM ({union}) u GROUP BY customer_id HAVING MAX(active) = 1"


# Session settings of the PostgreSQL extract (SET LOCAL: this transaction only). ``work_mem`` is
# per hash table and connection; override with SEGMENTATION_EXTRACT_WORK_MEM (e.g. '128MB').
PG_EXTRACT_SETTINGS: dict[str, str] = {
    "work_mem": "512MB",
    "max_parallel_workers_per_gather": "0",  # the three statements already share the cores
}
_WORK_MEM = r"^\d{1,7}\s*(kB|MB|GB)$"


def pg_extract_settings() -> dict[str, str]:
    """``PG_EXTRACT_SETTINGS`` with ``work_mem`` from the environment if set (validated)."""
    settings = dict(PG_EXTRACT_SETTINGS)
    override = os.environ.get("SEGMENTATION_EXTRACT_WORK_MEM")
    if override:
        if not re.match(_WORK_MEM, override.strip()):
            raise ValueError(f"SEGMENTATION_EXTRACT_WORK_MEM={override!r}: use e.g. '256MB'")
        settings["work_mem"] = override.strip()
    return settings


def _set_local(conn: Connection, settings: dict[str, str]) -> None:
    for name, value in settings.items():
        conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})


def _excluded(conn: Connection, names: dict[str, str]) -> tuple[Any, Any]:
    """Guest lines and anonymous events: the NULL-customer group of the tx and ev aggregates."""
    guest_lines = conn.execute(
        text(f"SELECT purchase_lines + return_lines FROM {names['tx']} WHERE customer_id IS NULL")
    ).scalar()
    anonymous_events = conn.execute(text(f"SELECT events FROM {names['ev']} WHERE customer_id IS NULL")).scalar()
    return guest_lines, anonymous_events


def extract_aggregates(engine: Engine, window: Window, key: str = "") -> dict[str, Any]:
    """Build the per-customer aggregate staging table for ``window``; return its name and run statistics."""
    if not is_sqlite(engine):
        return _extract_postgres(engine, window, key)
    return _extract_sqlite(engine, window, key)


def _extract_sqlite(engine: Engine, window: Window, key: str = "") -> dict[str, Any]:
    """The SQLite extract: each aggregate into a staging table indexed on customer_id, then one join.

    The joins probe the unique indexes (``SEARCH ... USING INDEX``): linear in the customers,
    where the one-statement form over CTEs was quadratic. The two part tables are dropped at the end.
    """
    table = staging_table("aggregates", window.snapshot_date, key)
    parts = {kind: staging_table(f"agg_{kind}", window.snapshot_date, key) for kind in _SQLITE_PARTS}
    seconds: dict[str, float] = {}
    with _parts_dropped(engine, parts):
        with engine.begin() as conn:
            params = window.params(conn)
            for kind, spec in _SQLITE_PARTS.items():
                t0 = time.perf_counter()
                drop_table(conn, STAGING_SCHEMA, parts[kind])
                conn.execute(
                    text(f"CREATE TABLE {STAGING_SCHEMA}.{parts[kind]} AS "
                         f"{_aggregate_sql(kind, spec, 'sqlite', with_guests=True)}"),
                    params,
                )
                conn.execute(
                    text(f"CREATE UNIQUE INDEX {STAGING_SCHEMA}.{_index_name(parts[kind])} "
                         f"ON {parts[kind]} (customer_id)")
                )
                seconds[kind] = round(time.perf_counter() - t0, 2)
            names = {kind: f"{STAGING_SCHEMA}.{name}" for kind, name in parts.items()}
            guest_lines, anonymous_events = _excluded(conn, names)
            t0 = time.perf_counter()
            drop_table(conn, STAGING_SCHEMA, table)
            conn.execute(text(f"CREATE TABLE {STAGING_SCHEMA}.{table} AS {_join_sql(names['tx'], names['ev'])}"))
            population = conn.execute(text(f"SELECT COUNT(*) FROM {STAGING_SCHEMA}.{table}")).scalar_one()
            seconds["combine"] = round(time.perf_counter() - t0, 2)
    log.info(
        "extract: transactions %.1fs, events %.1fs, combine %.1fs", seconds.get("tx", 0.0), seconds.get("ev", 0.0),
        seconds.get("combine", 0.0),
    )
    return {**_stats(window, table, population, guest_lines, anonymous_events), "seconds": seconds}


@contextmanager
def _parts_dropped(engine: Engine, parts: dict[str, str]) -> Iterator[None]:
    """The extract's intermediate tables (``parts``: kind -> staging name), dropped however the block ends."""
    try:
        yield
    finally:
        with engine.begin() as conn:
            for name in parts.values():
                drop_table(conn, STAGING_SCHEMA, name)


def _index_name(table: str) -> str:
    return validate_identifier(f"ix_{table}_customer_id", "index")


def _stats(window: Window, table: str, population: Any, guest_lines: Any, anonymous_events: Any) -> dict[str, Any]:
    return {
        "aggregates_table": f"{STAGING_SCHEMA}.{table}",
        "population": int(population),
        "excluded_guest_lines": int(guest_lines or 0),
        "excluded_anonymous_events": int(anonymous_events or 0),
        "window_start": window.start.isoformat(),
        "cutoff": window.snapshot_date.isoformat(),
    }


def _extract_postgres(engine: Engine, window: Window, key: str = "") -> dict[str, Any]:
    """The PostgreSQL extract: three aggregates on three connections at once, then one combining CTAS."""
    table = staging_table("aggregates", window.snapshot_date, key)
    parts = {kind: staging_table(f"agg_{kind}", window.snapshot_date, key) for kind in ("tx", "ev", "sessions")}
    queries = {"tx": _PG_TX, "ev": _PG_EV, "sessions": _PG_SESSIONS}
    settings = pg_extract_settings()
    seconds: dict[str, float] = {}

    def build(kind: str) -> None:
        t0 = time.perf_counter()
        with engine.begin() as conn:
            _set_local(conn, settings)
            drop_table(conn, STAGING_SCHEMA, parts[kind])
            conn.execute(
                text(f"CREATE UNLOGGED TABLE {STAGING_SCHEMA}.{parts[kind]} AS {queries[kind]}"), window.params(conn)
            )
        seconds[kind] = round(time.perf_counter() - t0, 2)

    started = time.perf_counter()
    with _parts_dropped(engine, parts):
        with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="extract") as pool:
            for future in [pool.submit(build, kind) for kind in parts]:
                future.result()
        seconds["aggregates"] = round(time.perf_counter() - started, 2)
        names = {kind: f"{STAGING_SCHEMA}.{name}" for kind, name in parts.items()}
        t0 = time.perf_counter()
        with engine.begin() as conn:
            _set_local(conn, settings)
            guest_lines, anonymous_events = _excluded(conn, names)
            drop_table(conn, STAGING_SCHEMA, table)
            # A logged table (0.5 s more at 1M): it outlives this task, and a server crash before the
            # feature task reads it must not leave it empty.
            population = conn.execute(
                text(f"CREATE TABLE {STAGING_SCHEMA}.{table} AS {_pg_combine_sql(conn, names)}")
            ).rowcount
        seconds["combine"] = round(time.perf_counter() - t0, 2)
    log.info(
        "extract: aggregates in %.1fs (transactions %.1fs, events %.1fs, sessions %.1fs, concurrently), combine %.1fs",
        seconds["aggregates"], seconds["tx"], seconds["ev"], seconds["sessions"], seconds["combine"],
    )
    return {**_stats(window, table, population, guest_lines, anonymous_events), "seconds": seconds}
