"""The model as data: a fitted model written as JSON assigns its own training customers as the run did."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from include.segmentation.model import MODEL_FEATURES, ClusterConfig, fit_segments, match_ids, name_segments
from include.segmentation.model.features import effective_weights, transform_for_model, weights_array
from include.segmentation.model.persisted import ModelMismatchError, PersistedModel, from_fit


def _features(n: int = 1200, seed: int = 3) -> pd.DataFrame:
    """Customers from four behaviour groups (heavy-tailed counts and money, shares in [0, 1])."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 4, size=n)
    freq = rng.poisson(np.array([0.2, 1.5, 6.0, 14.0])[group]).astype(float)
    buyer = freq > 0
    spend = np.where(buyer, freq * rng.lognormal(np.array([2.5, 3.0, 3.5, 4.0])[group], 0.5), 0.0)
    views = rng.poisson(np.array([30, 8, 15, 25])[group]).astype(float)
    frame = pd.DataFrame(
        {
            "recency_days": np.where(buyer, rng.integers(1, 365, size=n) / (1 + group), 365.0),
            "frequency": freq,
            "monetary": spend - np.where(rng.random(n) < 0.05, spend * 1.5, 0.0),  # a few net-negative
            "avg_order_value": np.where(buyer, spend / np.maximum(freq, 1), 0.0),
            "items_per_order": np.where(buyer, rng.gamma(2.0, 1.5, size=n), 0.0),
            "return_rate": np.where(buyer, rng.beta(1, 12, size=n), 0.0),
            "discount_share": np.where(buyer, rng.beta(1, np.array([2, 6, 10, 14])[group]), 0.0),
            "days_between_orders": np.where(freq > 1, 365 / np.maximum(freq, 1), 365.0),
            "tenure_days": rng.integers(1, 900, size=n).astype(float),
            "category_breadth": np.minimum(freq, rng.integers(0, 8, size=n)).astype(float),
            "sessions": rng.poisson(np.array([10, 3, 6, 12])[group]).astype(float),
            "product_views": views,
            "searches": rng.poisson(np.array([5, 1, 3, 6])[group]).astype(float),
            "add_to_cart_rate": rng.beta(2, 8, size=n),
            "cart_abandonment_rate": rng.beta(2, 3, size=n),
            "view_to_purchase": np.minimum(freq / np.maximum(views, 1), 1.0),
            "avg_dwell_seconds": rng.gamma(3.0, 12.0, size=n),
            "p_alive": np.where(buyer, rng.random(n), np.nan),
        },
        index=pd.Index([f"c{i:05d}" for i in range(n)], name="customer_id"),
    )
    return frame


def _fit(features: pd.DataFrame, cfg: ClusterConfig) -> tuple[PersistedModel, np.ndarray, object]:
    """What cluster_stage does, then the persisted model of it; returns (model, run's segment per customer, fit)."""
    X = transform_for_model(features)
    weights, _ = effective_weights(X)
    result = fit_segments(X, cfg, weights_array(weights))
    ids = match_ids(result.centers_raw, {}, result.scaler_scale / result.weights, 1)
    segment_of = np.asarray(ids)[result.labels]
    names, _ = name_segments(features, segment_of)
    model = from_fit(result, ids, names, snapshot_date="2024-07-01", run_id="seg_20240701_abc", window_days=365,
                     effective_weights=weights, lifetime_model={"model": "bg_nbd", "r": 0.5})
    return model, segment_of, result


@pytest.mark.parametrize("algorithm", ["kmeans", "minibatch_kmeans"])
def test_json_model_assigns_training_customers_as_the_run_did(algorithm: str) -> None:
    features = _features()
    model, segment_of, result = _fit(features, ClusterConfig(k_min=3, k_max=6, algorithm=algorithm, seed=5))
    doc = model.to_json()
    restored = PersistedModel.from_json(doc)  # nothing of the fit's Python state is used below
    out = restored.assign(features)
    assert list(out.index) == list(features.index)
    assert np.array_equal(out["segment_id"].to_numpy(), segment_of)  # exactly the run's segments
    assert np.allclose(out["distance"].to_numpy(), result.distance, rtol=1e-9, atol=1e-9)
    assert np.allclose(out["confidence"].to_numpy(), result.confidence, rtol=1e-7, atol=1e-9)
    assert np.array_equal(out["is_outlier"].to_numpy(), result.is_outlier)  # no micro-segment set aside here
    names = dict(zip(restored.segment_ids, restored.segment_names, strict=True))
    assert (out["segment_name"] == out["segment_id"].map(names)).all()


def test_json_holds_everything_needed_and_round_trips_exactly() -> None:
    model, _, result = _fit(_features(600, seed=11), ClusterConfig(k_min=3, k_max=4, seed=1))
    doc = json.loads(model.to_json())
    assert doc["features"] == list(MODEL_FEATURES)
    assert doc["transforms"]["monetary"] == "signed_log1p" and doc["transforms"]["return_rate"] == "none"
    assert len(doc["scaler"]["mean"]) == len(doc["scaler"]["scale"]) == len(doc["weights"]) == len(MODEL_FEATURES)
    assert {"segment_id", "segment_name", "center_model", "center_raw", "outlier_threshold"} <= set(doc["segments"][0])
    assert len(doc["segments"]) == result.k and doc["lifetime_model"]["model"] == "bg_nbd"
    assert doc["confidence"]["bandwidth"] > 0 and doc["window_days"] == 365
    assert "run_id" not in doc  # the document depends on the data only: a re-run of the date writes it again
    again = PersistedModel.from_json(model.to_json())
    assert again.to_json() == model.to_json()
    assert np.array_equal(again.centers_model, result.centers_scaled)  # float64 survives JSON bit for bit
    assert np.array_equal(again.centers_raw, result.centers_raw)


def test_new_customers_go_to_the_nearest_centroid_and_far_ones_are_outliers() -> None:
    features = _features(800, seed=2)
    model, _, _ = _fit(features, ClusterConfig(k_min=3, k_max=5, seed=3))
    # A customer sitting exactly on a centroid (in raw, transformed space) gets that segment, at distance 0.
    c = 1
    raw = dict(zip(MODEL_FEATURES, model.centers_raw[c], strict=True))
    on_centre = pd.DataFrame(
        {f: [_inverse(f, raw[f])] for f in MODEL_FEATURES}, index=pd.Index(["x"], name="customer_id")
    )
    got = model.assign(on_centre).iloc[0]
    assert got["segment_id"] == model.segment_ids[c] and got["distance"] < 1e-6 and not got["is_outlier"]
    far = features.iloc[[0]].copy()
    far["frequency"] = 1e7
    far["monetary"] = 1e9
    assert bool(model.assign(far)["is_outlier"].iloc[0])


def _inverse(feature: str, value: float) -> float:
    """Undo the model transform of ``feature`` (so transform_for_model gives ``value`` back)."""
    from include.segmentation.model.features import FEATURES

    kind = next(f.transform for f in FEATURES if f.name == feature)
    if kind == "log1p":
        return float(np.expm1(value))
    if kind == "signed_log1p":
        return float(np.sign(value) * np.expm1(abs(value)))
    return float(value)


def test_refuses_other_definitions_and_bad_input() -> None:
    model, _, _ = _fit(_features(500, seed=4), ClusterConfig(k_min=3, k_max=3, seed=1))
    doc = json.loads(model.to_json())
    doc["transforms"]["monetary"] = "log1p"
    with pytest.raises(ModelMismatchError, match="transform changed"):
        PersistedModel.from_json(doc).assign(_features(5))
    doc = json.loads(model.to_json())
    doc["format"] = 99
    with pytest.raises(ModelMismatchError, match="format"):
        PersistedModel.from_json(doc)
    bad = _features(5)
    bad.loc[bad.index[0], "sessions"] = np.nan
    with pytest.raises(ValueError, match="sessions"):
        model.assign(bad)
    assert model.assign(_features(5).iloc[:0]).empty
