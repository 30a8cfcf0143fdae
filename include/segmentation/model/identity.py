"""Segment identity: stable ids from one snapshot to the next, and readable names.

Ids: today's centroids are matched one-to-one (Hungarian assignment) to the centroids of the
previous published snapshot, both expressed in the transformed feature space and scaled with
today's scaler. A pair closer than ``max_distance`` (standard deviations, Euclidean) keeps the
previous id; an unmatched segment gets a new id, never reused (max id ever published + 1). On the
first snapshot, ids 1..k follow descending median monetary value.

Names follow documented rules on each segment's medians (original units) relative to the whole
population, first match wins:
  1. median orders = 0                                  -> "Window shoppers"
  2. median tenure <= 60 days                           -> "New customers"
  3. median recency >= 180 days and median orders >= 2  -> "At risk"
  4. median orders <= 1 and median recency >= 60 days   -> "One-time buyers"
  5. median recency >= 180 days                         -> "Hibernating"
  6. median discount share >= 25%                       -> "Bargain hunters"
  7. median monetary >= 2x population median, median orders >= population 75th percentile
     and median recency <= 30 days                      -> "Champions"
  8. median orders >= population median                 -> "Loyal"
  9. otherwise                                          -> "Occasional"
Two segments with the same name are told apart by a suffix: "Loyal", "Loyal 2".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

DEFAULT_MAX_DISTANCE = 1.5


def match_ids(
    new_centers_raw: np.ndarray,
    previous: dict[int, np.ndarray],
    scale: np.ndarray,
    next_id: int,
    max_distance: float = DEFAULT_MAX_DISTANCE,
    first_run_order: np.ndarray | None = None,
) -> list[int]:
    """Segment id for each new centroid (row of ``new_centers_raw``)."""
    k = len(new_centers_raw)
    ids: list[int | None] = [None] * k
    if previous:
        prev_ids = sorted(previous)
        prev = np.vstack([previous[i] for i in prev_ids])
        a = new_centers_raw / scale
        b = prev / scale
        cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols, strict=True):
            if cost[r, c] <= max_distance:
                ids[r] = prev_ids[c]
    order = list(first_run_order) if first_run_order is not None else list(range(k))
    nxt = next_id
    for idx in order:
        if ids[idx] is None:
            ids[idx] = nxt
            nxt += 1
    return [int(i) for i in ids]  # type: ignore[arg-type]


def name_segments(medians: pd.DataFrame, population: pd.DataFrame) -> dict[int, str]:
    """Readable name per segment id from per-segment medians (index = segment id) and population features."""
    pop_monetary = float(population["monetary"].median())
    pop_freq_median = float(population["frequency"].median())
    pop_freq_q75 = float(population["frequency"].quantile(0.75))
    names: dict[int, str] = {}
    for seg_id, m in medians.sort_index().iterrows():
        if m["frequency"] == 0:
            name = "Window shoppers"
        elif m["tenure_days"] <= 60:
            name = "New customers"
        elif m["recency_days"] >= 180 and m["frequency"] >= 2:
            name = "At risk"
        elif m["frequency"] <= 1 and m["recency_days"] >= 60:
            name = "One-time buyers"
        elif m["recency_days"] >= 180:
            name = "Hibernating"
        elif m["discount_share"] >= 0.25:
            name = "Bargain hunters"
        elif (
            m["monetary"] >= 2 * max(pop_monetary, 0.0)
            and m["frequency"] >= pop_freq_q75
            and m["recency_days"] <= 30
        ):
            name = "Champions"
        elif m["frequency"] >= pop_freq_median:
            name = "Loyal"
        else:
            name = "Occasional"
        names[int(seg_id)] = name
    return _dedupe(names)


def _dedupe(names: dict[int, str]) -> dict[int, str]:
    seen: dict[str, int] = {}
    out: dict[int, str] = {}
    for seg_id in sorted(names):
        base = names[seg_id]
        seen[base] = seen.get(base, 0) + 1
        out[seg_id] = base if seen[base] == 1 else f"{base} {seen[base]}"
    return out
