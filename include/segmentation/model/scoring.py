"""Scoring: silhouette (sampled), Davies-Bouldin and Calinski-Harabasz, and the publish quality gate.

The exact silhouette is O(n^2); above ``sample_size`` customers it is estimated on a fixed random
sample (the size used is recorded with the score). Davies-Bouldin and Calinski-Harabasz are linear
and always computed on everyone given.

``silhouette`` computes the value of ``sklearn.metrics.silhouette_score`` (Euclidean) without its
per-row ``bincount``: distances are computed for a block of rows at a time in float32 (one matrix
product) and summed per cluster with a second matrix product against the one-hot labels. The
difference to scikit-learn is below 1e-6 and it runs several times faster, which matters because
the k search scores every k. BLAS runs single-threaded inside it: the blocks are small and, on a
busy machine, BLAS threads contending for cores made it up to 10x slower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score
from threadpoolctl import threadpool_limits

# A block's distance matrix (rows x n float32) targets this size, within [_MIN_BLOCK, _MAX_BLOCK] rows.
_BLOCK_BYTES = 4 * 1024 * 1024
_MIN_BLOCK, _MAX_BLOCK = 32, 512


def silhouette(Z: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient over every row of ``Z`` (Euclidean), as ``sklearn``'s ``silhouette_score``.

    Exact (no sampling), O(n^2) time and O(n) memory. A row alone in its cluster scores 0, as in
    scikit-learn. Raises ``ValueError`` unless 2 <= number of distinct labels <= n - 1.
    """
    X64 = np.asarray(Z, dtype="float64")
    n = len(X64)
    codes, lab = np.unique(np.asarray(labels), return_inverse=True)
    lab = lab.ravel()
    k = len(codes)
    if not 2 <= k <= n - 1:
        raise ValueError(f"silhouette needs 2 to n-1 distinct labels, got {k} for {n} rows")
    # Centre first: squared norms stay small, so the float32 expansion |x|^2 + |y|^2 - 2xy loses little.
    X64 = X64 - X64.mean(axis=0)
    X = np.ascontiguousarray(X64, dtype="float32")
    XT = np.ascontiguousarray(X.T)
    sq = np.einsum("ij,ij->i", X64, X64).astype("float32")
    onehot = np.zeros((n, k), dtype="float32")
    onehot[np.arange(n), lab] = 1.0
    sizes = np.bincount(lab, minlength=k).astype("float64")
    block = int(min(max(_BLOCK_BYTES // (4 * n), _MIN_BLOCK), _MAX_BLOCK))
    total = 0.0
    with threadpool_limits(limits=1, user_api="blas"):
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            rows = np.arange(hi - lo)
            d2 = X[lo:hi] @ XT
            d2 *= -2.0
            d2 += sq[None, :]
            d2 += sq[lo:hi, None]
            np.maximum(d2, 0.0, out=d2)
            d2[rows, rows + lo] = 0.0  # a row's distance to itself is exactly 0
            np.sqrt(d2, out=d2)
            sums = (d2 @ onehot).astype("float64")  # (hi - lo) x k: summed distance to each cluster
            own = lab[lo:hi]
            own_size = sizes[own]
            a = sums[rows, own] / np.maximum(own_size - 1.0, 1.0)
            mean_other = sums / sizes
            mean_other[rows, own] = np.inf
            b = mean_other.min(axis=1)
            denom = np.maximum(a, b)
            s = np.divide(b - a, denom, out=np.zeros_like(a), where=denom > 0)
            total += float(np.where(own_size > 1, s, 0.0).sum())
    return total / n


def sample_indices(n: int, sample_size: int, seed: int) -> np.ndarray | None:
    """The fixed random sample (sorted row numbers) the silhouette is estimated on; None = every row."""
    if n <= sample_size:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=sample_size, replace=False))


def sampled_silhouette(Z: np.ndarray, labels: np.ndarray, sample_size: int, seed: int) -> tuple[float, int]:
    """Silhouette on at most ``sample_size`` rows (a fixed random sample); returns (value, rows used).

    NaN when the sample holds a single label (a sample may miss a tiny segment).
    """
    idx = sample_indices(len(Z), sample_size, seed)
    if idx is None:
        return silhouette(Z, labels), len(Z)
    lab = np.asarray(labels)[idx]
    if len(np.unique(lab)) < 2:
        return float("nan"), len(idx)
    return silhouette(np.asarray(Z)[idx], lab), len(idx)


def score_labels(Z: np.ndarray, labels: np.ndarray, sample_size: int, seed: int) -> dict[str, Any]:
    """Silhouette (on at most ``sample_size`` rows), Davies-Bouldin, Calinski-Harabasz of a labelling."""
    if len(np.unique(labels)) < 2:
        raise ValueError("scores need at least two segments")
    sil, used = sampled_silhouette(Z, labels, sample_size, seed)
    return {
        "silhouette": float(sil),
        "silhouette_sample_size": int(used),
        "davies_bouldin": float(davies_bouldin_score(Z, labels)),
        "calinski_harabasz": float(calinski_harabasz_score(Z, labels)),
    }


@dataclass(frozen=True)
class GateResult:
    """Outcome of the quality gate: publishable or not, and why."""

    passed: bool
    reasons: list[str]


def quality_gate(scores: dict[str, Any], shares: dict[int, float], min_silhouette: float, min_share: float) -> GateResult:
    """Refuse a model whose silhouette is under ``min_silhouette`` or with a segment under ``min_share``."""
    reasons: list[str] = []
    sil = scores.get("silhouette")
    if sil is None or not np.isfinite(sil) or sil < min_silhouette:
        reasons.append(f"silhouette {sil:.4f} is below the minimum {min_silhouette:.4f}")
    small = {seg: share for seg, share in shares.items() if share < min_share}
    for seg, share in sorted(small.items()):
        reasons.append(f"segment {seg} holds {share:.2%} of customers, under the minimum share {min_share:.2%}")
    return GateResult(passed=not reasons, reasons=reasons)
