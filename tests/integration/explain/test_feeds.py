"""Pricing and inventory feeds from real pipeline runs on generated data with a planted price response.

One warehouse per flavour (PostgreSQL and SQLite), generated with ``price_response=True`` (planted
elasticities by customer type) and one published snapshot. The published elasticity is checked
against the planted truth computed independently from the raw lines and the ground truth; the
demand forecast against an independent computation from the raw lines and the run's BG/NBD model;
then a rejected run publishes no feed, ``segment_reader`` may read both, and the report shows them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.explain import render_report
from include.segmentation.model.lifetime import expected_purchases, summarise_occasions
from include.segmentation.pipeline import ModelRejectedError, run_pipeline
from include.segmentation.sources import create_source_contract, generate_to_warehouse
from include.segmentation.sources.synthetic.catalogue import catalogue
from include.segmentation.sources.synthetic.pricing import PLANTED_ELASTICITY, R_MAX
from include.segmentation.store import get_engine, read_sql

END = date(2024, 6, 30)
S = END + timedelta(days=1)
SEED = 11
WINDOW = 365
PARAMS = {"k_min": 3, "k_max": 6, "window_days": WINDOW}


@dataclass
class Published:
    engine: sa.Engine
    flavour: str


def _q(engine: sa.Engine, sql: str, **params: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_sql(conn, sql, params)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def published(request: pytest.FixtureRequest, warehouse_factory: Any) -> Iterator[Published]:
    """Generated data with the planted price response and one published snapshot S."""
    url = warehouse_factory.empty(request.param)
    engine = get_engine(url)
    try:
        create_source_contract(engine)
        generate_to_warehouse(engine, customers=1500, days=400, end_date=END, seed=SEED, price_response=True)
        run_pipeline(engine, S, PARAMS, validate=False)
        yield Published(engine, request.param)
    finally:
        engine.dispose()
        warehouse_factory.drop(url)


def _member_lines(engine: sa.Engine) -> pd.DataFrame:
    """Purchase lines of the snapshot's members in the window, with segment and planted type."""
    lines = _q(engine, "SELECT customer_id, ordered_at, product_id, category, quantity, unit_price, discount "
                       "FROM raw.transactions WHERE quantity > 0 AND customer_id IS NOT NULL")
    seg = _q(engine, "SELECT customer_id, segment_id FROM segmentation.customer_segments_history WHERE snapshot_date = :s",
             s=S)
    types = _q(engine, "SELECT customer_id, planted_type FROM evaluation.planted_types")
    lines["ordered_at"] = pd.to_datetime(lines["ordered_at"], utc=True, format="mixed")
    start = pd.Timestamp(S - timedelta(days=WINDOW), tz="UTC")
    lines = lines[(lines["ordered_at"] >= start) & (lines["ordered_at"] < pd.Timestamp(S, tz="UTC"))]
    for col in ("quantity", "unit_price", "discount"):
        lines[col] = pd.to_numeric(lines[col]).astype("float64")
    out = lines.merge(seg, on="customer_id").merge(types, on="customer_id")
    out["segment_id"] = out["segment_id"].astype(int)
    return out


def _planted_slope(lines: pd.DataFrame) -> float:
    """The slope the planted model implies for these lines: sum(dx * z) / sum(dx^2), z = e * log(p / (p_ref R_MAX))."""
    cat = catalogue(SEED)
    ref = pd.Series(cat.price_cents / 100.0, index=[str(p) for p in cat.product_str])
    price = ((lines["quantity"] * lines["unit_price"] - lines["discount"]) / lines["quantity"]).round(2)
    d = lines.assign(price=price, e=lines["planted_type"].map(PLANTED_ELASTICITY).astype(float))
    d = d[d["price"] > 0]
    d = d[d.groupby("product_id")["price"].transform("nunique") >= 2]
    x = np.log(d["price"])
    dx = x - x.groupby(d["product_id"]).transform("mean")
    z = d["e"] * np.log(d["price"] / (d["product_id"].map(ref) * R_MAX))
    return float((dx * z).sum() / (dx * dx).sum())


def test_elasticity_recovers_the_planted_price_response(published: Published) -> None:
    e = published.engine
    pooled = _q(e, "SELECT * FROM segmentation.segment_price_response WHERE snapshot_date = :s AND category = '*'", s=S)
    lines = _member_lines(e)
    checked = set()
    for row in pooled.itertuples(index=False):
        mine = lines[lines["segment_id"] == int(row.segment_id)]
        top_type = mine["planted_type"].value_counts(normalize=True)
        if row.elasticity is None or pd.isna(row.elasticity) or top_type.iloc[0] < 0.6:
            continue
        dominant = str(top_type.index[0])
        if dominant not in ("bargain_hunter", "loyal_high_spender"):
            continue
        truth = _planted_slope(mine)
        assert abs(float(row.elasticity) - truth) <= 2 * float(row.elasticity_se), (dominant, row.elasticity, truth)
        if dominant == "bargain_hunter":
            assert float(row.elasticity) < -1.5
        else:
            assert abs(float(row.elasticity)) < 0.3
        checked.add(dominant)
    assert checked == {"bargain_hunter", "loyal_high_spender"}, f"segments checked: {checked}"


def test_discount_columns_match_the_raw_lines(published: Published) -> None:
    e = published.engine
    rows = _q(e, "SELECT * FROM segmentation.segment_price_response WHERE snapshot_date = :s", s=S)
    lines = _member_lines(e)
    gross = lines["quantity"] * lines["unit_price"]
    lines = lines.assign(net=gross - lines["discount"], gross=gross, on=lines["discount"] > 0)
    for row in rows[rows["category"] == "*"].itertuples(index=False):
        mine = lines[lines["segment_id"] == int(row.segment_id)]
        disc = mine[mine["on"]]
        assert float(row.revenue) == pytest.approx(mine["net"].sum(), rel=1e-6)
        assert float(row.discounted_revenue_share) == pytest.approx(disc["net"].sum() / mine["net"].sum(), rel=1e-6)
        assert float(row.avg_discount_depth) == pytest.approx(disc["discount"].sum() / disc["gross"].sum(), rel=1e-6)
    per_cat = rows[rows["category"] != "*"].groupby("segment_id")["revenue"].sum()
    pooled = rows[rows["category"] == "*"].set_index("segment_id")["revenue"]
    np.testing.assert_allclose(per_cat.sort_index().to_numpy(), pooled.sort_index().to_numpy(), rtol=1e-9)


def test_demand_forecast_is_expected_occasions_times_the_category_mix(published: Published) -> None:
    e = published.engine
    fc = _q(e, "SELECT * FROM segmentation.segment_demand_forecast WHERE snapshot_date = :s", s=S)
    run = _q(e, "SELECT lifetime_model FROM segmentation.segment_runs WHERE snapshot_date = :s AND status = 'published'",
             s=S)
    params = json.loads(run["lifetime_model"].iloc[0])
    lines = _member_lines(e)
    lines["day"] = lines["ordered_at"].dt.tz_convert("UTC").dt.normalize().dt.tz_localize(None)
    lines["category"] = lines["category"].fillna("(none)")
    occ = lines.groupby(["segment_id", "customer_id", "day"], as_index=False).agg(spend=("quantity", "size"))
    assert set(fc["horizon_days"].astype(int)) == {28}
    for seg, mine in occ.groupby("segment_id"):
        summary = summarise_occasions(mine[["customer_id", "day", "spend"]], S - timedelta(days=1))
        want = expected_purchases(params, 4.0, *(summary[c].to_numpy("float64") for c in ("x", "t_x", "T"))).sum()
        rows = fc[fc["segment_id"].astype(int) == seg].set_index("category")
        assert float(rows["expected_occasions"].iloc[0]) == pytest.approx(want, rel=1e-6)
        assert int(rows["buyers"].iloc[0]) == mine["customer_id"].nunique()
        seg_lines = lines[lines["segment_id"] == seg]
        units = seg_lines.groupby("category")["quantity"].sum() / len(mine)
        np.testing.assert_allclose(rows["units_per_occasion"].astype(float).reindex(units.index), units, rtol=1e-9)
        np.testing.assert_allclose(rows["expected_units"].astype(float),
                                   rows["expected_occasions"].astype(float) * rows["units_per_occasion"].astype(float))


def test_a_rejected_run_publishes_no_feed_and_readers_and_report_see_them(published: Published, tmp_path: Path) -> None:
    e = published.engine
    later = S + timedelta(days=1)
    with pytest.raises(ModelRejectedError):
        run_pipeline(e, later, {**PARAMS, "min_silhouette": 0.99}, validate=False)
    for table in ("segment_price_response", "segment_demand_forecast"):
        assert len(_q(e, f"SELECT 1 FROM segmentation.{table} WHERE snapshot_date = :s", s=later)) == 0
        assert len(_q(e, f"SELECT 1 FROM segmentation.{table} WHERE snapshot_date = :s", s=S)) > 0
        if published.flavour == "postgres":
            ok = _q(e, "SELECT has_table_privilege('segment_reader', :t, 'SELECT') AS ok", t=f"segmentation.{table}")
            assert bool(ok["ok"].iloc[0])
    html = render_report(e, S, tmp_path).read_text(encoding="utf-8")
    assert 'id="feeds"' in html and "price elasticity" in html
