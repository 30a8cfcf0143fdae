"""Clustering, scoring, gate, stable ids and names on synthetic blobs (no database)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, silhouette_score

from include.segmentation.model import (
    ClusterConfig,
    ClusteringError,
    fit_segments,
    match_ids,
    quality_gate,
    score_labels,
)


def _blobs(n_per: int = 150, k: int = 4, d: int = 5, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 8, size=(k, d))
    X = np.vstack([c + rng.normal(0, 1, size=(n_per, d)) for c in centers])
    truth = np.repeat(np.arange(k), n_per)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(d)]), truth


def test_recovers_k_and_clusters_deterministically() -> None:
    X, truth = _blobs()
    a = fit_segments(X, ClusterConfig(k_min=2, k_max=7, seed=1))
    b = fit_segments(X, ClusterConfig(k_min=2, k_max=7, seed=1))
    assert a.k == 4
    assert adjusted_rand_score(truth, a.labels) > 0.99
    assert np.array_equal(a.labels, b.labels) and np.allclose(a.confidence, b.confidence)
    assert [s["k"] for s in a.k_scores] == list(range(2, 8))
    assert a.scores["silhouette"] == max(s["silhouette"] for s in a.k_scores) or a.k_scores
    assert ((a.confidence > 0) & (a.confidence <= 1)).all()
    assert a.centers_raw.shape == (4, 5)


def test_minibatch_above_threshold() -> None:
    X, truth = _blobs()
    res = fit_segments(X, ClusterConfig(k_min=3, k_max=5, minibatch_threshold=100))
    assert res.algorithm == "minibatch_kmeans" and adjusted_rand_score(truth, res.labels) > 0.95


def test_outliers_flagged_by_distance_and_dbscan() -> None:
    X, truth = _blobs()
    # 15 standard deviations from its own blob, along the direction away from the data's centre.
    own = X[truth == 0].mean().to_numpy()
    away = own - X.mean().to_numpy()
    X.loc[len(X)] = own + 15.0 * away / np.linalg.norm(away)
    for method in ("distance", "dbscan"):
        res = fit_segments(X, ClusterConfig(k_min=3, k_max=6, outlier_method=method))
        assert res.is_outlier[-1], method
        assert res.is_outlier.mean() < 0.1, method


@pytest.mark.parametrize(
    "frame,match",
    [
        (pd.DataFrame({"a": [1.0]}), "too small"),
        (pd.DataFrame({"a": [1.0] * 50, "b": [2.0] * 50}), "no variance"),
        (pd.DataFrame({"a": [np.nan] * 50}), "NaN"),
    ],
)
def test_degenerate_populations_raise_clear_errors(frame: pd.DataFrame, match: str) -> None:
    with pytest.raises(ClusteringError, match=match):
        fit_segments(frame, ClusterConfig())


def test_small_population_caps_k_range() -> None:
    X, _ = _blobs(n_per=4, k=2)
    res = fit_segments(X, ClusterConfig(k_min=2, k_max=10))
    assert res.k <= 4 and any("capped" in n for n in res.notes)


def test_sampled_silhouette_close_to_exact() -> None:
    X, truth = _blobs(n_per=1000)
    exact = silhouette_score(X.to_numpy(), truth)
    est = score_labels(X.to_numpy(), truth, sample_size=2000, seed=3)
    assert est["silhouette_sample_size"] == 2000
    assert abs(est["silhouette"] - exact) < 0.02


def test_quality_gate_reasons() -> None:
    ok = quality_gate({"silhouette": 0.5}, {1: 0.5, 2: 0.5}, 0.2, 0.05)
    assert ok.passed and not ok.reasons
    bad = quality_gate({"silhouette": 0.1}, {1: 0.97, 2: 0.03}, 0.2, 0.05)
    assert not bad.passed
    assert "silhouette 0.1000 is below" in bad.reasons[0] and "segment 2 holds 3.00%" in bad.reasons[1]


def test_ids_stay_stable_and_new_segments_get_new_ids() -> None:
    prev = {7: np.array([0.0, 0.0]), 3: np.array([10.0, 10.0]), 9: np.array([-10.0, 5.0])}
    new = np.array([[10.2, 9.9], [50.0, 50.0], [0.1, -0.1]])
    ids = match_ids(new, prev, scale=np.array([1.0, 1.0]), next_id=10)
    assert ids == [3, 10, 7]
    assert match_ids(new, {}, np.ones(2), next_id=1, first_run_order=np.array([2, 0, 1])) == [2, 3, 1]
