"""Profiles: what each segment looks like in original units, for people and for id matching."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd

from include.segmentation.features import NUMERIC_FEATURES


def _fmt_money(x: float) -> str:
    return f"{x:,.0f}"


def describe_segment(median: pd.Series, population_median: pd.Series) -> str:
    """One line a marketer can read, e.g. 'spend 4.2x the median, last purchase 9 days ago, 12 orders a year'."""
    parts: list[str] = []
    pop_m = float(population_median.get("monetary", 0.0))
    if median["frequency"] == 0:
        parts.append("no purchase in the window")
    else:
        if pop_m > 0:
            parts.append(f"spend {median['monetary'] / pop_m:.1f}x the median ({_fmt_money(median['monetary'])})")
        parts.append(f"last purchase {median['recency_days']:.0f} days ago")
        parts.append(f"{median['frequency']:.0f} orders in the window")
    if median["sessions"] > 0:
        parts.append(f"{median['sessions']:.0f} sessions")
    if median["discount_share"] >= 0.1:
        parts.append(f"{median['discount_share']:.0%} of spend discounted")
    if median["tenure_days"] <= 60:
        parts.append(f"customer for {median['tenure_days']:.0f} days")
    return ", ".join(parts)


def build_profiles(
    features: pd.DataFrame,
    segment_of: np.ndarray,
    names: dict[int, str],
    centroids: dict[int, dict[str, float]],
    snapshot_date: date,
    run_id: str,
) -> pd.DataFrame:
    """One row per segment: size, share, description, centroid and feature means/medians (JSON)."""
    numeric = features[list(NUMERIC_FEATURES)]
    grouped = numeric.groupby(segment_of)
    means = grouped.mean()
    medians = grouped.median()
    sizes = pd.Series(segment_of).value_counts().sort_index()
    pop_median = numeric.median()
    rows = []
    for seg_id in sorted(names):
        rows.append(
            {
                "snapshot_date": snapshot_date.isoformat(),
                "segment_id": int(seg_id),
                "segment_name": names[seg_id],
                "size": int(sizes.get(seg_id, 0)),
                "share": float(sizes.get(seg_id, 0) / len(features)),
                "description": describe_segment(medians.loc[seg_id], pop_median),
                "centroid": json.dumps(centroids[seg_id], sort_keys=True),
                "feature_means": json.dumps({k: _clean(v) for k, v in means.loc[seg_id].items()}, sort_keys=True),
                "feature_medians": json.dumps({k: _clean(v) for k, v in medians.loc[seg_id].items()}, sort_keys=True),
                "top_categories": None,
                "run_id": run_id,
            }
        )
    return pd.DataFrame(rows)


def _clean(v: float) -> float | None:
    return None if pd.isna(v) else round(float(v), 6)
