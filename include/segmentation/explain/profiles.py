"""Profiles: what each segment looks like in original units, for people and for id matching.

Each segment gets size, share, centroid (model space, for id matching and drift), means and medians
of every feature in original units (days, orders, currency...) and a one-line description built
from its medians relative to the whole population, e.g. "spend 4.2x the median (1,250), bought in
the last 2 weeks, 9 orders a year, 14 sessions a year". The insight stage adds top categories and
the segment's most over-represented category to the description.
"""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd

from include.segmentation.model import NUMERIC_FEATURES

YEAR_DAYS = 365.0


def _fmt_money(x: float) -> str:
    return f"{x:,.0f}"


def _fmt_ratio(r: float) -> str:
    if r >= 10:
        return f"{r:.0f}x"
    return f"{r:.1f}x"


def _fmt_count(x: float) -> str:
    if x >= 10:
        return f"{x:.0f}"
    if x >= 1:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return f"{x:.1f}"


def _per_year(count: float, window_days: int, unit: str) -> str:
    """'9 orders a year' (annualised from the window); for a window under a year, says so."""
    if window_days >= 365:
        rate = count * YEAR_DAYS / window_days
        noun = unit if round(rate, 1) == 1 else unit + "s"
        return f"{_fmt_count(rate)} {noun} a year"
    noun = unit if count == 1 else unit + "s"
    return f"{_fmt_count(count)} {noun} in {window_days} days"


def humanize_days(days: float) -> str:
    """A duration a marketer reads at a glance: '5 days', '2 weeks', '3 months', '1.5 years'."""
    d = max(float(days), 0.0)
    if d < 14:
        n = round(d)
        return f"{n} day" if n == 1 else f"{n} days"
    if d < 60:
        n = round(d / 7)
        return f"{n} weeks"
    if d < 365:
        n = round(d / 30.4)
        return f"{n} months"
    years = round(d / 365, 1)
    return f"{years:g} year" if years == 1 else f"{years:g} years"


def _recency(days: float) -> str:
    if days <= 7:
        return "bought in the last week"
    if days <= 14:
        return "bought in the last 2 weeks"
    if days <= 31:
        return "bought in the last month"
    return f"last bought {humanize_days(days)} ago"


def _rate(count: float, active_days: float, window_days: int, unit: str) -> str:
    """A count over the customer's own active time: '9 orders in 365 days' or '2 orders in 5 weeks'."""
    days = max(min(float(active_days), float(window_days)), 1.0)
    noun = unit if round(count, 1) == 1 else unit + "s"
    if days >= window_days:
        return _per_year(count, window_days, unit) if window_days >= 365 else f"{_fmt_count(count)} {noun} in {window_days} days"
    return f"{_fmt_count(count)} {noun} in {humanize_days(days)} since first seen"


def describe_segment(
    median: pd.Series,
    population_median: pd.Series,
    window_days: int = 365,
    favourite: tuple[str, float] | None = None,
) -> str:
    """One line a marketer can read, from the segment's medians (original units), true of its median member.

    Counts are over the customer's own active time (the window, or less when first seen later), spend
    carries its period, and a segment that did not buy says so instead of showing fill values, e.g.
    'spend 4.2x the median: 1,250 (store currency) in a year, bought in the last 2 weeks, 9 orders a year,
    P(alive) 92%, 2.1 purchases expected in the next 90 days, over-index on Electronics (2.1x)'.
    """
    parts: list[str] = []
    pop_m = float(population_median.get("monetary", 0.0))
    monetary = float(median["monetary"])
    period = "a year" if window_days == 365 else f"{window_days} days"
    active = float(median.get("tenure_days", window_days))
    if median["frequency"] == 0:
        parts.append(f"no purchase in the last {'year' if window_days == 365 else f'{window_days} days'}")
    else:
        amount = f"{_fmt_money(monetary)} (store currency) in {period}"
        if pop_m > 0 and monetary > 0:
            parts.append(f"spend {_fmt_ratio(monetary / pop_m)} the median: {amount}")
        else:
            parts.append(f"spend {amount}")
        parts.append(_recency(float(median["recency_days"])))
        parts.append(_rate(float(median["frequency"]), active, window_days, "order"))
    if median.get("sessions", 0) > 0:
        parts.append(_rate(float(median["sessions"]), active, window_days, "session"))
    elif median["frequency"] == 0:
        parts.append("no recorded browsing")
    if median["frequency"] == 0 and median.get("cart_abandonment_rate", 0) >= 0.5:
        parts.append(f"abandon {median['cart_abandonment_rate']:.0%} of carts")
    if median.get("discount_share", 0) >= 0.1:
        parts.append(f"{median['discount_share']:.0%} of spend discounted")
    if median.get("return_rate", 0) >= 0.1:
        parts.append(f"return {median['return_rate']:.0%} of what they buy")
    p_alive = median.get("p_alive", np.nan)
    if median["frequency"] > 0 and pd.notna(p_alive):
        parts.append(f"P(alive) {float(p_alive):.0%}")
        expected = median.get("expected_purchases_90d", np.nan)
        if pd.notna(expected):
            parts.append(f"{_fmt_count(float(expected))} purchases expected in the next 90 days")
        value = median.get("predicted_value_12m", np.nan)
        if pd.notna(value):
            parts.append(f"predicted 12-month value {_fmt_money(float(value))}")
    if favourite is not None:
        parts.append(f"over-index on {favourite[0]} ({_fmt_ratio(favourite[1])})")
    return ", ".join(parts)


def build_profiles(
    features: pd.DataFrame,
    segment_of: np.ndarray,
    names: dict[int, str],
    centroids: dict[int, dict[str, float]],
    snapshot_date: date,
    run_id: str,
    window_days: int = 365,
    name_fidelity: dict[int, float] | None = None,
    stability: dict[int, float] | None = None,
) -> pd.DataFrame:
    """One row per segment: size, share, description, centroid, feature means/medians (JSON), stability."""
    numeric = features[list(NUMERIC_FEATURES)]
    grouped = numeric.groupby(segment_of)
    means = grouped.mean()
    medians = grouped.median()
    sizes = pd.Series(segment_of).value_counts().sort_index()
    pop_median = numeric.median()
    buyers = numeric["frequency"] > 0
    if buyers.any():
        pop_median["monetary"] = numeric.loc[buyers, "monetary"].median()  # 'the median' = the median buyer
    rows = []
    for seg_id in sorted(names):
        rows.append(
            {
                "snapshot_date": snapshot_date.isoformat(),
                "segment_id": int(seg_id),
                "segment_name": names[seg_id],
                "size": int(sizes.get(seg_id, 0)),
                "share": float(sizes.get(seg_id, 0) / len(features)),
                "description": describe_segment(medians.loc[seg_id], pop_median, window_days=window_days),
                "centroid": json.dumps(centroids[seg_id], sort_keys=True),
                "feature_means": json.dumps({k: _clean(v) for k, v in means.loc[seg_id].items()}, sort_keys=True),
                "feature_medians": json.dumps({k: _clean(v) for k, v in medians.loc[seg_id].items()}, sort_keys=True),
                "top_categories": None,
                "run_id": run_id,
                "name_fidelity": None if name_fidelity is None else float(name_fidelity.get(seg_id, np.nan)),
                "stability": None if stability is None or seg_id not in stability else float(stability[seg_id]),
            }
        )
    return pd.DataFrame(rows)


def _clean(v: float) -> float | None:
    return None if pd.isna(v) else round(float(v), 6)
