"""SQL building blocks of the raw-window checks: dialect pieces, the window, and example rows.

The profile queries of ``raw_plan`` are GX query assets, which take no bind parameters, so their
timestamps are literals; every literal is rendered by SQLAlchemy from a value made here, never
from user text. Example rows are read only for failed checks: a handful of rows, pushed down with
``LIMIT``, masked before they leave this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, text

from include.segmentation.quality.checks import TIMESTAMP_COLUMNS
from include.segmentation.quality.masking import mask_example, mask_text
from include.segmentation.quality.results import MAX_EXAMPLES
from include.segmentation.store import is_sqlite, ts_param

log = logging.getLogger(__name__)

#: The raw source tables, in the order they are validated.
RAW_TABLES = ("customers", "transactions", "browsing_events")
_EXAMPLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "created_at", "birth_year", "country", "email", "phone", "marketing_consent"),
    "transactions": (
        "order_id", "line_number", "customer_id", "ordered_at", "product_id", "quantity", "unit_price", "discount",
    ),
    "browsing_events": ("event_id", "session_id", "customer_id", "occurred_at", "event_type", "dwell_seconds"),
}


class Sql:
    """Dialect-specific pieces of the profile SQL (literals rendered by SQLAlchemy, never from user text)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)

    def ts(self, value: datetime | date) -> str:
        """A timestamp literal comparable with the stored timestamps of this dialect."""
        v = ts_param(self.engine, value)
        typ = sa.Text() if self.sqlite else sa.DateTime(timezone=True)
        expr = sa.literal(v, typ) if self.sqlite else sa.cast(sa.literal(v, typ), typ)
        return str(expr.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))

    def text_literal(self, value: str) -> str:
        """A quoted text literal."""
        return str(sa.literal(value, sa.Text()).compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))

    def flt(self, expr: str) -> str:
        """``expr`` cast to a floating-point type (so that ratios are not integer divisions)."""
        return f"CAST({expr} AS {'REAL' if self.sqlite else 'DOUBLE PRECISION'})"

    def hours_before(self, cutoff_literal: str, ts_expr: str) -> str:
        """Hours from ``ts_expr`` to the cutoff, as a float expression."""
        if self.sqlite:
            return f"((julianday({cutoff_literal}) - julianday({ts_expr})) * 24.0)"
        return self.flt(f"EXTRACT(EPOCH FROM ({cutoff_literal} - {ts_expr})) / 3600.0")

    def day(self, ts_expr: str) -> str:
        """The UTC calendar day of a timestamp expression."""
        return f"date({ts_expr})" if self.sqlite else f"CAST(({ts_expr}) AT TIME ZONE 'UTC' AS DATE)"


def count_if(pred: str) -> str:
    """An aggregate counting the rows where ``pred`` holds (0, not NULL, on no rows)."""
    return f"COALESCE(SUM(CASE WHEN {pred} THEN 1 ELSE 0 END), 0)"


@dataclass
class Window:
    """The run's window ``[S - days, S)`` (S = snapshot date 00:00 UTC) and the wall clock of the run."""

    snapshot_date: date
    days: int
    now: datetime

    @property
    def cutoff(self) -> datetime:
        """S at 00:00 UTC: the window's exclusive end."""
        return datetime(self.snapshot_date.year, self.snapshot_date.month, self.snapshot_date.day, tzinfo=timezone.utc)

    @property
    def start(self) -> datetime:
        """The window's inclusive start."""
        return self.cutoff - timedelta(days=self.days)

    @property
    def last_day(self) -> datetime:
        """The start of the window's last day."""
        return self.cutoff - timedelta(days=1)


def window_predicate(table: str, sql: Sql, w: Window, alias: str | None = None) -> str:
    """``ts >= start AND ts < cutoff`` on the timestamp column of ``table`` (optionally qualified)."""
    col = TIMESTAMP_COLUMNS[table]
    col = f"{alias}.{col}" if alias else col
    return f"{col} >= {sql.ts(w.start)} AND {col} < {sql.ts(w.cutoff)}"


def _example_query(engine: Engine, w: Window, table: str, predicate: str,
                   windowed: bool) -> tuple[str, dict[str, Any]]:
    """The SELECT (and its parameters) of one failed check's examples; ``predicate``: SQL on alias t or ``@kind``."""
    params: dict[str, Any] = {"start": ts_param(engine, w.start), "cutoff": ts_param(engine, w.cutoff)}
    ts_col = TIMESTAMP_COLUMNS.get(table)
    scope = f"t.{ts_col} >= :start AND t.{ts_col} < :cutoff" if windowed and ts_col else "1 = 1"
    if predicate.startswith("@duplicates:"):
        keys = predicate.split(":", 1)[1]
        return (f"SELECT {keys}, COUNT(*) AS copies FROM raw.{table} t WHERE {scope} "
                f"GROUP BY {keys} HAVING COUNT(*) > 1 LIMIT {MAX_EXAMPLES}"), params
    if predicate == "@orphans":
        return (f"SELECT t.customer_id, COUNT(*) AS {'lines' if table == 'transactions' else 'events'} FROM raw.{table} t "
                f"WHERE {scope} AND t.customer_id IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM raw.customers k WHERE k.customer_id = t.customer_id) "
                f"GROUP BY t.customer_id LIMIT {MAX_EXAMPLES}"), params
    if predicate == "@daily" and ts_col:
        day = Sql(engine).day(f"t.{ts_col}")
        params["from"] = ts_param(engine, w.cutoff - timedelta(days=7))
        return (f"SELECT {day} AS day, COUNT(*) AS row_count FROM raw.{table} t "
                f"WHERE t.{ts_col} >= :from AND t.{ts_col} < :cutoff GROUP BY {day} ORDER BY day DESC LIMIT 7"), params
    cols = ", ".join(f"t.{c}" for c in _EXAMPLE_COLUMNS[table])
    return f"SELECT {cols} FROM raw.{table} t WHERE {scope} AND ({predicate}) LIMIT {MAX_EXAMPLES}", params


def fetch_examples(engine: Engine, w: Window, table: str, predicate: str, windowed: bool) -> list[dict[str, Any]]:
    """Up to ``MAX_EXAMPLES`` masked rows of ``raw.table`` matching ``predicate`` (alias t); [] on error."""
    sql, params = _example_query(engine, w, table, predicate, windowed)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(sql), params).mappings().all()
            conn.rollback()
    except sa.exc.SQLAlchemyError as exc:
        log.warning("data quality: examples for raw.%s could not be read: %s", table, mask_text(str(exc).splitlines()[0]))
        return []
    return [mask_example(dict(r)) for r in rows]
