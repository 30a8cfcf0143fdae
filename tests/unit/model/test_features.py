"""Feature construction from extract aggregates: values, missing-value rules, transforms."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from include.segmentation.model import FEATURES, MODEL_FEATURES, build_features, transform_for_model

S = date(2024, 6, 1)


def _agg(**over) -> dict:
    row = {
        "customer_id": "c1", "orders": 4, "purchase_lines": 10, "return_lines": 1, "items": 20,
        "gross_revenue": 400.0, "returned_value": 40.0, "discount_total": 20.0, "discounted_lines": 2,
        "categories": 3, "first_order_at": "2024-01-01 10:00:00", "last_order_at": "2024-05-25 18:30:00",
        "last_tx_at": "2024-05-25 18:30:00", "sessions": 5, "events": 30, "page_views": 5, "product_views": 20,
        "searches": 3, "add_to_carts": 4, "remove_from_carts": 1, "checkouts": 3, "dwell_seconds_total": 300.0,
        "dwell_events": 30, "last_event_at": "2024-05-30 09:00:00", "created_at": "2023-06-01 00:00:00",
        "birth_year": 1990, "gender": "F", "country": "United Kingdom",
    }
    row.update(over)
    return row


def test_buyer_features_in_original_units() -> None:
    f = build_features(pd.DataFrame([_agg()]), S, 365).loc["c1"]
    assert f["recency_days"] == 7  # 2024-06-01 minus 2024-05-25
    assert f["frequency"] == 4
    assert f["monetary"] == pytest.approx(400 - 40 - 20)
    assert f["avg_order_value"] == pytest.approx(100)
    assert f["items_per_order"] == pytest.approx(5)
    assert f["return_rate"] == pytest.approx(0.1)
    assert f["discount_share"] == pytest.approx(0.05)
    gap = (pd.Timestamp("2024-05-25 18:30") - pd.Timestamp("2024-01-01 10:00")).total_seconds() / 86400 / 3
    assert f["days_between_orders"] == pytest.approx(gap)
    assert f["tenure_days"] == 366  # 2023-06-01 .. 2024-06-01 (leap year)
    assert f["add_to_cart_rate"] == pytest.approx(0.2)
    assert f["cart_abandonment_rate"] == pytest.approx(0.25)
    assert f["view_to_purchase"] == pytest.approx(0.2)
    assert f["avg_dwell_seconds"] == pytest.approx(10)
    assert f["age"] == 34 and f["age_band"] == "25-34"


def test_missing_values_follow_documented_rules() -> None:
    browser = _agg(
        customer_id="c2", orders=None, purchase_lines=None, return_lines=None, items=None, gross_revenue=None,
        returned_value=None, discount_total=None, discounted_lines=None, categories=None, first_order_at=None,
        last_order_at=None, last_tx_at=None, created_at=None, birth_year=None, gender=None, country=None,
        add_to_carts=0, checkouts=0,
    )
    f = build_features(pd.DataFrame([browser]), S, 365).loc["c2"]
    assert f["recency_days"] == 365 and f["days_between_orders"] == 365
    assert f["frequency"] == 0 and f["monetary"] == 0 and f["avg_order_value"] == 0
    assert f["cart_abandonment_rate"] == 0 and f["view_to_purchase"] == 0
    assert f["tenure_days"] == 2  # falls back to first activity (2024-05-30)
    assert f["age_band"] == "unknown" and f["gender"] == "unknown" and f["country"] == "unknown"
    assert np.isnan(f["age"])


def test_model_inputs_are_finite_and_ordered() -> None:
    rows = [_agg(customer_id=f"c{i}", gross_revenue=10.0 * i, returned_value=20.0 * i) for i in range(1, 6)]
    feats = build_features(pd.DataFrame(rows), S, 365)
    assert list(feats.index) == sorted(feats.index)
    X = transform_for_model(feats)
    assert list(X.columns) == list(MODEL_FEATURES)
    assert np.isfinite(X.to_numpy()).all()
    assert (feats["monetary"] < 0).all() and (X["monetary"] < 0).all()  # signed log keeps the sign
    assert "age" not in X.columns and {f.name for f in FEATURES} >= set(MODEL_FEATURES)


def test_empty_aggregates_give_empty_features() -> None:
    assert build_features(pd.DataFrame(columns=list(_agg())), S, 365).empty
