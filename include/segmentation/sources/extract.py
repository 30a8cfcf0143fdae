"""Extract: per-customer aggregates of the trailing window, computed inside the warehouse.

Raw event rows never reach Python: GROUP BYs over ``[S - window_days, S)`` write a staging table
of one row per customer (``CREATE TABLE ... AS SELECT``), and only that table is read by the
feature stage.

SQLite runs one statement (a GROUP BY per source table, joined). PostgreSQL runs the aggregates
as three statements on three connections at once, each into an UNLOGGED staging table, then
combines them with the customers' attributes: the exact distinct counts (orders, categories,
sessions) cannot use PostgreSQL's parallel aggregation, so this is how the extract uses more
than one core. Sessions are counted with a two-level GROUP BY (customer, session) -> customer,
which hashes (a sort of the window's events on a libc collation such as C.UTF-8 takes several
times longer); money is summed as float8 (numeric arithmetic per line costs more than the rest
of the aggregate); the statements run with a larger ``work_mem`` so that hash tables stay in
memory. Guest lines and anonymous events are counted in the same scans (their NULL-customer
group). Both flavours give the same aggregates (``tests/integration/test_extract_pg.py``);
measurements: ``benchmarks/README.md``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
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

_TX_AGG = """
SELECT customer_id,
       COUNT(DISTINCT CASE WHEN quantity > 0 THEN order_id END)              AS orders,
       SUM(CASE WHEN quantity > 0 THEN 1 ELSE 0 END)                         AS purchase_lines,
       SUM(CASE WHEN quantity < 0 THEN 1 ELSE 0 END)                         AS return_lines,
       SUM(CASE WHEN quantity > 0 THEN quantity ELSE 0 END)                  AS items,
       SUM(CASE WHEN quantity > 0 THEN quantity * unit_price ELSE 0 END)     AS gross_revenue,
       SUM(CASE WHEN quantity < 0 THEN -quantity * unit_price ELSE 0 END)    AS returned_value,
       SUM(CASE WHEN quantity > 0 THEN discount ELSE 0 END)                  AS discount_total,
       SUM(CASE WHEN quantity > 0 AND discount > 0 THEN 1 ELSE 0 END)        AS discounted_lines,
       COUNT(DISTINCT CASE WHEN quantity > 0 THEN category END)              AS categories,
       MIN(CASE WHEN quantity > 0 THEN ordered_at END)                       AS first_order_at,
       MAX(CASE WHEN quantity > 0 THEN ordered_at END)                       AS last_order_at,
       MAX(ordered_at)                                                       AS last_tx_at
FROM raw.transactions
WHERE ordered_at >= :start AND ordered_at < :cutoff AND customer_id IS NOT NULL
GROUP BY customer_id
"""

_EV_AGG = """
SELECT customer_id,
       COUNT(DISTINCT session_id)                                            AS sessions,
       COUNT(*)                                                              AS events,
       SUM(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END)             AS page_views,
       SUM(CASE WHEN event_type = 'product_view' THEN 1 ELSE 0 END)          AS product_views,
       SUM(CASE WHEN event_type = 'search' THEN 1 ELSE 0 END)                AS searches,
       SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END)           AS add_to_carts,
       SUM(CASE WHEN event_type = 'remove_from_cart' THEN 1 ELSE 0 END)      AS remove_from_carts,
       SUM(CASE WHEN event_type = 'checkout' THEN 1 ELSE 0 END)              AS checkouts,
       SUM(dwell_seconds)                                                    AS dwell_seconds_total,
       COUNT(dwell_seconds)                                                  AS dwell_events,
       MAX(occurred_at)                                                      AS last_event_at
FROM raw.browsing_events
WHERE occurred_at >= :start AND occurred_at < :cutoff AND customer_id IS NOT NULL
GROUP BY customer_id
"""

# Customers without a row in raw.customers are still segmented (attributes unknown); the
# data-quality stage reports such orphans.
_JOIN = """
SELECT a.customer_id,
       t.orders, t.purchase_lines, t.return_lines, t.items, t.gross_revenue, t.returned_value,
       t.discount_total, t.discounted_lines, t.categories, t.first_order_at, t.last_order_at, t.last_tx_at,
       e.sessions, e.events, e.page_views, e.product_views, e.searches, e.add_to_carts, e.remove_from_carts,
       e.checkouts, e.dwell_seconds_total, e.dwell_events, e.last_event_at,
       c.created_at, c.birth_year, c.gender, c.country
FROM (SELECT customer_id FROM tx UNION SELECT customer_id FROM ev) a
LEFT JOIN tx t ON t.customer_id = a.customer_id
LEFT JOIN ev e ON e.customer_id = a.customer_id
LEFT JOIN raw.customers c ON c.customer_id = a.customer_id
"""


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
_PG_TX = """
SELECT customer_id,
       COUNT(DISTINCT CASE WHEN quantity > 0 THEN order_id END)                      AS orders,
       SUM(CASE WHEN quantity > 0 THEN 1 ELSE 0 END)                                 AS purchase_lines,
       SUM(CASE WHEN quantity < 0 THEN 1 ELSE 0 END)                                 AS return_lines,
       SUM(CASE WHEN quantity > 0 THEN quantity ELSE 0 END)                          AS items,
       SUM(CASE WHEN quantity > 0 THEN quantity * unit_price::float8 ELSE 0 END)     AS gross_revenue,
       SUM(CASE WHEN quantity < 0 THEN -quantity * unit_price::float8 ELSE 0 END)    AS returned_value,
       SUM(CASE WHEN quantity > 0 THEN discount::float8 ELSE 0 END)                  AS discount_total,
       SUM(CASE WHEN quantity > 0 AND discount > 0 THEN 1 ELSE 0 END)                AS discounted_lines,
       COUNT(DISTINCT CASE WHEN quantity > 0 THEN category END)                      AS categories,
       MIN(CASE WHEN quantity > 0 THEN ordered_at END)                               AS first_order_at,
       MAX(CASE WHEN quantity > 0 THEN ordered_at END)                               AS last_order_at,
       MAX(ordered_at)                                                               AS last_tx_at
FROM raw.transactions
WHERE ordered_at >= :start AND ordered_at < :cutoff
GROUP BY customer_id
"""

_PG_EV = """
SELECT customer_id,
       COUNT(*)                                             AS events,
       COUNT(*) FILTER (WHERE event_type = 'page_view')        AS page_views,
       COUNT(*) FILTER (WHERE event_type = 'product_view')     AS product_views,
       COUNT(*) FILTER (WHERE event_type = 'search')           AS searches,
       COUNT(*) FILTER (WHERE event_type = 'add_to_cart')      AS add_to_carts,
       COUNT(*) FILTER (WHERE event_type = 'remove_from_cart') AS remove_from_carts,
       COUNT(*) FILTER (WHERE event_type = 'checkout')         AS checkouts,
       SUM(dwell_seconds)                                   AS dwell_seconds_total,
       COUNT(dwell_seconds)                                 AS dwell_events,
       MAX(occurred_at)                                     AS last_event_at
FROM raw.browsing_events
WHERE occurred_at >= :start AND occurred_at < :cutoff
GROUP BY customer_id
"""

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
    "tx": ("orders", "purchase_lines", "return_lines", "items", "gross_revenue", "returned_value", "discount_total",
           "discounted_lines", "categories", "first_order_at", "last_order_at", "last_tx_at"),
    "sessions": ("sessions",),
    "ev": ("events", "page_views", "product_views", "searches", "add_to_carts", "remove_from_carts", "checkouts",
           "dwell_seconds_total", "dwell_events", "last_event_at"),
    "customers": ("created_at", "birth_year", "gender", "country"),
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


def extract_aggregates(engine: Engine, window: Window) -> dict[str, Any]:
    """Build the per-customer aggregate staging table for ``window``; return its name and run statistics."""
    if not is_sqlite(engine):
        return _extract_postgres(engine, window)
    table = staging_table("aggregates", window.snapshot_date)
    with engine.begin() as conn:
        params = window.params(conn)
        drop_table(conn, STAGING_SCHEMA, table)
        sql = f"CREATE TABLE {STAGING_SCHEMA}.{table} AS WITH tx AS ({_TX_AGG}), ev AS ({_EV_AGG}) {_JOIN}"
        conn.execute(text(sql), params)
        population = conn.execute(text(f"SELECT COUNT(*) FROM {STAGING_SCHEMA}.{table}")).scalar_one()
        guest_lines = conn.execute(
            text(
                "SELECT COUNT(*) FROM raw.transactions "
                "WHERE ordered_at >= :start AND ordered_at < :cutoff AND customer_id IS NULL"
            ),
            params,
        ).scalar_one()
        anonymous_events = conn.execute(
            text(
                "SELECT COUNT(*) FROM raw.browsing_events "
                "WHERE occurred_at >= :start AND occurred_at < :cutoff AND customer_id IS NULL"
            ),
            params,
        ).scalar_one()
    return _stats(window, table, population, guest_lines, anonymous_events)


def _stats(window: Window, table: str, population: Any, guest_lines: Any, anonymous_events: Any) -> dict[str, Any]:
    return {
        "aggregates_table": f"{STAGING_SCHEMA}.{table}",
        "population": int(population),
        "excluded_guest_lines": int(guest_lines or 0),
        "excluded_anonymous_events": int(anonymous_events or 0),
        "window_start": window.start.isoformat(),
        "cutoff": window.snapshot_date.isoformat(),
    }


def _extract_postgres(engine: Engine, window: Window) -> dict[str, Any]:
    """The PostgreSQL extract: three aggregates on three connections at once, then one combining CTAS."""
    table = staging_table("aggregates", window.snapshot_date)
    parts = {kind: staging_table(f"agg_{kind}", window.snapshot_date) for kind in ("tx", "ev", "sessions")}
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
    try:
        with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="extract") as pool:
            for future in [pool.submit(build, kind) for kind in parts]:
                future.result()
        seconds["aggregates"] = round(time.perf_counter() - started, 2)
        names = {kind: f"{STAGING_SCHEMA}.{name}" for kind, name in parts.items()}
        t0 = time.perf_counter()
        with engine.begin() as conn:
            _set_local(conn, settings)
            guest_lines = conn.execute(
                text(f"SELECT purchase_lines + return_lines FROM {names['tx']} WHERE customer_id IS NULL")
            ).scalar()
            anonymous_events = conn.execute(
                text(f"SELECT events FROM {names['ev']} WHERE customer_id IS NULL")
            ).scalar()
            drop_table(conn, STAGING_SCHEMA, table)
            # A logged table (0.5 s more at 1M): it outlives this task, and a server crash before the
            # feature task reads it must not leave it empty.
            population = conn.execute(
                text(f"CREATE TABLE {STAGING_SCHEMA}.{table} AS {_pg_combine_sql(conn, names)}")
            ).rowcount
        seconds["combine"] = round(time.perf_counter() - t0, 2)
    finally:
        with engine.begin() as conn:
            for name in parts.values():
                drop_table(conn, STAGING_SCHEMA, name)
    log.info(
        "extract: aggregates in %.1fs (transactions %.1fs, events %.1fs, sessions %.1fs, concurrently), combine %.1fs",
        seconds["aggregates"], seconds["tx"], seconds["ev"], seconds["sessions"], seconds["combine"],
    )
    return {**_stats(window, table, population, guest_lines, anonymous_events), "seconds": seconds}
