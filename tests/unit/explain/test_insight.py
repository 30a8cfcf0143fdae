"""Insight logic on hand-made frames: readable rules that reproduce the tree, drift, descriptions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from include.segmentation.explain import (
    INSIGHT_TABLES,
    DriftThresholds,
    InsightError,
    describe_segment,
    humanize_days,
)
from include.segmentation.explain.common import COLUMNS
from include.segmentation.explain.drift import compute_drift
from include.segmentation.explain.insight import _check_inputs
from include.segmentation.explain.rules import (
    _path_conditions,
    fit_rules,
    format_rule,
    nice_threshold,
    rule_mask,
    rules_max_depth,
)
from include.segmentation.model import MODEL_FEATURES, NUMERIC_FEATURES


def _features(n: int, seed: int = 0) -> pd.DataFrame:
    """Plausible customers with integer counts and float amounts, plus three planted groups."""
    rng = np.random.default_rng(seed)
    f = pd.DataFrame(0.0, index=pd.Index([f"C{i:05d}" for i in range(n)], name="customer_id"),
                     columns=list(NUMERIC_FEATURES))
    group = rng.integers(0, 3, n)
    f["recency_days"] = np.where(group == 0, rng.integers(1, 31, n), np.where(group == 1, rng.integers(181, 366, n),
                                                                               rng.integers(40, 150, n)))
    f["frequency"] = np.where(group == 0, rng.integers(6, 30, n), rng.integers(0, 5, n))
    f["monetary"] = np.round(rng.gamma(2.0, 60.0, n) * (1 + 3 * (group == 0)), 2)
    f["avg_order_value"] = np.round(rng.gamma(2.0, 20.0, n), 2)
    f["discount_share"] = np.round(rng.uniform(0, 0.6, n), 4)
    f["sessions"] = rng.integers(0, 40, n)
    f["tenure_days"] = rng.integers(10, 900, n)
    f["age"] = np.nan
    return f, group + 1


# --- thresholds and rule text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [(20, 21, 20), (30, 60, 30), (152.3, 160.8, 160), (0.118, 0.1213, 0.12), (-12.5, -3.0, -10), (0, 1, 0)],
)
def test_nice_threshold_is_the_roundest_number_in_the_gap(lo, hi, expected) -> None:
    r = nice_threshold(lo, hi)
    assert r == pytest.approx(expected)
    assert lo <= r < hi


def test_nice_threshold_never_leaves_the_gap() -> None:
    rng = np.random.default_rng(1)
    for _ in range(2000):
        lo = float(rng.normal(0, 10.0 ** rng.integers(-3, 5)))
        hi = lo + float(rng.exponential(10.0 ** rng.integers(-6, 3))) + 1e-9
        r = nice_threshold(lo, hi)
        assert lo <= r < hi, (lo, hi, r)
    with pytest.raises(ValueError):
        nice_threshold(3.0, 3.0)


def test_conditions_merge_per_feature_and_integers_read_as_at_least() -> None:
    path = [("recency_days", ">", 20.0), ("frequency", "<=", 9.0), ("recency_days", "<=", 60.0),
            ("recency_days", ">", 30.0), ("monetary", ">", 99.5)]
    conds = _path_conditions(path, integer_cols={"recency_days", "frequency"})
    assert format_rule(conds) == "recency_days >= 31 and recency_days <= 60 and frequency <= 9 and monetary > 99.5"
    assert format_rule([]) == "all customers"
    # a threshold that is not round still prints as text that parses back to the same number
    odd = [{"feature": "monetary", "op": "<=", "value": 0.1234567890123}]
    assert float(format_rule(odd).split("<= ")[1]) == 0.1234567890123


# --- rules ---------------------------------------------------------------------------------------


def test_rules_recover_planted_groups_with_readable_thresholds() -> None:
    f, seg = _features(900)
    rs = fit_rules(f, seg, max_depth=3)
    assert rs.accuracy == 1.0 and rs.macro_recall == 1.0 and rs.macro_f1 == 1.0
    # The planted boundaries are gaps in integer data (frequency 0-4 | 6-29, recency 40-149 | 181-365):
    # the rules state them with the roundest threshold inside each gap.
    by_segment = dict(zip(rs.rules["segment_id"], rs.rules["rule"], strict=True))
    assert by_segment == {
        1: "frequency >= 5",
        2: "frequency <= 4 and recency_days >= 151",
        3: "frequency <= 4 and recency_days <= 150",
    }
    assert (rs.rules["precision"] == 1.0).all()


def test_rules_reproduce_the_tree_and_their_figures_are_honest() -> None:
    f, _ = _features(1500, seed=3)
    rng = np.random.default_rng(5)
    # A segmentation a shallow tree cannot express exactly: fidelity below 1, several leaves per segment.
    score = f["monetary"] / 100 + f["sessions"] / 10 + rng.normal(0, 1.5, len(f))
    seg = np.digitize(score, np.quantile(score, [0.3, 0.6, 0.85])) + 1
    rs = fit_rules(f, seg, max_depth=4)
    assert 0.4 < rs.accuracy < 1.0
    matched = np.zeros(len(f), dtype=int)
    rule_pred = np.zeros(len(f), dtype=int)
    for row in rs.rules.itertuples(index=False):
        m = rule_mask(f, json.loads(row.conditions))
        matched += m
        rule_pred[m] = row.segment_id
        assert int(m.sum()) == row.support
        hits = int((seg[m] == row.segment_id).sum())
        assert row.precision == pytest.approx(hits / row.support)
        assert row.coverage == pytest.approx(hits / int((seg == row.segment_id).sum()))
    assert (matched == 1).all(), "every customer matches exactly one rule"
    assert (rule_pred == rs.predicted).all(), "the rounded rules give the tree's predictions"
    assert rs.accuracy == pytest.approx(float((rule_pred == seg).mean()))
    # ranks are 1..n per segment by support
    for _, g in rs.rules.groupby("segment_id"):
        assert list(g["rule_rank"]) == list(range(1, len(g) + 1))
        assert list(g["support"]) == sorted(g["support"], reverse=True)


def test_rules_depth_is_bounded_and_configurable() -> None:
    f, seg = _features(300)
    with pytest.raises(InsightError, match="max_depth"):
        fit_rules(f, seg, max_depth=0)
    assert rules_max_depth({}) == 4
    assert rules_max_depth({"SEGMENTATION_RULES_MAX_DEPTH": "3"}) == 3
    with pytest.raises(InsightError, match="SEGMENTATION_RULES_MAX_DEPTH"):
        rules_max_depth({"SEGMENTATION_RULES_MAX_DEPTH": "deep"})
    with pytest.raises(InsightError, match="1..8"):
        rules_max_depth({"SEGMENTATION_RULES_MAX_DEPTH": "12"})


# --- input checks ----------------------------------------------------------------------------------


def test_bad_inputs_name_table_column_and_rule() -> None:
    f, seg = _features(50)
    names = {1: "a", 2: "b", 3: "c"}
    profiles = pd.DataFrame({"segment_id": [1, 2, 3]})
    _check_inputs(f, seg, names, profiles)
    with pytest.raises(InsightError, match=r"features: missing column\(s\) sessions"):
        _check_inputs(f.drop(columns=["sessions"]), seg, names, profiles)
    bad = f.copy()
    bad.iloc[3, bad.columns.get_loc("monetary")] = np.nan
    with pytest.raises(InsightError, match=r"features\.monetary: 1 NaN/infinite value\(s\) \(rule: finite\)"):
        _check_inputs(bad, seg, names, profiles)
    with pytest.raises(InsightError, match="segment_of: 49 ids for 50"):
        _check_inputs(f, seg[:-1], names, profiles)
    with pytest.raises(InsightError, match=r"segment id\(s\) \[3\] have no name"):
        _check_inputs(f, seg, {1: "a", 2: "b"}, profiles)


def test_tables_have_snapshot_and_run_columns() -> None:
    assert set(INSIGHT_TABLES) >= {"rules", "transitions", "top_products"}
    for kind, table in INSIGHT_TABLES.items():
        assert table.schema == "segmentation"
        assert {"snapshot_date", "run_id"} <= set(COLUMNS[kind]), kind
        assert str(table.c.snapshot_date.type) == "DATE"


# --- drift ------------------------------------------------------------------------------------------


def _centroid(**over: float) -> str:
    c = dict.fromkeys(MODEL_FEATURES, 1.0)
    c.update(over)
    return json.dumps(c)


def test_drift_sizes_shifts_moves_and_warnings() -> None:
    prev = pd.DataFrame(
        {"segment_id": [1, 2, 3], "segment_name": ["Loyal", "At risk", "Old"], "size": [100, 100, 50],
         "share": [0.4, 0.4, 0.2], "centroid": [_centroid(), _centroid(), _centroid()]}
    )
    cur = pd.DataFrame(
        {"segment_id": [1, 2, 4], "segment_name": ["Loyal", "At risk", "Fresh"], "size": [104, 60, 90],
         "share": [104 / 254, 60 / 254, 90 / 254],
         "centroid": [_centroid(monetary=1.2), _centroid(recency_days=3.0), _centroid()]}
    )
    t = pd.DataFrame(
        {"from_segment_id": pd.array([1, 1, 2, 2, 2, 3, None], dtype="Int64"),
         "to_segment_id": pd.array([1, 2, 2, 1, 4, 4, 4], dtype="Int64"),
         "customers": [96, 4, 60, 8, 32, 50, 8]}
    )
    scale = np.full(len(MODEL_FEATURES), 2.0)
    d = compute_drift(cur, prev, t, scale, DriftThresholds()).set_index("segment_id")
    assert list(d.index) == [1, 2, 3, 4]
    one, two, three, four = (d.loc[i] for i in (1, 2, 3, 4))
    assert one["status"] == "stable" and one["size_change"] == pytest.approx(0.04)
    assert one["centroid_shift"] == pytest.approx(0.1) and one["top_shift_feature"] == "monetary"
    assert (one["stayed"], one["moved_in"], one["moved_out"]) == (96, 8, 4)
    assert two["status"] == "drift"
    assert two["centroid_shift"] == pytest.approx(1.0) and two["top_shift_feature"] == "recency_days"
    assert two["moved_out_share"] == pytest.approx(0.4)
    assert "size -40%" in two["warning"] and "centroid moved 1.00 sd" in two["warning"]
    assert "40% of members moved out" in two["warning"]
    assert three["status"] == "gone" and three["size"] == 0 and three["moved_out"] == 50
    assert four["status"] == "new" and pd.isna(four["previous_size"]) and four["moved_in"] == 82
    assert pd.isna(one["warning"]) or one["warning"] is None


def test_drift_thresholds_are_configurable_and_checked() -> None:
    assert DriftThresholds.from_env({}) == DriftThresholds()
    t = DriftThresholds.from_env({"SEGMENTATION_DRIFT_MAX_SIZE_CHANGE": "0.5", "SEGMENTATION_DRIFT_MAX_MOVED_OUT": ""})
    assert t.max_size_change == 0.5 and t.max_moved_out == DriftThresholds().max_moved_out
    with pytest.raises(InsightError, match="SEGMENTATION_DRIFT_MAX_CENTROID_SHIFT must be a number"):
        DriftThresholds.from_env({"SEGMENTATION_DRIFT_MAX_CENTROID_SHIFT": "lots"})
    with pytest.raises(InsightError, match="positive"):
        DriftThresholds.from_env({"SEGMENTATION_DRIFT_MAX_MOVED_OUT": "-1"})
    with pytest.raises(InsightError, match="max_size_change"):
        DriftThresholds(max_size_change=0)


def test_tighter_thresholds_turn_the_same_change_into_a_warning() -> None:
    prev = pd.DataFrame({"segment_id": [1], "segment_name": ["A"], "size": [100], "share": [1.0],
                         "centroid": [_centroid()]})
    cur = pd.DataFrame({"segment_id": [1], "segment_name": ["A"], "size": [110], "share": [1.0],
                        "centroid": [_centroid()]})
    t = pd.DataFrame({"from_segment_id": pd.array([1, None], dtype="Int64"),
                      "to_segment_id": pd.array([1, 1], dtype="Int64"), "customers": [100, 10]})
    scale = np.ones(len(MODEL_FEATURES))
    assert compute_drift(cur, prev, t, scale, DriftThresholds())["status"].iloc[0] == "stable"
    tight = compute_drift(cur, prev, t, scale, DriftThresholds(max_size_change=0.05))
    assert tight["status"].iloc[0] == "drift" and "size +10% (limit ±5%)" in tight["warning"].iloc[0]


# --- descriptions -------------------------------------------------------------------------------------


def _median(**over: float) -> pd.Series:
    m = pd.Series(dict.fromkeys(NUMERIC_FEATURES, 0.0))
    m[["p_alive", "expected_purchases_90d", "predicted_value_12m"]] = np.nan  # lifetime model not fitted
    m.update(pd.Series({"recency_days": 10.0, "frequency": 9.0, "monetary": 400.0, "sessions": 12.0,
                        "tenure_days": 500.0}))
    m.update(pd.Series(over, dtype="float64"))
    return m


def test_description_reads_like_the_issue_example() -> None:
    pop = _median(monetary=100.0)
    text = describe_segment(_median(), pop, window_days=365, favourite=("Electronics", 2.14))
    assert text == (
        "spend 4.0x the median: 400 (store currency) in a year, bought in the last 2 weeks, "
        "9 orders a year, 12 sessions a year, over-index on Electronics (2.1x)"
    )


def test_description_cases() -> None:
    pop = _median(monetary=100.0)
    shopper = describe_segment(_median(frequency=0.0, monetary=0.0, cart_abandonment_rate=0.8), pop)
    assert shopper.startswith("no purchase in the last year") and "abandon 80% of carts" in shopper
    lapsed = describe_segment(_median(recency_days=200.0, frequency=1.0), pop)
    assert "last bought 7 months ago" in lapsed and "1 order a year" in lapsed
    half_year = describe_segment(_median(frequency=4.0), pop, window_days=180)
    assert "4 orders in 180 days" in half_year
    bargain = describe_segment(_median(discount_share=0.42, return_rate=0.15, tenure_days=20.0), pop)
    assert "42% of spend discounted" in bargain and "return 15%" in bargain and "in 3 weeks since first seen" in bargain
    assert "orders a year" not in bargain  # rates over the customer's own active time
    alive = describe_segment(_median(p_alive=0.9, expected_purchases_90d=1.5, predicted_value_12m=250.0), pop)
    assert "P(alive) 90%" in alive and "1.5 purchases expected in the next 90 days" in alive
    assert "predicted 12-month value 250" in alive
    assert humanize_days(3) == "3 days" and humanize_days(21) == "3 weeks" and humanize_days(400) == "1.1 years"
