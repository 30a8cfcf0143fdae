"""The pricing and inventory feeds of one snapshot, staged for the snapshot's atomic publish.

``build_feeds`` computes ``segment_price_response`` (``pricing``) and ``segment_demand_forecast``
(``demand``) for the staged assignments of a run; ``stage_feeds`` writes them as the run's staging
tables of kinds ``price_response`` and ``demand_forecast``, which publish copies into the published
tables in the same transaction as the segments (``store.schema.FEED_TABLES``). A rejected run
publishes neither. Documented in docs/feeds.md.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from include.segmentation.explain.common import InsightError
from include.segmentation.explain.demand import demand_forecast
from include.segmentation.explain.pricing import ALL_CATEGORIES, price_response
from include.segmentation.sources import Window
from include.segmentation.store import StagingNameError, WarehouseError, qualified_staging, write_staging
from include.segmentation.store.run_log import get_run
from include.segmentation.store.schema import FEED_TABLES

log = logging.getLogger("include.segmentation")


def _columns(kind: str) -> list[str]:
    return [c.name for c in FEED_TABLES[kind].columns]


def build_feeds(
    engine: Engine,
    snapshot_date: date,
    run_id: str,
    window_days: int,
    assignments_table: str,
    names: dict[int, str],
    lifetime_model: Any = None,
) -> dict[str, pd.DataFrame]:
    """Both feeds for one snapshot, by staged kind, in their published tables' columns.

    ``lifetime_model`` is the run's fitted BG/NBD (``segment_runs.lifetime_model``); when None it is
    read from the run's row.
    """
    try:
        staged = qualified_staging(assignments_table)
    except (StagingNameError, WarehouseError) as exc:
        raise InsightError(f"assignments table {assignments_table!r}: must be a staging table segmentation.stg_*") from exc
    if lifetime_model is None:
        lifetime_model = (get_run(engine, run_id) or {}).get("lifetime_model")
    window = Window(snapshot_date, window_days)
    with engine.connect() as conn:
        pricing = price_response(conn, staged, window)
        demand = demand_forecast(conn, staged, window, lifetime_model)
    stamp = {"snapshot_date": snapshot_date.isoformat(), "run_id": run_id}
    out = {}
    for kind, frame in (("price_response", pricing), ("demand_forecast", demand)):
        frame = frame[frame["segment_id"].isin(list(names))]
        out[kind] = frame.assign(segment_name=frame["segment_id"].map(names), **stamp)[_columns(kind)]
    pooled = out["price_response"][out["price_response"]["category"] == ALL_CATEGORIES]
    log.info(
        "feeds: price response for %s segment(s) (%s with an elasticity), demand forecast for %s (segment, category) rows",
        len(pooled), int(pooled["elasticity"].notna().sum()), len(out["demand_forecast"]),
    )
    return out


def stage_feeds(engine: Engine, snapshot_date: date, feeds: dict[str, pd.DataFrame], key: str = "") -> dict[str, str]:
    """Write the feeds (``build_feeds``) as the run's staging tables; returns kind -> staging table."""
    return {kind: write_staging(engine, kind, snapshot_date, FEED_TABLES[kind], frame, key) for kind, frame in feeds.items()}
