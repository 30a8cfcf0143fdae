"""Scoring: silhouette (sampled), Davies-Bouldin and Calinski-Harabasz, and the publish quality gate.

The exact silhouette is O(n^2); above ``sample_size`` customers it is estimated on a fixed random
sample (the size used is recorded with the score). Davies-Bouldin and Calinski-Harabasz are linear
and always computed on everyone given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score


def score_labels(Z: np.ndarray, labels: np.ndarray, sample_size: int, seed: int) -> dict[str, Any]:
    """Silhouette (on at most ``sample_size`` rows), Davies-Bouldin, Calinski-Harabasz of a labelling."""
    n = len(Z)
    if len(np.unique(labels)) < 2:
        raise ValueError("scores need at least two segments")
    if n > sample_size:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=sample_size, replace=False))
        # A sample may miss a tiny segment; silhouette needs two labels in it.
        sil = float(silhouette_score(Z[idx], labels[idx])) if len(np.unique(labels[idx])) > 1 else float("nan")
        used = sample_size
    else:
        sil = float(silhouette_score(Z, labels))
        used = n
    return {
        "silhouette": sil,
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
