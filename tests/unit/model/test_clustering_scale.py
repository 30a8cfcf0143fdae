"""Clustering shortcuts for large populations: the distinct-vector probe and the warm-started final fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from include.segmentation.model import clustering
from include.segmentation.model.clustering import ClusterConfig, _distinct_rows, _fit_k, fit_segments


def _blobs(n: int, k: int = 4, d: int = 5, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 6, size=(k, d))
    truth = rng.integers(0, k, size=n)
    X = centers[truth] + rng.normal(0, 1, size=(n, d))
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(d)]), truth


def test_distinct_rows_probe() -> None:
    rng = np.random.default_rng(1)
    many = rng.normal(size=(20_000, 3))
    assert _distinct_rows(many, enough=11, seed=0) >= 11
    few = np.repeat(rng.normal(size=(3, 3)), 5_000, axis=0)  # 15,000 rows, 3 distinct vectors
    assert _distinct_rows(few, enough=11, seed=0) == 3
    nearly = few.copy()
    nearly[-1] += 1e-12  # equal after rounding to 1e-9
    assert _distinct_rows(nearly, enough=11, seed=0) == 3
    rare = few.copy()
    rare[-1] += 1.0  # a fourth vector the probe may miss: the full count still finds it
    assert _distinct_rows(rare, enough=11, seed=0) == 4


def test_small_population_reuses_the_search_fit() -> None:
    X, _ = _blobs(400)
    cfg = ClusterConfig(k_min=2, k_max=6, seed=3)
    res = fit_segments(X, cfg)
    values = X.to_numpy()
    Z = (values - values.mean(axis=0)) / values.std(axis=0)
    _, _, labels = _fit_k(Z, res.k, cfg)  # what a separate final fit would give
    assert np.array_equal(res.labels, labels)


def test_large_population_final_fit_starts_from_the_sample_solution() -> None:
    X, truth = _blobs(6_000, k=5, d=6, seed=4)
    for algorithm in ("kmeans", "minibatch_kmeans"):
        cfg = ClusterConfig(k_min=3, k_max=7, search_sample=800, silhouette_sample=600, seed=2, algorithm=algorithm)
        a = fit_segments(X, cfg)
        b = fit_segments(X, cfg)
        assert a.k == 5 and a.algorithm == algorithm
        assert np.array_equal(a.labels, b.labels)  # deterministic
        assert adjusted_rand_score(truth, a.labels) > 0.95
        values = X.to_numpy()
        Z = (values - values.mean(axis=0)) / values.std(axis=0)
        cold, _, _ = _fit_k(Z, a.k, cfg)  # n_init cold k-means++ starts on everyone
        warm_inertia = float(((Z - a.centers_scaled[a.labels]) ** 2).sum())
        assert warm_inertia <= cold.inertia_ * 1.01


def test_only_the_final_fit_is_warm_started(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, bool]] = []
    original = clustering._model

    def spy(k, n, cfg, init=None):
        seen.append((n, init is not None))
        return original(k, n, cfg, init)

    monkeypatch.setattr(clustering, "_model", spy)
    X, _ = _blobs(3_000, k=4, seed=6)
    fit_segments(X, ClusterConfig(k_min=3, k_max=5, search_sample=500, silhouette_sample=400))
    assert all(not warm for n, warm in seen if n <= 500)  # the k search: k-means++ starts
    assert seen[-1] == (3_000, True)  # everyone: one warm start
