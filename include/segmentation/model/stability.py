"""Segment stability: bootstrap (subsampling) Jaccard per segment, choosing k with it, and whether
yesterday's model still fits today's data.

- ``cluster_stability``: Hennig's clusterboot measure with the *subsetting* scheme. A fixed random
  sample of at most ``sample`` customers is drawn once; ``resamples`` times, half of it is drawn
  without replacement and k-means (k-means++, ``n_init`` starts) is refitted on that half. Each
  segment's score is the mean, over resamples, of its Jaccard similarity (on the drawn customers)
  to the best-matching refitted cluster. 0.75 or more is commonly read as stable, 0.5 or less as
  dissolved. The sample and the number of resamples are fixed, so the cost does not grow with the
  population.
- ``choose_k``: among the k whose silhouette is within ``tolerance`` of the best, the most stable.
- ``previous_fit``: how yesterday's model, warm-started on today's features, fits them: its
  silhouette and its smallest segment share.
- ``material_change``: which customers' own scaled feature vectors moved by at least
  ``MATERIAL_SHIFT`` (Euclidean, in the space k-means sees) between two snapshots.
- ``hold_still``: which customers who changed segment without a material change of their own stay
  in yesterday's segment (it still exists and is at most ``MATERIAL_SHIFT`` farther than the nearest).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from include.segmentation.model.scoring import score_labels

STABILITY_SAMPLE = 4_000
STABILITY_RESAMPLES = 20
STABLE = 0.75
DISSOLVED = 0.5
# A customer's own features moved "materially" when their vector in the model's scaled, weighted
# space moved by at least this (a quarter of one standard deviation of one full-weight feature).
# Yesterday's model is carried over (warm start, kept k, held customers) only from a snapshot at most
# this many days older: the daily predecessor, or one a weekend or an outage away. An older snapshot
# (a backfill of an earlier date, a first run after a long gap) is not the model a user saw yesterday,
# and re-running a date after backfilling an older one must give the same segments and names.
CARRY_OVER_MAX_GAP_DAYS = 7
MATERIAL_SHIFT = 0.25


def cluster_stability(
    Z: np.ndarray,
    labels: np.ndarray,
    k: int,
    seed: int,
    resamples: int = STABILITY_RESAMPLES,
    sample: int = STABILITY_SAMPLE,
    n_init: int = 2,
) -> np.ndarray:
    """Mean Jaccard of each segment 0..k-1 to its best-matching cluster refitted on half-samples (NaN if unknown)."""
    n = len(Z)
    labels = np.asarray(labels, dtype=int)
    if resamples <= 0 or n < 4 * k:
        return np.full(k, np.nan)
    rng = np.random.default_rng(seed)
    base = np.sort(rng.choice(n, size=sample, replace=False)) if n > sample else np.arange(n)
    Zb, lb = Z[base], labels[base]
    m = max(len(base) // 2, 2 * k)
    sums, counts = np.zeros(k), np.zeros(k)
    # one thread: on 2,000 rows, OpenMP start-up costs more than it saves (and the cores are shared)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for b in range(resamples):
            idx = rng.choice(len(base), size=m, replace=False)
            refit = KMeans(n_clusters=k, n_init=n_init, random_state=seed + 1 + b).fit(Zb[idx]).labels_
            jac, present = jaccard_best_match(lb[idx], refit, k)
            sums[present] += jac[present]
            counts[present] += 1
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def jaccard_best_match(original: np.ndarray, other: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each original cluster 0..k-1: the best Jaccard similarity to a cluster of ``other``, and whether it has members."""
    k_other = int(other.max()) + 1 if len(other) else 1
    table = np.zeros((k, k_other))
    np.add.at(table, (original, other), 1)
    size_a, size_b = table.sum(axis=1), table.sum(axis=0)
    union = size_a[:, None] + size_b[None, :] - table
    jac = np.where(union > 0, table / np.maximum(union, 1), 0.0).max(axis=1)
    return jac, size_a > 0


def choose_k(k_scores: list[dict[str, Any]], tolerance: float) -> tuple[int, str | None]:
    """The k to fit: the most stable among those within ``tolerance`` of the best silhouette; and a note
    when that is not the best-silhouette k. Without stability figures, the best silhouette (ties: smaller k)."""
    ordered = sorted(k_scores, key=lambda s: s["k"])
    best = max(ordered, key=lambda s: s["silhouette"])  # max keeps the first (smaller k) on ties
    close = [s for s in ordered if s["silhouette"] >= best["silhouette"] - tolerance]
    if any(not np.isfinite(s.get("stability", np.nan)) for s in close):
        return int(best["k"]), None
    pick = max(close, key=lambda s: (round(float(s["stability"]), 3), s["silhouette"]))
    if pick["k"] == best["k"]:
        return int(best["k"]), None
    return int(pick["k"]), (
        f"k={pick['k']} chosen over k={best['k']} (best silhouette {best['silhouette']:.3f}): its silhouette "
        f"{pick['silhouette']:.3f} is within {tolerance:g} and it is more stable ({pick['stability']:.2f} vs "
        f"{best['stability']:.2f})"
    )


def previous_fit(Z: np.ndarray, labels: np.ndarray, k: int, silhouette_sample: int, seed: int) -> dict[str, Any]:
    """Scores of yesterday's model on today's rows (``labels``: its warm-started fit): k, silhouette, smallest share."""
    shares = np.bincount(labels, minlength=k) / max(len(Z), 1)
    if len(np.unique(labels)) < 2:
        return {"k": k, "silhouette": -1.0, "min_share": float(shares.min())}
    sc = score_labels(Z, labels, silhouette_sample, seed)
    return {"k": k, "silhouette": float(sc["silhouette"]), "min_share": float(shares.min())}


def hold_still(
    z_before: np.ndarray, z_now: np.ndarray, centers: np.ndarray, now_col: np.ndarray, prev_col: np.ndarray,
    margin: float = MATERIAL_SHIFT,
) -> np.ndarray:
    """Which customers who changed segment should stay in their previous one: their own features did
    not move materially, their previous segment still exists (``prev_col`` >= 0), and its centre is at
    most ``margin`` farther from them than today's nearest. The boundary moved, not the customer."""
    valid = prev_col >= 0
    safe_prev = np.where(valid, prev_col, now_col)
    d_now = np.sqrt(((z_now - centers[now_col]) ** 2).sum(axis=1))
    d_prev = np.sqrt(((z_now - centers[safe_prev]) ** 2).sum(axis=1))
    return np.asarray(valid & ~material_change(z_before, z_now, margin) & (d_prev <= d_now + margin))


def material_change(Z_before: np.ndarray, Z_now: np.ndarray, threshold: float = MATERIAL_SHIFT) -> np.ndarray:
    """True for rows whose scaled vector moved by at least ``threshold`` (missing values count as moved)."""
    shift = np.sqrt(((np.asarray(Z_now) - np.asarray(Z_before)) ** 2).sum(axis=1))
    return ~(shift < threshold)
