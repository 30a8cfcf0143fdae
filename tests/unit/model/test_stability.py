"""Bootstrap stability, choosing k with it, and keeping yesterday's model while it still fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from include.segmentation.model import ClusterConfig, fit_segments
from include.segmentation.model.clustering import scale_features
from include.segmentation.model.stability import (
    MATERIAL_SHIFT,
    choose_k,
    cluster_stability,
    hold_still,
    jaccard_best_match,
    material_change,
)

CENTRES = np.array([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 8.0, 0.0], [0.0, 0.0, 8.0]])


def blobs(n_per: int, seed: int, centres: np.ndarray = CENTRES, spread: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = np.vstack([c + rng.normal(0, spread, size=(n_per, centres.shape[1])) for c in centres])
    return pd.DataFrame(rows, columns=[f"f{i}" for i in range(centres.shape[1])])


def test_jaccard_best_match_counts_overlap_over_union() -> None:
    original = np.array([0, 0, 0, 1, 1, 1])
    other = np.array([0, 0, 1, 1, 1, 1])
    jac, present = jaccard_best_match(original, other, 3)
    # cluster 0 {0,1,2} vs {0,1}: 2/3; cluster 1 {3,4,5} vs {2,3,4,5}: 3/4; cluster 2 has no member
    assert jac[:2] == pytest.approx([2 / 3, 3 / 4])
    assert present.tolist() == [True, True, False]


def test_separated_blobs_are_stable_and_a_split_gaussian_is_not() -> None:
    X = blobs(300, seed=1).to_numpy()
    labels = np.argmin(((X[:, None, :] - CENTRES[None]) ** 2).sum(axis=2), axis=1)
    stable = cluster_stability(X, labels, 4, seed=3, resamples=10)
    assert stable.shape == (4,) and (stable > 0.95).all()

    rng = np.random.default_rng(2)
    G = rng.normal(size=(1200, 8))  # one round cloud: any split into 5 is arbitrary
    from sklearn.cluster import KMeans

    split = KMeans(5, n_init=1, random_state=0).fit(G).labels_
    unstable = cluster_stability(G, split, 5, seed=3, resamples=10)
    assert np.nanmean(unstable) < 0.75 < stable.mean()


def test_stability_cost_is_bounded_by_the_sample() -> None:
    X = blobs(3000, seed=4).to_numpy()
    labels = np.argmin(((X[:, None, :] - CENTRES[None]) ** 2).sum(axis=2), axis=1)
    few = cluster_stability(X, labels, 4, seed=1, resamples=3, sample=500)
    assert np.isfinite(few).all() and (few > 0.9).all()
    assert np.isnan(cluster_stability(X, labels, 4, seed=1, resamples=0)).all()


def test_choose_k_prefers_the_more_stable_within_tolerance() -> None:
    scores = [
        {"k": 3, "silhouette": 0.40, "stability": 0.95},
        {"k": 4, "silhouette": 0.405, "stability": 0.70},
        {"k": 5, "silhouette": 0.30, "stability": 0.99},
    ]
    k, note = choose_k(scores, tolerance=0.01)
    assert k == 3 and note is not None and "more stable" in note
    k, note = choose_k(scores, tolerance=0.0)
    assert k == 4 and note is None
    no_stability = [{"k": 3, "silhouette": 0.4, "stability": float("nan")}, {"k": 4, "silhouette": 0.39}]
    assert choose_k(no_stability, tolerance=0.05) == (3, None)


def test_material_change_is_a_distance_threshold() -> None:
    before = np.zeros((3, 2))
    now = np.array([[0.0, MATERIAL_SHIFT / 2], [MATERIAL_SHIFT, 0.0], [np.nan, 0.0]])
    assert material_change(before, now).tolist() == [False, True, True]


def test_hold_still_keeps_customers_the_boundary_passed_over() -> None:
    centers = np.array([[0.0, 0.0], [2.0, 0.0]])
    before = np.array([[1.05, 0.0], [1.05, 0.0], [0.0, 0.0], [1.05, 0.0]])
    now = np.array([[1.02, 0.0], [1.9, 0.0], [1.9, 0.0], [1.02, 0.0]])
    now_col = np.array([1, 1, 1, 1])  # everyone is nearest to centre 1 today
    prev_col = np.array([0, 0, 0, -1])  # yesterday all in 0 (the last one's segment is gone)
    held = hold_still(before, now, centers, now_col, prev_col)
    # 0: barely moved, centre 0 almost as close -> held; 1: moved materially; 2: moved materially;
    # 3: its previous segment no longer exists
    assert held.tolist() == [True, False, False, False]


def test_scale_features_is_the_standard_scaler_times_the_weights() -> None:
    X = blobs(50, seed=5).to_numpy().copy()
    X[:, 2] = 1.0  # a constant column keeps scale 1
    w = np.array([1.0, 0.5, 2.0])
    Z, mean, scale = scale_features(X, w)
    assert np.allclose(Z, StandardScaler().fit_transform(X) * w)
    assert scale[2] == 1.0 and np.allclose(mean, X.mean(axis=0))


CFG = ClusterConfig(k_min=2, k_max=6, seed=0, min_share=0.02, stability_resamples=8)


def test_every_k_gets_silhouette_and_stability_and_segments_get_stability() -> None:
    result = fit_segments(blobs(200, seed=6), CFG)
    assert result.k == 4
    assert [s["k"] for s in result.k_scores] == [2, 3, 4, 5, 6]
    assert all(0 <= s["stability"] <= 1 and -1 <= s["silhouette"] <= 1 for s in result.k_scores)
    assert result.stability is not None and result.stability.shape == (4,) and (result.stability > 0.9).all()
    assert result.scores["stability"] == pytest.approx(result.stability.mean())
    assert not result.kept_previous


def test_yesterday_model_is_kept_and_warm_started_when_it_still_fits() -> None:
    yesterday = fit_segments(blobs(200, seed=6), CFG)
    today_data = blobs(200, seed=7)  # same types, other customers
    today = fit_segments(today_data, CFG, previous=yesterday.centers_raw)
    assert today.kept_previous and today.k == yesterday.k
    assert any(n.startswith("k kept at 4") for n in today.notes)
    # cluster c still starts from yesterday's centre c: the same type keeps the same index
    assert np.abs(today.centers_raw - yesterday.centers_raw).max() < 0.5


def test_k_changes_when_the_gain_is_large_and_the_note_says_why() -> None:
    three = blobs(200, seed=8, centres=CENTRES[:3])
    yesterday = fit_segments(three, CFG)
    assert yesterday.k == 3
    today = fit_segments(blobs(200, seed=9), CFG, previous=yesterday.centers_raw)  # a fourth type appeared
    assert today.k == 4 and not today.kept_previous
    assert any(n.startswith("k changed from 3 to 4") and "gain" in n for n in today.notes)
    lenient = ClusterConfig(k_min=2, k_max=6, seed=0, min_share=0.02, stability_resamples=8, k_change_min_gain=1.0)
    kept = fit_segments(blobs(200, seed=9), lenient, previous=yesterday.centers_raw)
    assert kept.k == 3 and kept.kept_previous


def test_previous_model_with_a_tiny_segment_no_longer_fits() -> None:
    yesterday = fit_segments(blobs(200, seed=6), CFG)
    assert yesterday.k == 4
    rows = blobs(200, seed=7)
    today_data = pd.concat([rows.iloc[:600], rows.iloc[600:603]], ignore_index=True)  # the 4th type almost gone
    lenient = ClusterConfig(k_min=2, k_max=6, seed=0, min_share=0.02, stability_resamples=8, k_change_min_gain=1.0)
    today = fit_segments(today_data, lenient, previous=yesterday.centers_raw)
    assert not today.kept_previous and today.k == 3
    assert any(n.startswith("k changed from 4 to 3: the previous model no longer fits") for n in today.notes), today.notes
