"""The project's silhouette: equal to scikit-learn's exact value, and the sampled estimate close to it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from include.segmentation.model import sample_indices, sampled_silhouette, score_labels, silhouette


def _blobs(n: int, k: int = 5, d: int = 8, spread: float = 2.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian blobs (silhouette well inside (0, 1)) with unequal sizes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, size=(k, d))
    sizes = rng.dirichlet(np.full(k, 3.0))
    labels = rng.choice(k, size=n, p=sizes)
    return centers[labels] + rng.normal(0, spread, size=(n, d)), labels


def test_exact_silhouette_equals_scikit_learn() -> None:
    X, labels = _blobs(3000)
    X = X * 50 + 1000  # far from the origin: the float32 kernel centres the data first
    assert silhouette(X, labels) == pytest.approx(silhouette_score(X, labels), abs=1e-6)


def test_singletons_duplicates_and_label_types() -> None:
    X, labels = _blobs(600, k=3)
    labels = labels.astype(object)
    labels[0] = "alone"  # a cluster of one scores 0, as in scikit-learn
    X[5] = X[6]  # duplicate points
    names = np.array([str(v) for v in labels])
    assert silhouette(X, names) == pytest.approx(silhouette_score(X, names), abs=1e-6)


@pytest.mark.parametrize("labels", [np.zeros(10, dtype=int), np.arange(10)])
def test_silhouette_needs_between_two_and_n_minus_one_labels(labels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="2 to n-1"):
        silhouette(np.random.default_rng(0).normal(size=(10, 3)), labels)


def test_sampled_silhouette_is_within_001_of_the_exact_value() -> None:
    X, labels = _blobs(20_000, k=6, d=17, spread=3.0, seed=5)
    exact = silhouette(X, labels)
    assert 0.05 < exact < 0.9
    for seed in (1, 2, 3):
        est, used = sampled_silhouette(X, labels, 5_000, seed)
        assert used == 5_000
        assert abs(est - exact) < 0.01, (seed, est, exact)


def test_score_labels_samples_only_above_the_sample_size() -> None:
    X, labels = _blobs(1_500, k=4)
    small = score_labels(X, labels, sample_size=5_000, seed=0)
    assert small["silhouette_sample_size"] == 1_500
    assert small["silhouette"] == pytest.approx(silhouette_score(X, labels), abs=1e-6)
    big = score_labels(X, labels, sample_size=500, seed=0)
    idx = sample_indices(len(X), 500, 0)
    assert big["silhouette_sample_size"] == 500 and idx is not None and len(np.unique(idx)) == 500
    assert big["silhouette"] == pytest.approx(silhouette_score(X[idx], labels[idx]), abs=1e-6)
    assert big["davies_bouldin"] == small["davies_bouldin"]  # linear scores always use everyone
    assert np.array_equal(idx, sample_indices(len(X), 500, 0))  # the same sample every time


def test_a_sample_with_one_label_gives_nan() -> None:
    X = np.random.default_rng(0).normal(size=(1000, 2))
    labels = np.zeros(1000, dtype=int)
    labels[7] = 1
    est, used = sampled_silhouette(X, labels, 10, seed=0)
    assert used == 10 and np.isnan(est)
