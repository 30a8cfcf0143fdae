"""Segment identity: stable ids from one snapshot to the next, and readable names.

Ids: today's centroids are matched one-to-one (Hungarian assignment) to the centroids of the
previous published snapshot, both expressed in the transformed feature space and scaled with
today's scaler. A pair closer than ``max_distance`` (standard deviations, Euclidean) keeps the
previous id; an unmatched segment gets a new id, never reused (max id ever published + 1). On the
first snapshot, ids 1..k follow descending median monetary value.

Names are definitions checked customer by customer (``NAME_DEFINITIONS``, ``COMPOSITE_*``): a
segment is given a vocabulary name only when at least ``MIN_FIDELITY`` (80%) of its members meet the
name's definition; otherwise it gets a composite that is true of them, value tier x lifecycle (e.g.
"Mid value · lapsing"), made more specific (order count) when two segments would share it. The
share of members meeting the chosen name is its ``name_fidelity``. No numeric suffixes. Given the
segments, names depend only on the snapshot's own data: segments choose in ``data_order`` (size, then
first member), never in id order, because ids follow history.
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


MIN_FIDELITY = 0.8
ACTIVE_DAYS = 90
NEW_DAYS = 60

# Vocabulary, in order of preference; each definition is on customer-level features.
NAME_DEFINITIONS: dict[str, str] = {
    "Window shoppers": "no purchase in the window",
    "Champions": "bought in the last 90 days, and orders and spend both in the top quarter of buyers",
    "Loyal": "bought in the last 90 days, with at least 2 orders and at least the buyers' median orders",
    "New customers": "first seen (sign-up or first activity) in the last 60 days, and bought",
    "Bargain hunters": "at least 25% of spend discounted",
    "Lapsing": "bought before, but P(alive) below 0.5, or no purchase for more than twice their own gap "
               "between orders (and over 90 days), or a single order more than 180 days ago",
    "One-time buyers": "exactly one order in the window",
    "Active": "bought in the last 90 days",
}
COMPOSITE_TIERS: dict[str, str] = {
    "High value": "spend in the top third of buyers",
    "Mid value": "spend in the middle third of buyers",
    "Low value": "spend in the bottom third of buyers",
    "Mid-to-high value": "spend in the top two thirds of buyers",
    "Low-to-mid value": "spend in the bottom two thirds of buyers",
    "": "any spend",
}
COMPOSITE_LIFECYCLE: dict[str, str] = {
    "active": "bought in the last 90 days",
    "lapsing": "as Lapsing",
    "quiet for three months": "no purchase in the last 90 days",
    "buyers": "bought in the window",
}
COMPOSITE_ORDERS: dict[str, str] = {"": "any", "repeat buyers": "2 or more orders", "single order": "exactly 1 order"}


def _col(features: pd.DataFrame, name: str, fill: float = np.nan) -> np.ndarray:
    if name not in features:
        return np.full(len(features), fill)
    return pd.to_numeric(features[name], errors="coerce").to_numpy("float64")


def customer_flags(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean per customer for every vocabulary name and composite part (definitions above)."""
    freq = np.nan_to_num(_col(features, "frequency", 0.0))
    rec = _col(features, "recency_days", np.inf)
    spend = np.nan_to_num(_col(features, "monetary", 0.0))
    gap = _col(features, "days_between_orders", np.inf)
    tenure = _col(features, "tenure_days", np.inf)
    alive = _col(features, "p_alive")
    disc = np.nan_to_num(_col(features, "discount_share", 0.0))
    buyer = freq > 0
    buyers_freq = freq[buyer] if buyer.any() else np.array([0.0])
    buyers_spend = spend[buyer] if buyer.any() else np.array([0.0])
    f75, f50 = np.quantile(buyers_freq, 0.75), np.quantile(buyers_freq, 0.5)
    s75 = np.quantile(buyers_spend, 0.75)
    s33, s67 = np.quantile(buyers_spend, [1 / 3, 2 / 3])
    recent = buyer & (rec <= ACTIVE_DAYS)
    with np.errstate(invalid="ignore"):
        lapsing = buyer & (
            (np.nan_to_num(alive, nan=1.0) < 0.5)
            | ((freq >= 2) & (rec > 2 * gap) & (rec > ACTIVE_DAYS))
            | ((freq == 1) & (rec > 180))
        )
    flags = {
        "Window shoppers": ~buyer,
        "Champions": recent & (freq >= f75) & (spend >= s75),
        "Loyal": recent & (freq >= max(2.0, f50)),
        "New customers": buyer & (tenure <= NEW_DAYS),
        "Bargain hunters": buyer & (disc >= 0.25),
        "Lapsing": lapsing,
        "One-time buyers": freq == 1,
        "Active": recent,
        # composite parts
        "tier:High value": buyer & (spend >= s67),
        "tier:Mid value": buyer & (spend >= s33) & (spend < s67),
        "tier:Low value": buyer & (spend < s33),
        "tier:Mid-to-high value": buyer & (spend >= s33),
        "tier:Low-to-mid value": buyer & (spend < s67),
        "tier:": np.ones(len(freq), dtype=bool),
        "life:active": recent & ~lapsing,
        "life:lapsing": lapsing,
        "life:quiet for three months": buyer & (rec > ACTIVE_DAYS),
        "life:buyers": buyer,
        "orders:": np.ones(len(freq), dtype=bool),
        "orders:repeat buyers": freq >= 2,
        "orders:single order": freq == 1,
    }
    return flags


def _composites() -> list[tuple[str, str, str, int]]:
    """Every composite (tier, lifecycle, orders, specificity), most specific first."""
    out = []
    for ti, tier in enumerate(COMPOSITE_TIERS):
        t_spec = 2 if ti < 3 else (1 if tier else 0)
        for li, life in enumerate(COMPOSITE_LIFECYCLE):
            l_spec = 2 if li < 2 else (1 if li == 2 else 0)
            for orders in COMPOSITE_ORDERS:
                out.append((tier, life, orders, 2 * t_spec + 2 * l_spec + (1 if orders else 0)))
    return sorted(out, key=lambda c: -c[3])


def _composite_name(tier: str, life: str, orders: str) -> str:
    head = tier if tier else "All spend levels"
    tail = " · ".join(p for p in (life, orders) if p)
    return f"{head} · {tail}"


def data_order(segment_of: np.ndarray) -> list[int]:
    """Segment ids ordered by the snapshot's own data: larger segments first, ties by the position of
    their first member (rows are sorted by customer id).

    Names are chosen in this order (ties between equally fitting segments, and which of two segments
    takes a composite first), never in id order: ids follow history (matching with the previous
    snapshot), so id order would let a backfilled earlier date change today's names.
    """
    seg = np.asarray(segment_of)
    uniq, first, counts = np.unique(seg, return_index=True, return_counts=True)
    order = sorted(range(len(uniq)), key=lambda j: (-int(counts[j]), int(first[j])))
    return [int(uniq[j]) for j in order]


def name_segments(features: pd.DataFrame, segment_of: np.ndarray) -> tuple[dict[int, str], dict[int, float]]:
    """Unique, truthful name per segment id, and its fidelity (share of members meeting the name)."""
    flags = customer_flags(features)
    seg = np.asarray(segment_of)
    ids = data_order(seg)
    share = {i: {k: float(v[seg == i].mean()) for k, v in flags.items()} for i in ids}
    names: dict[int, str] = {}
    fidelity: dict[int, float] = {}
    used: set[str] = set()
    # vocabulary: a name goes to the segment that fits it best, if that one reaches MIN_FIDELITY
    for name in NAME_DEFINITIONS:
        cands = sorted((i for i in ids if i not in names and share[i][name] >= MIN_FIDELITY),
                       key=lambda i: (-share[i][name], ids.index(i)))
        if cands:
            names[cands[0]] = name
            fidelity[cands[0]] = share[cands[0]][name]
            used.add(name)
    composites = _composites()
    for i in ids:
        if i in names:
            continue
        best: tuple[float, str] | None = None
        for tier, life, orders, _spec in composites:
            name = _composite_name(tier, life, orders)
            if name in used:
                continue
            both = flags[f"tier:{tier}"] & flags[f"life:{life}"] & flags[f"orders:{orders}"]
            fid = float(both[seg == i].mean())
            if fid >= MIN_FIDELITY:
                best = (fid, name)
                break
            if best is None or fid > best[0]:
                best = (fid, name)
        assert best is not None
        names[i], fidelity[i] = best[1], best[0]
        used.add(best[1])
    return names, fidelity
