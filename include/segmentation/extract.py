"""Extract: per-customer aggregates of the trailing window, computed inside the warehouse.

Raw event rows never reach Python: one GROUP BY per source table over ``[S - window_days, S)``
writes a staging table of one row per customer (``CREATE TABLE ... AS SELECT``), and only that
table is read by the feature stage. The same SQL runs on PostgreSQL and SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from include.segmentation.warehouse import is_sqlite, ts_param, validate_identifier

STAGING_SCHEMA = "segmentation"

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


def staging_table(kind: str, snapshot_date: date) -> str:
    """Name of a staging table for one snapshot (unique per date, so backfills do not collide)."""
    return validate_identifier(f"stg_{kind}_{snapshot_date:%Y%m%d}", "staging table")


def drop_table(conn: Connection, schema: str, table: str) -> None:
    """Drop ``schema.table`` if it exists."""
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {validate_identifier(schema)}.{validate_identifier(table)}")


def extract_aggregates(engine: Engine, window: Window) -> dict[str, Any]:
    """Build the per-customer aggregate staging table for ``window``; return its name and run statistics."""
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
        if not is_sqlite(conn):
            conn.exec_driver_sql(f"ANALYZE {STAGING_SCHEMA}.{table}")
    return {
        "aggregates_table": f"{STAGING_SCHEMA}.{table}",
        "population": int(population),
        "excluded_guest_lines": int(guest_lines),
        "excluded_anonymous_events": int(anonymous_events),
        "window_start": window.start.isoformat(),
        "cutoff": window.snapshot_date.isoformat(),
    }
