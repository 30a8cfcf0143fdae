"""Insight and report from real pipeline runs, on PostgreSQL and SQLite.

One generated warehouse per flavour (1,000 customers), two runs on consecutive days; then every
published insight table is checked against an independent computation from the published and raw
tables, and the HTML report of the real run is rendered and inspected.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.explain import DriftThresholds, InsightError, ReportError, build_insights, render_report
from include.segmentation.model import NUMERIC_FEATURES
from include.segmentation.pipeline import run_pipeline
from include.segmentation.sources import CATEGORIES
from include.segmentation.store import get_engine, read_sql

END = date(2024, 6, 30)
S1 = END  # data up to S1 - 1 day
S2 = END + timedelta(days=1)
PARAMS = {"k_min": 3, "k_max": 6}
WINDOW = 365


@dataclass
class Published:
    engine: sa.Engine
    flavour: str


def _q(engine: sa.Engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_sql(conn, sql, params)


def _publish_two_snapshots(engine: sa.Engine) -> None:
    """Template preparation (once per session and flavour): publish S1, then S2."""
    run_pipeline(engine, S1, PARAMS, validate=False)
    run_pipeline(engine, S2, PARAMS, validate=False)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def published(request: pytest.FixtureRequest, warehouse_factory: Any) -> Iterator[Published]:
    """A warehouse of this module's own with synthetic data and two published snapshots (S1, then S2 = S1 + 1 day)."""
    spec = {"customers": 1000, "days": 400, "end_date": END, "seed": 7, "prepare": _publish_two_snapshots}
    with warehouse_factory.copied(request.param, **spec) as url:
        engine = get_engine(url)
        try:
            yield Published(engine, request.param)
        finally:
            engine.dispose()


def _history(engine: sa.Engine, s: date) -> pd.DataFrame:
    df = _q(engine, "SELECT customer_id, segment_id FROM segmentation.customer_segments_history WHERE snapshot_date = :s",
            s=s)
    return df.astype({"segment_id": "int64"})


# --- profiles ------------------------------------------------------------------------------------


def test_profiles_carry_units_top_categories_and_a_description(published: Published) -> None:
    e = published.engine
    prof = _q(e, "SELECT * FROM segmentation.segment_profiles WHERE snapshot_date = :s ORDER BY segment_id", s=S2)
    hist = _history(e, S2)
    assert len(prof) >= 3
    assert prof["size"].astype(int).sum() == len(hist)
    assert prof["share"].astype(float).sum() == pytest.approx(1.0)
    feats = _q(e, "SELECT * FROM segmentation.customer_features WHERE snapshot_date = :s", s=S2).merge(hist)
    for row in prof.itertuples(index=False):
        medians = json.loads(row.feature_medians)
        means = json.loads(row.feature_means)
        assert set(medians) == set(NUMERIC_FEATURES) == set(means)
        mine = feats[feats["segment_id"] == int(row.segment_id)]
        assert medians["recency_days"] == pytest.approx(mine["recency_days"].astype(float).median(), abs=1e-6)
        assert means["monetary"] == pytest.approx(mine["monetary"].astype(float).mean(), rel=1e-6)
        cats = json.loads(row.top_categories)
        assert isinstance(cats, list) and set(cats) <= set(CATEGORIES) and len(cats) <= 5
        buyers = (mine["frequency"].astype(float) > 0).sum()
        assert (len(cats) > 0) == (buyers > 0), row.segment_name
        assert row.description and len(row.description) < 300
        if medians["frequency"] == 0:
            assert row.description.startswith("no purchase")
        else:
            assert re.search(r"spend [\d.]+x the median", row.description), row.description
            assert "a year" in row.description


# --- rules ---------------------------------------------------------------------------------------


def test_rules_are_sql_predicates_and_fidelity_is_what_they_do(published: Published) -> None:
    e = published.engine
    rules = _q(e, "SELECT * FROM segmentation.segment_rules WHERE snapshot_date = :s", s=S2)
    run = _q(e, "SELECT * FROM segmentation.segment_runs WHERE snapshot_date = :s AND status = 'published'", s=S2)
    hist = _history(e, S2)
    population, sizes = len(hist), hist["segment_id"].value_counts()
    assert len(rules) >= 3
    hits_total = supports = 0
    for r in rules.itertuples(index=False):
        # Every rule runs as it is written, as SQL, on the published features.
        got = _q(
            e,
            "SELECT COUNT(*) AS n, SUM(CASE WHEN h.segment_id = :seg THEN 1 ELSE 0 END) AS hits "
            "FROM segmentation.customer_features f JOIN segmentation.customer_segments_history h "
            "ON h.snapshot_date = f.snapshot_date AND h.customer_id = f.customer_id "
            f"WHERE f.snapshot_date = :s AND ({r.rule})",
            s=S2, seg=int(r.segment_id),
        ).iloc[0]
        assert int(got["n"]) == int(r.support), r.rule
        assert float(r.precision) == pytest.approx(int(got["hits"]) / int(got["n"]))
        assert float(r.coverage) == pytest.approx(int(got["hits"]) / int(sizes[int(r.segment_id)]))
        hits_total += int(got["hits"])
        supports += int(got["n"])
    assert supports == population, "the rules (tree leaves) partition the customers"
    accuracy = float(run["rules_accuracy"].iloc[0])
    assert accuracy == pytest.approx(hits_total / population, abs=1e-6)
    assert 0.5 < accuracy <= 1.0
    for col in ("rules_macro_recall", "rules_macro_f1"):
        assert 0.3 < float(run[col].iloc[0]) <= 1.0
    first = _q(e, "SELECT rules_accuracy FROM segmentation.segment_runs WHERE snapshot_date = :s", s=S1)
    assert first["rules_accuracy"].notna().all(), "every published run has fidelity figures"


# --- transitions and drift ----------------------------------------------------------------------


def test_first_run_has_no_transitions_second_counts_every_move(published: Published) -> None:
    e = published.engine
    assert _q(e, "SELECT COUNT(*) AS n FROM segmentation.segment_transitions WHERE snapshot_date = :s", s=S1)["n"][0] == 0
    assert _q(e, "SELECT COUNT(*) AS n FROM segmentation.segment_drift WHERE snapshot_date = :s", s=S1)["n"][0] == 0
    t = _q(e, "SELECT * FROM segmentation.segment_transitions WHERE snapshot_date = :s", s=S2)
    assert set(t["previous_snapshot_date"].astype(str).str[:10]) == {S1.isoformat()}
    # Independent count: outer join of the two published snapshots in pandas.
    both = _history(e, S1).merge(_history(e, S2), on="customer_id", how="outer", suffixes=("_from", "_to"))
    expected = both.fillna(-1).groupby(["segment_id_from", "segment_id_to"]).size()
    got = t.assign(
        f=pd.to_numeric(t["from_segment_id"]).fillna(-1).astype(int), to=pd.to_numeric(t["to_segment_id"]).fillna(-1).astype(int)
    ).set_index(["f", "to"])["customers"].astype(int)
    assert got.sort_index().to_dict() == {(int(a), int(b)): int(n) for (a, b), n in expected.sort_index().items()}
    names = dict(_q(e, "SELECT segment_id, segment_name FROM segmentation.segment_profiles WHERE snapshot_date = :s",
                    s=S2).astype({"segment_id": int}).values)
    for r in t[t["to_segment_id"].notna()].itertuples(index=False):
        assert r.to_segment_name == names[int(r.to_segment_id)]


def test_drift_rows_agree_with_profiles_and_transitions(published: Published) -> None:
    e = published.engine
    d = _q(e, "SELECT * FROM segmentation.segment_drift WHERE snapshot_date = :s", s=S2)
    prev = _q(e, "SELECT segment_id, size FROM segmentation.segment_profiles WHERE snapshot_date = :s", s=S1)
    cur = _q(e, "SELECT segment_id, size FROM segmentation.segment_profiles WHERE snapshot_date = :s", s=S2)
    assert set(d["segment_id"].astype(int)) == set(prev["segment_id"].astype(int)) | set(cur["segment_id"].astype(int))
    t = _q(e, "SELECT * FROM segmentation.segment_transitions WHERE snapshot_date = :s", s=S2)
    t_from = pd.to_numeric(t["from_segment_id"])
    for r in d.itertuples(index=False):
        seg = int(r.segment_id)
        if r.status in ("stable", "drift"):
            assert int(r.previous_size) == int(prev.set_index("segment_id").loc[seg, "size"])
            assert int(r.size) == int(cur.set_index("segment_id").loc[seg, "size"])
            assert float(r.size_change) == pytest.approx((int(r.size) - int(r.previous_size)) / int(r.previous_size))
            assert float(r.centroid_shift) >= 0
            # everyone of the previous segment stayed, moved or left the population
            out_all = int(t.loc[t_from == seg, "customers"].sum())
            assert out_all == int(r.previous_size)
            assert int(r.stayed) + int(r.moved_out) <= out_all
        assert (r.status == "drift") == (isinstance(r.warning, str) and len(r.warning) > 0)


def test_tight_thresholds_make_drift_warnings(published: Published, caplog: pytest.LogCaptureFixture) -> None:
    """Re-run the insight stage on S2's published assignments with very tight limits."""
    e = published.engine
    feats = _q(e, "SELECT * FROM segmentation.customer_features WHERE snapshot_date = :s ORDER BY customer_id", s=S2)
    feats = feats.set_index("customer_id")
    for c in NUMERIC_FEATURES:
        feats[c] = pd.to_numeric(feats[c]).astype("float64")
    hist = _history(e, S2).set_index("customer_id").loc[feats.index]
    profiles = _q(e, "SELECT * FROM segmentation.segment_profiles WHERE snapshot_date = :s", s=S2)
    names = dict(zip(profiles["segment_id"].astype(int), profiles["segment_name"], strict=True))
    with e.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS segmentation.stg_insight_test")
        conn.exec_driver_sql(
            "CREATE TABLE segmentation.stg_insight_test AS SELECT * FROM segmentation.customer_segments_history "
            f"WHERE snapshot_date = '{S2.isoformat()}'"
        )
    try:
        tight = DriftThresholds(max_size_change=1e-9, max_centroid_shift=1e-9, max_moved_out=1e-9)
        with caplog.at_level(logging.WARNING, logger="include.segmentation"):
            out = build_insights(e, S2, "test", WINDOW, feats, hist["segment_id"].to_numpy(), names,
                                 profiles, "segmentation.stg_insight_test", drift_thresholds=tight)
        assert out.warnings and all(w.startswith("drift in segment") for w in out.warnings)
        assert len([r for r in caplog.records if r.message.startswith("drift in segment")]) == len(out.warnings)
        assert (out.tables["drift"]["status"] != "stable").all()
        relaxed = build_insights(e, S2, "test", WINDOW, feats, hist["segment_id"].to_numpy(), names, profiles,
                                 "segmentation.stg_insight_test",
                                 drift_thresholds=DriftThresholds(max_size_change=100, max_centroid_shift=100,
                                                                  max_moved_out=100))
        assert relaxed.warnings == [] or all("segment" in w and ("new" in w or "no longer" in w) for w in relaxed.warnings)
        assert list(relaxed.profiles.columns) == list(profiles.columns)
    finally:
        with e.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS segmentation.stg_insight_test")


def test_assignments_must_come_from_a_staging_table(published: Published) -> None:
    e = published.engine
    feats = pd.DataFrame(0.0, index=pd.Index(["a", "b"], name="customer_id"), columns=list(NUMERIC_FEATURES))
    profiles = pd.DataFrame({"segment_id": [1]})
    for bad in ("segmentation.customer_segments_history", "raw.stg_x", "segmentation.stg_x; DROP TABLE raw.customers"):
        with pytest.raises(InsightError, match="must be a staging table"):
            build_insights(e, S2, "r", WINDOW, feats, np.array([1, 1]), {1: "A"}, profiles, bad)
    assert _q(e, "SELECT COUNT(*) AS n FROM raw.customers")["n"][0] > 0


# --- recommendation feed ---------------------------------------------------------------------------


def test_top_products_match_an_independent_computation(published: Published) -> None:
    e = published.engine
    top = _q(e, "SELECT * FROM segmentation.segment_top_products WHERE snapshot_date = :s", s=S2)
    assert set(top["item_type"]) == {"category", "product"} and set(top["ranking"]) == {"revenue", "lift"}
    # Independent: purchase lines of the window in pandas (test side only), joined to the snapshot.
    start = S2 - timedelta(days=WINDOW)
    lines = _q(
        e,
        "SELECT customer_id, product_id, category, quantity, unit_price, discount, ordered_at FROM raw.transactions "
        "WHERE customer_id IS NOT NULL AND quantity > 0",
    )
    ts = pd.to_datetime(lines["ordered_at"], utc=True, format="mixed")
    lines = lines[(ts >= pd.Timestamp(start, tz="UTC")) & (ts < pd.Timestamp(S2, tz="UTC"))]
    lines = lines.merge(_history(e, S2), on="customer_id")
    lines["net"] = lines["quantity"].astype(float) * lines["unit_price"].astype(float) - lines["discount"].astype(float)
    by_cat = lines.groupby(["segment_id", "category"])["net"].sum()
    seg_total = lines.groupby("segment_id")["net"].sum()
    pop_share = lines.groupby("category")["net"].sum() / lines["net"].sum()
    for seg, g in top[(top["item_type"] == "category") & (top["ranking"] == "revenue")].groupby("segment_id"):
        g = g.sort_values("rank")
        exp = by_cat.loc[int(seg)].sort_values(ascending=False)
        assert list(g["item_id"])[:3] == list(exp.index[:3])
        assert g["revenue"].astype(float).iloc[0] == pytest.approx(exp.iloc[0], rel=1e-6)
        first = g.iloc[0]
        lift = (exp.iloc[0] / seg_total.loc[int(seg)]) / pop_share.loc[exp.index[0]]
        assert float(first["lift"]) == pytest.approx(lift, rel=1e-6)
        assert list(g["rank"].astype(int)) == list(range(1, len(g) + 1))
    lifted = top[top["ranking"] == "lift"]
    assert (lifted["buyers"].astype(int) >= 3).all()
    for (_seg, _typ), g in lifted.groupby(["segment_id", "item_type"]):
        assert list(g.sort_values("rank")["lift"].astype(float)) == sorted(g["lift"].astype(float), reverse=True)


# --- report --------------------------------------------------------------------------------------


def test_report_of_a_real_run_is_complete_and_self_contained(published: Published, tmp_path: Path) -> None:
    e = published.engine
    path = render_report(e, S2, tmp_path)
    assert path == tmp_path / f"report_{S2.isoformat()}.html"
    doc = path.read_text(encoding="utf-8")
    assert (tmp_path / "latest.html").read_text(encoding="utf-8") == doc
    # Self-contained: nothing to fetch, nothing to run.
    lowered = doc.lower()
    for forbidden in ("<script", "<link", "<img", "@import", "url(", "http://", "https://", "<iframe"):
        assert forbidden not in lowered, forbidden
    # Every section of the issue, with the run's own figures.
    for heading in ("Silhouette by k", "Davies-Bouldin by k", "Segments", "Feature profile",
                    "Customers in two dimensions", "Why a customer is in a segment", f"Drift since {S1.isoformat()}",
                    "Transitions", "Recommendation feed"):
        assert heading in doc, heading
    prof = _q(e, "SELECT segment_name, size FROM segmentation.segment_profiles WHERE snapshot_date = :s", s=S2)
    for r in prof.itertuples(index=False):
        assert r.segment_name in doc and f"{int(r.size):,}" in doc
    rules = _q(e, "SELECT rule FROM segmentation.segment_rules WHERE snapshot_date = :s", s=S2)
    for rule in rules["rule"]:
        assert rule.replace(">", "&gt;").replace("<", "&lt;") in doc
    run = _q(e, "SELECT k, k_scores, rules_accuracy FROM segmentation.segment_runs WHERE snapshot_date = :s "
                "AND status = 'published'", s=S2).iloc[0]
    k_scores = json.loads(run["k_scores"])
    assert doc.count('class="dot') == 2 * len(k_scores)  # one dot per k in each of the two charts
    assert f"{float(run['rules_accuracy']) * 100:.1f}%" in doc
    stayed = _q(e, "SELECT MAX(customers) AS n FROM segmentation.segment_transitions WHERE snapshot_date = :s", s=S2)
    assert f">{int(stayed['n'][0]):,}</td>" in doc
    # projection: one dot per sampled customer (everyone, with 1,000 customers)
    assert doc.count('fill-opacity="0.7"') == len(_history(e, S2))
    # No customer id leaks into the report.
    assert not re.search(r"C\d{7}", doc)


def test_report_first_snapshot_backfill_and_unknown_date(published: Published, tmp_path: Path) -> None:
    e = published.engine
    render_report(e, S2, tmp_path)
    older = render_report(e, S1, tmp_path)  # a backfill of an older date: latest.html stays on S2
    doc = older.read_text(encoding="utf-8")
    assert "First published snapshot" in doc and "an older snapshot" in doc
    assert f"snapshot {S2.isoformat()}" in (tmp_path / "latest.html").read_text(encoding="utf-8")
    with pytest.raises(ReportError, match=r"segment_runs: no run with status 'published' for snapshot_date 2020-01-01"):
        render_report(e, date(2020, 1, 1), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "latest.html", f"report_{S1.isoformat()}.html", f"report_{S2.isoformat()}.html"
    ]
