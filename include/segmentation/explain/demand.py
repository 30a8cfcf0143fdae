"""The inventory feed: expected units and revenue per segment and category over the next 4 weeks.

``segment_demand_forecast``: for each segment, the members' expected purchase occasions (distinct
purchase days) in ``[S, S + 28 days)`` from the run's BG/NBD model (the conditional expectation
E[Y(4 weeks) | x, t_x, T], ``model/lifetime.py``), summed over the members who bought in the
window, times the segment's category mix over the window (units and revenue of the category per
purchase occasion of the segment). Customers without a purchase in the window, and customers who do
not exist yet, are not forecast: the feed is the demand of today's buyers, not of the whole shop.
Without a fitted lifetime model the expectations are NULL (the mix is still published).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from include.segmentation.model.lifetime import expected_purchases
from include.segmentation.sources import Window
from include.segmentation.store import read_sql

HORIZON_DAYS = 28
NO_CATEGORY = "(none)"

_DAY = {"postgresql": "CAST(t.ordered_at AT TIME ZONE 'UTC' AS date)", "sqlite": "date(t.ordered_at)"}

_LINES = """
WITH a AS (SELECT customer_id, segment_id FROM {staged}),
lines AS (
    SELECT a.segment_id, t.customer_id, {day} AS day, COALESCE(t.category, '(none)') AS category,
           t.quantity AS q, t.quantity * t.unit_price - t.discount AS net
    FROM raw.transactions t JOIN a ON a.customer_id = t.customer_id
    WHERE t.ordered_at >= :start AND t.ordered_at < :cutoff AND t.quantity > 0
)
"""

_MEMBERS_SQL = _LINES + """,
occ AS (SELECT segment_id, customer_id, day FROM lines GROUP BY segment_id, customer_id, day)
SELECT segment_id, customer_id, COUNT(*) AS occasions, MIN(day) AS first_day, MAX(day) AS last_day
FROM occ GROUP BY segment_id, customer_id
"""

_MIX_SQL = _LINES + """,
cat_occ AS (
    SELECT segment_id, category, customer_id, day, SUM(q) AS units, SUM(net) AS revenue
    FROM lines GROUP BY segment_id, category, customer_id, day
)
SELECT segment_id, category, COUNT(*) AS occasions, SUM(units) AS units, SUM(revenue) AS revenue
FROM cat_occ GROUP BY segment_id, category
"""


def bgnbd_params(lifetime_model: Any) -> dict[str, float] | None:
    """The BG/NBD parameters (r, alpha, a, b) from ``segment_runs.lifetime_model`` (JSON or dict); None if not fitted."""
    if lifetime_model is None or (isinstance(lifetime_model, float) and np.isnan(lifetime_model)):
        return None
    model = json.loads(lifetime_model) if isinstance(lifetime_model, str) else dict(lifetime_model)
    if not model or any(model.get(k) is None for k in ("r", "alpha", "a", "b")):
        return None
    return {k: float(model[k]) for k in ("r", "alpha", "a", "b")}


def member_expectations(members: pd.DataFrame, params: dict[str, float] | None, last_day: date,
                        horizon_days: int = HORIZON_DAYS) -> pd.Series:
    """Each member's expected purchase occasions in the next ``horizon_days`` (NaN without a model).

    ``members`` has occasions, first_day, last_day (one row per customer); ``last_day`` is S - 1, the
    end of the observation period, as in the model's fit.
    """
    if params is None or members.empty:
        return pd.Series(np.nan, index=members.index, dtype="float64")
    first = pd.to_datetime(members["first_day"])
    last = pd.to_datetime(members["last_day"])
    x = pd.to_numeric(members["occasions"]).to_numpy("float64") - 1.0
    t_x = (last - first).dt.days.to_numpy("float64") / 7.0
    T = (pd.Timestamp(last_day) - first).dt.days.to_numpy("float64") / 7.0
    expected = expected_purchases(params, horizon_days / 7.0, x, t_x, T)
    return pd.Series(np.where(np.isfinite(expected), expected, np.nan), index=members.index, dtype="float64")


def demand_forecast(conn: Any, staged: str, window: Window, lifetime_model: Any,
                    horizon_days: int = HORIZON_DAYS) -> pd.DataFrame:
    """One row per (segment, category) with buyers, expected occasions, the category mix and expected
    units and revenue (columns of ``segment_demand_forecast`` without the stamps)."""
    day = _DAY["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    params = window.params(conn)
    members = read_sql(conn, _MEMBERS_SQL.format(staged=staged, day=day), params)
    mix = read_sql(conn, _MIX_SQL.format(staged=staged, day=day), params)
    members["segment_id"] = pd.to_numeric(members["segment_id"]).astype("int64")
    members["expected"] = member_expectations(members, bgnbd_params(lifetime_model),
                                              window.snapshot_date - timedelta(days=1), horizon_days)
    members["occasions"] = pd.to_numeric(members["occasions"]).astype("float64")
    per_segment = members.groupby("segment_id").agg(
        buyers=("customer_id", "size"), seg_occasions=("occasions", "sum"),
        expected_occasions=("expected", lambda s: float(s.sum()) if s.notna().all() else np.nan),
    ).reset_index()
    for col in ("occasions", "units", "revenue"):
        mix[col] = pd.to_numeric(mix[col]).astype("float64")
    mix["segment_id"] = pd.to_numeric(mix["segment_id"]).astype("int64")
    out = mix.merge(per_segment, on="segment_id", how="inner")
    out["occasion_share"] = out["occasions"] / out["seg_occasions"]
    out["units_per_occasion"] = out["units"] / out["seg_occasions"]
    out["revenue_per_occasion"] = out["revenue"] / out["seg_occasions"]
    out["expected_units"] = out["expected_occasions"] * out["units_per_occasion"]
    out["expected_revenue"] = out["expected_occasions"] * out["revenue_per_occasion"]
    out["horizon_days"] = int(horizon_days)
    out["buyers"] = out["buyers"].astype("int64")
    cols = ["segment_id", "category", "horizon_days", "buyers", "expected_occasions", "occasion_share",
            "units_per_occasion", "revenue_per_occasion", "expected_units", "expected_revenue"]
    return out[cols].sort_values(["segment_id", "category"]).reset_index(drop=True)
