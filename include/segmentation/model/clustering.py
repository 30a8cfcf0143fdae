"""Clustering: standardise the model features, choose k by silhouette, fit, assign, flag outliers.

- k-means with k-means++ initialisation; above ``minibatch_threshold`` customers MiniBatchKMeans.
- k is searched over ``[k_min, k_max]`` on a fixed random sample (``search_sample``); each k gets
  its silhouette and its bootstrap stability (``model/stability.py``). Among the k within
  ``k_stability_tolerance`` of the best silhouette the most stable wins; the chosen k is then
  fitted on everyone, starting from the sample's centres (one warm start instead of ``n_init``
  k-means++ starts).
- Holding still: given the previous published model's centroids, k-means is warm-started from
  them on today's search sample; when that model still fits (its silhouette is within
  ``k_change_min_gain`` of today's choice, and no segment is under ``min_share``), its k is kept
  and the fit on everyone starts from it; otherwise k (or the model) changes. A note says why.
- Soft membership (``confidence``): a Gaussian-kernel softmax over squared distances to every
  centroid, with the bandwidth set to the model's mean within-cluster squared distance.
- Micro-segments: a cluster holding less than ``min_share`` of the customers is not a segment a
  marketer can use; its members are set aside as outliers and k-means is refitted on the rest
  (at most ``max_trim_rounds`` times and ``max_trim_share`` of the population). Set-aside
  customers are then assigned to their nearest segment with ``is_outlier`` true. If tiny
  clusters remain, the quality gate rejects the model.
- Outliers: also a customer whose distance to its centroid is beyond Q3 + 3 IQR of its
  segment's distances; ``outlier_method="dbscan"`` instead flags DBSCAN noise points (documented
  alternative, for populations up to ``DBSCAN_MAX_ROWS``).
Every random choice uses ``seed``: the same input gives the same output.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN, KMeans, MiniBatchKMeans
from sklearn.neighbors import NearestNeighbors

from include.segmentation.errors import PermanentError
from include.segmentation.model.scoring import score_labels
from include.segmentation.model.stability import (
    STABILITY_RESAMPLES,
    STABILITY_SAMPLE,
    choose_k,
    cluster_stability,
    previous_fit,
)

log = logging.getLogger("include.segmentation")

DBSCAN_MAX_ROWS = 200_000


class ClusteringError(PermanentError, ValueError):
    """The population cannot be clustered as asked (too small, no variance); nothing is published."""


@dataclass(frozen=True)
class ClusterConfig:
    """Knobs of the clustering stage (defaults are the scheduled run's)."""

    k_min: int = 3
    k_max: int = 10
    algorithm: str = "auto"  # "auto", "kmeans" or "minibatch_kmeans"
    seed: int = 42
    minibatch_threshold: int = 200_000
    search_sample: int = 50_000
    silhouette_sample: int = 10_000
    n_init: int = 4
    outlier_method: str = "distance"  # "distance" or "dbscan"
    min_share: float = 0.0
    max_trim_rounds: int = 2
    max_trim_share: float = 0.05
    k_change_min_gain: float = 0.02
    k_stability_tolerance: float = 0.01
    stability_sample: int = STABILITY_SAMPLE
    stability_resamples: int = STABILITY_RESAMPLES

    def __post_init__(self) -> None:
        if self.k_min < 2 or self.k_max < self.k_min:
            raise ClusteringError(f"k range must satisfy 2 <= k_min <= k_max, got {self.k_min}..{self.k_max}")
        if self.algorithm not in {"auto", "kmeans", "minibatch_kmeans"}:
            raise ClusteringError(f"unknown algorithm {self.algorithm!r} (auto, kmeans, minibatch_kmeans)")
        if self.outlier_method not in {"distance", "dbscan"}:
            raise ClusteringError(f"unknown outlier_method {self.outlier_method!r} (distance, dbscan)")


@dataclass
class ClusterResult:
    """A fitted segmentation of one snapshot."""

    k: int
    algorithm: str
    labels: np.ndarray
    centers_scaled: np.ndarray
    centers_raw: np.ndarray  # centroids in the transformed, unscaled feature space
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    weights: np.ndarray
    distance: np.ndarray
    confidence: np.ndarray
    is_outlier: np.ndarray
    scores: dict[str, Any]
    k_scores: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stability: np.ndarray | None = None  # per segment (row of centers): mean bootstrap Jaccard
    kept_previous: bool = False  # warm-started from the previous model's centroids, its k kept


def scale_features(
    values: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The space k-means sees: standardised columns times the family weights; also the mean and scale
    (a constant column gets scale 1). The one definition, used by the clustering and the report."""
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    scale = np.where(std > 0, std, 1.0)
    w = np.ones(values.shape[1]) if weights is None else np.asarray(weights, dtype="float64")
    return (values - mean) / scale * w, mean, scale


def _model(k: int, n: int, cfg: ClusterConfig, init: np.ndarray | None = None) -> KMeans | MiniBatchKMeans:
    """The k-means estimator for ``n`` rows; ``init`` (k x d centres) replaces k-means++ with one warm start."""
    algo = cfg.algorithm
    if algo == "auto":
        algo = "minibatch_kmeans" if n > cfg.minibatch_threshold else "kmeans"
    start: Any = "k-means++" if init is None else init
    n_init = cfg.n_init if init is None else 1
    if algo == "minibatch_kmeans":
        return MiniBatchKMeans(
            n_clusters=k, init=start, n_init=n_init, random_state=cfg.seed, batch_size=8192, max_iter=200
        )
    return KMeans(n_clusters=k, init=start, n_init=n_init, random_state=cfg.seed)


def _algo_name(model: KMeans | MiniBatchKMeans) -> str:
    return "minibatch_kmeans" if isinstance(model, MiniBatchKMeans) else "kmeans"


def fit_segments(
    X: pd.DataFrame, cfg: ClusterConfig, weights: np.ndarray | None = None, previous: np.ndarray | None = None
) -> ClusterResult:
    """Fit the segmentation on transformed model features ``X`` (rows = customers).

    ``weights`` multiply the standardised columns (feature-family balance); default all ones.
    ``previous``: the previous published model's centroids (k x d, transformed and unscaled, as
    ``centers_raw``); when they still fit, their k is kept and k-means starts from them.
    """
    n = len(X)
    notes: list[str] = []
    values = X.to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        bad = [c for c in X.columns if not np.isfinite(X[c].to_numpy(dtype="float64")).all()]
        raise ClusteringError(f"features contain NaN or infinite values: {', '.join(bad)}")
    if n < 2 * cfg.k_min:
        raise ClusteringError(
            f"population of {n} customer(s) is too small for k_min={cfg.k_min}: need at least {2 * cfg.k_min}"
        )
    distinct = _distinct_rows(values, cfg.k_max + 1, cfg.seed)
    if distinct < cfg.k_min:
        raise ClusteringError(
            f"only {distinct} distinct feature vector(s) among {n} customers: features carry no variance to cluster"
        )
    k_max = min(cfg.k_max, distinct - 1, n // 2)
    if k_max < cfg.k_max:
        notes.append(f"k range capped at {k_max} (population {n}, {distinct} distinct feature vectors)")
    k_max = max(k_max, cfg.k_min)

    Z, mean, scale = scale_features(values, weights)
    w = np.ones(values.shape[1]) if weights is None else np.asarray(weights, dtype="float64")
    rng = np.random.default_rng(cfg.seed)
    search_idx = np.sort(rng.choice(n, size=cfg.search_sample, replace=False)) if n > cfg.search_sample else None
    Zs = Z[search_idx] if search_idx is not None else Z

    k_scores: list[dict[str, Any]] = []
    best: tuple[float, int] | None = None
    search_fits: dict[int, tuple[KMeans | MiniBatchKMeans, np.ndarray, np.ndarray]] = {}
    for k in range(cfg.k_min, k_max + 1):
        started = time.perf_counter()
        model, inliers, search_labels = search_fits[k] = _fit_k(Zs, k, cfg)
        if len(np.unique(search_labels)) < 2:
            continue
        sc = score_labels(Zs, search_labels, cfg.silhouette_sample, cfg.seed)
        shares = np.bincount(search_labels, minlength=k) / len(Zs)
        per_segment = cluster_stability(
            Zs, search_labels, k, cfg.seed, cfg.stability_resamples, cfg.stability_sample
        )
        sc.update(
            {"k": k, "inertia": float(model.inertia_), "fitted_on": int(inliers.sum()), "set_aside": int((~inliers).sum()),
             "min_share": float(shares.min()), "stability": _mean(per_segment)}
        )
        k_scores.append(sc)
        log.info("k=%d silhouette=%.4f stability=%.3f elapsed %.1f s", k, sc["silhouette"], sc["stability"],
                 time.perf_counter() - started)
        if best is None or sc["silhouette"] > best[0] + 1e-12:
            best = (sc["silhouette"], k)
    if best is None:
        raise ClusteringError("no k in the range produced at least two segments")
    k, choice_note = choose_k(k_scores, cfg.k_stability_tolerance)
    if choice_note:
        notes.append(choice_note)
    today = next(s for s in k_scores if s["k"] == k)
    warm: tuple[KMeans | MiniBatchKMeans, np.ndarray, np.ndarray] | None = None
    if previous is not None and len(previous):
        prev_scaled = np.nan_to_num((np.asarray(previous, dtype="float64") - mean) / scale * w)
        warm, decision = _keep_previous(Zs, prev_scaled, today, cfg, (cfg.k_min, k_max))
        notes.append(decision)
        if warm is not None:
            k = len(warm[0].cluster_centers_)

    if warm is not None and search_idx is None:
        model, inliers, labels = warm  # the check already fitted everyone from yesterday's centres
    elif warm is not None:
        model, inliers, labels = _fit_k(Z, k, replace(cfg, max_trim_rounds=0), init=warm[0].cluster_centers_)
    elif search_idx is None:
        model, inliers, labels = search_fits[k]  # the search already fitted everyone: the same fit
    else:
        # Warm start from the sample's solution (k-means++ with n_init starts, converged): the fit
        # on everyone then needs a few passes instead of n_init cold starts (1M customers: about 1 s
        # instead of 6-10 s, at an equal or lower inertia; see benchmarks/README.md).
        model, inliers, labels = _fit_k(Z, k, cfg, init=search_fits[k][0].cluster_centers_)
    if (~inliers).any():
        notes.append(f"{int((~inliers).sum())} customers of micro-segments set aside as outliers and reassigned")
    if len(np.unique(labels)) < k:
        raise ClusteringError(f"k-means produced empty segments for k={k}")
    centers = model.cluster_centers_
    sq = model.transform(Z) ** 2
    own = sq[np.arange(n), labels]
    distance = np.sqrt(own)
    confidence = soft_membership(sq - own.min(), float(own.mean()))[np.arange(n), labels]

    is_outlier = ~inliers
    if cfg.outlier_method == "dbscan":
        is_outlier |= _dbscan_outliers(Z, cfg)
    else:
        for c in range(k):
            m = labels == c
            q1, q3 = np.percentile(distance[m], [25, 75])
            is_outlier[m] |= distance[m] > q3 + 3.0 * (q3 - q1)

    scores = score_labels(Z, labels, cfg.silhouette_sample, cfg.seed)
    stability = cluster_stability(Z, labels, k, cfg.seed, cfg.stability_resamples, cfg.stability_sample)
    scores["stability"] = _mean(stability)
    return ClusterResult(
        k=k,
        algorithm=_algo_name(model),
        labels=labels,
        centers_scaled=centers,
        centers_raw=np.divide(centers, w, out=np.zeros_like(centers), where=w != 0) * scale + mean,
        scaler_mean=mean,
        scaler_scale=scale,
        weights=w,
        distance=distance,
        confidence=confidence,
        is_outlier=is_outlier,
        scores=scores,
        k_scores=k_scores,
        notes=notes,
        stability=stability,
        kept_previous=warm is not None,
    )


def _mean(values: np.ndarray) -> float:
    """Mean of the finite values (NaN when there is none), as a plain float for JSON."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _keep_previous(
    Zs: np.ndarray, prev: np.ndarray, today: dict[str, Any], cfg: ClusterConfig, k_range: tuple[int, int]
) -> tuple[tuple[KMeans | MiniBatchKMeans, np.ndarray, np.ndarray] | None, str]:
    """Yesterday's model warm-started on today's sample (model, inliers, labels) when it still fits, else
    None; and why. Yesterday's centres (scaled) start k-means on today's rows: the model that would be
    published if kept, so its silhouette and smallest share are the figures to compare."""
    k_prev = len(prev)
    if not k_range[0] <= k_prev <= k_range[1]:
        return None, f"k changed from {k_prev} to {today['k']}: the previous k is outside today's range {k_range[0]}..{k_range[1]}"
    # No micro-segment trimming here: its refit restarts from k-means++, which would not be
    # yesterday's model; a segment under the minimum share means the model no longer fits.
    warm = _fit_k(Zs, k_prev, replace(cfg, max_trim_rounds=0), init=prev)
    fit = previous_fit(Zs, warm[2], k_prev, cfg.silhouette_sample, cfg.seed)
    gain = today["silhouette"] - fit["silhouette"]
    figures = (f"silhouette {today['silhouette']:.3f} at k={today['k']} today vs {fit['silhouette']:.3f} for the "
               f"previous model's {k_prev} segments")
    if fit["min_share"] < cfg.min_share:
        verb = f"k changed from {k_prev} to {today['k']}" if today["k"] != k_prev else f"model refitted at k={k_prev}"
        return None, (f"{verb}: the previous model no longer fits (a segment would hold {fit['min_share']:.1%} "
                      f"< minimum share {cfg.min_share:.1%}); {figures}")
    if gain > cfg.k_change_min_gain:
        verb = f"k changed from {k_prev} to {today['k']}" if today["k"] != k_prev else f"model refitted at k={k_prev}"
        return None, f"{verb}: silhouette gain {gain:.3f} > k_change_min_gain {cfg.k_change_min_gain:g} ({figures})"
    return warm, (f"k kept at {k_prev}, warm-started from the previous model: it still fits today's data "
                  f"(gain {gain:.3f} <= k_change_min_gain {cfg.k_change_min_gain:g}; {figures})")


def soft_membership(sq: np.ndarray, bandwidth: float) -> np.ndarray:
    """Confidence of membership in every segment (rows: customers, columns: centroids): a
    Gaussian-kernel softmax over squared distances ``sq`` with ``bandwidth`` (the model's mean
    within-cluster squared distance). The one definition used by the fit, held customers and live
    assignment."""
    logits = -sq / (2.0 * max(bandwidth, 1e-9))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _distinct_rows(values: np.ndarray, enough: int, seed: int, probe: int = 5_000) -> int:
    """Number of distinct rows (rounded to 1e-9), or a lower bound of it once that reaches ``enough``.

    The k range only needs to know whether there are more than ``k_max`` distinct vectors, so a
    random probe of rows is counted first; only when the probe has too few distinct rows is the
    whole population counted (sorting a million rows takes seconds).
    """
    n = len(values)
    if n > probe:
        idx = np.random.default_rng(seed).choice(n, size=probe, replace=False)
        found = len(np.unique(values[idx].round(9), axis=0))
        if found >= enough:
            return found
    return len(np.unique(values.round(9), axis=0))


def _fit_k(
    Z: np.ndarray, k: int, cfg: ClusterConfig, init: np.ndarray | None = None
) -> tuple[KMeans | MiniBatchKMeans, np.ndarray, np.ndarray]:
    """Fit k clusters, setting aside micro-segments; returns the model, inlier mask and labels of all rows.

    ``init``: starting centres (k x d) instead of k-means++ for the first fit; a refit after
    setting micro-segments aside starts with k-means++, as without ``init``.
    """
    n = len(Z)
    inliers = np.ones(n, dtype=bool)
    for round_ in range(cfg.max_trim_rounds + 1):
        model = _model(k, int(inliers.sum()), cfg, init if round_ == 0 else None).fit(Z[inliers])
        shares = np.bincount(model.labels_, minlength=k) / n
        small = np.flatnonzero(shares < cfg.min_share)
        if not len(small) or round_ == cfg.max_trim_rounds:
            break
        drop = np.isin(model.labels_, small)
        if (~inliers).sum() + drop.sum() > cfg.max_trim_share * n or inliers.sum() - drop.sum() < 2 * k:
            break
        inliers[np.flatnonzero(inliers)[drop]] = False
    labels = model.predict(Z).astype(int) if (~inliers).any() else model.labels_.astype(int)
    return model, inliers, labels


def _dbscan_outliers(Z: np.ndarray, cfg: ClusterConfig) -> np.ndarray:
    """DBSCAN noise points; eps = the 95th percentile of each point's distance to its min_samples-th neighbour."""
    n, d = Z.shape
    if n > DBSCAN_MAX_ROWS:
        raise ClusteringError(f"outlier_method='dbscan' supports up to {DBSCAN_MAX_ROWS} customers, got {n}")
    min_samples = min(max(2 * d, 5), n - 1)
    nn = NearestNeighbors(n_neighbors=min_samples).fit(Z)
    dist, _ = nn.kneighbors(Z)
    eps = float(np.percentile(dist[:, -1], 95)) or 1e-6
    labels = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(Z)
    return labels == -1
