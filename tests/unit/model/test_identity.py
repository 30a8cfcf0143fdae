"""Names: defined on customer-level features, given only when >= 80% of members meet them, unique."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from include.segmentation.model.features import effective_weights, transform_for_model
from include.segmentation.model.identity import MIN_FIDELITY, customer_flags, data_order, name_segments


def _frame(rows: list[tuple[float, float, float, float, float]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["recency_days", "frequency", "monetary", "days_between_orders", "p_alive"])
    df["tenure_days"] = 400.0
    df["discount_share"] = 0.0
    return df


def test_vocabulary_names_need_80_percent_and_composites_are_true_and_unique() -> None:
    rng = np.random.default_rng(1)
    rows: list[tuple] = []
    seg: list[int] = []

    def add(segment: int, row: tuple) -> None:
        rows.append(row)
        seg.append(segment)

    for _ in range(100):  # never bought
        add(1, (365, 0, 0, 365, np.nan))
    for _ in range(100):  # heavy, recent
        add(2, (rng.integers(1, 30), rng.integers(10, 20), rng.uniform(2000, 5000), 20, 0.95))
    for _ in range(100):  # lapsed repeaters
        add(3, (rng.integers(200, 300), 3, rng.uniform(100, 300), 30, 0.2))
    for _ in range(100):  # mixed: half recent one-off, half lapsed one-off
        add(4, (rng.integers(1, 60), 1, 50, 365, 1.0))
    for _ in range(100):
        add(4, (rng.integers(200, 360), 1, 50, 365, 1.0))
    for _ in range(100):  # a second lapsed-repeater segment
        add(5, (rng.integers(200, 300), 4, rng.uniform(100, 300), 30, 0.1))
    features = _frame(rows)
    names, fidelity = name_segments(features, np.array(seg))
    assert names[1] == "Window shoppers" and fidelity[1] == 1.0
    assert names[2] == "Champions"
    assert names[3] in {"Lapsing"} or names[5] == "Lapsing"
    assert len(set(names.values())) == len(names)
    assert all(not re.search(r"\d", n) for n in names.values())
    flags = customer_flags(features)
    for seg_id, name in names.items():
        if name in flags:
            assert flags[name][np.array(seg) == seg_id].mean() >= MIN_FIDELITY
    assert min(fidelity.values()) >= MIN_FIDELITY
    # segment 4 (one order each, half lapsed) can be named "One-time buyers" at 100%
    assert names[4] == "One-time buyers"


def _two_lapsing_segments() -> tuple[pd.DataFrame, np.ndarray]:
    """Window shoppers, then two segments that both meet "Lapsing" fully (a tie), and one-off buyers."""
    rng = np.random.default_rng(3)
    rows: list[tuple] = [(365, 0, 0, 365, np.nan)] * 120
    rows += [(int(rng.integers(200, 300)), 3, float(rng.uniform(100, 300)), 30, 0.2) for _ in range(100)]
    rows += [(int(rng.integers(200, 300)), 4, float(rng.uniform(100, 300)), 30, 0.1) for _ in range(100)]
    rows += [(int(rng.integers(1, 60)), 1, 50, 365, 1.0) for _ in range(90)]
    seg = np.repeat([0, 1, 2, 3], [120, 100, 100, 90])
    return _frame(rows), seg


def test_names_do_not_depend_on_ids() -> None:
    """Ids follow history; the same partition under any ids gets the same name for every customer."""
    features, seg = _two_lapsing_segments()
    names, fidelity = name_segments(features, seg + 1)
    reference = np.array([names[i] for i in seg + 1])
    assert "Lapsing" in names.values() and len(set(names.values())) == 4
    for ids in ([7, 2, 9, 4], [4, 9, 2, 7], [11, 10, 3, 12]):
        relabelled = np.asarray(ids)[seg]
        other, other_fid = name_segments(features, relabelled)
        assert list(np.array([other[i] for i in relabelled])) == list(reference), ids
        assert sorted(other_fid.values()) == sorted(fidelity.values())


def test_data_order_is_size_then_first_member() -> None:
    seg = np.array([5, 5, 2, 2, 2, 9, 9, 1, 1])
    assert data_order(seg) == [2, 5, 9, 1]  # 3 members; then 2 members each, by first position


def test_weights_drop_constant_features_and_empty_families() -> None:
    n = 200
    rng = np.random.default_rng(0)
    features = pd.DataFrame({
        "recency_days": rng.integers(1, 365, n).astype(float), "frequency": rng.integers(1, 9, n).astype(float),
        "monetary": rng.uniform(10, 500, n), "avg_order_value": rng.uniform(10, 100, n),
        "items_per_order": rng.uniform(1, 5, n), "return_rate": 0.0, "discount_share": 0.0,
        "days_between_orders": rng.uniform(5, 200, n), "tenure_days": rng.uniform(10, 365, n),
        "category_breadth": 0.0, "sessions": 0.0, "product_views": 0.0, "searches": 0.0, "add_to_cart_rate": 0.0,
        "cart_abandonment_rate": 0.0, "view_to_purchase": 0.0, "avg_dwell_seconds": 0.0, "age": np.nan,
    })
    weights, dropped = effective_weights(transform_for_model(features))
    constant = [c for c in transform_for_model(features).columns if features[c].nunique() == 1]
    assert set(constant) == {"return_rate", "discount_share", "category_breadth", "sessions", "product_views",
                             "searches", "add_to_cart_rate", "cart_abandonment_rate", "view_to_purchase",
                             "avg_dwell_seconds"}
    for name in constant:  # every constant feature contributes nothing
        assert weights[name] == 0 and name in dropped
    assert "family:browsing" in dropped
    value = [weights[f] for f in ("frequency", "monetary", "avg_order_value", "items_per_order")]
    assert np.allclose(value, 0.5)  # 1 / sqrt(4 varying value features)
    assert np.isclose(sum(w**2 for w in value), 1.0) and np.isclose(sum(weights[f] ** 2 for f in
                                                                    ("recency_days", "days_between_orders", "tenure_days")), 1.0)
