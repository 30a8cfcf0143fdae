"""Segments that hold still (issue 18), on PostgreSQL: a sequence of daily runs on generated data.

While the data changes by one day only, k is kept (the message says so) and at most twice as many
customers change segment as had a material change in their own features; when a new customer type
appears (planted: wholesale buyers ordering every day), it gets a segment of its own within a few
days, and the message of that run says that a new segment appeared and why k was kept or changed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pandas as pd
import pytest

from include.segmentation.explain import render_report
from include.segmentation.pipeline import run_pipeline
from include.segmentation.store import bulk_insert, get_engine, read_sql

pytestmark = pytest.mark.postgres  # about 30 s (6 daily runs of 1,500 customers)

END = date(2024, 6, 30)
STEADY = [date(2024, 6, 26), date(2024, 6, 27), date(2024, 6, 28)]
PLANTED_FROM = date(2024, 6, 28)  # first day of the new type's orders: visible from snapshot 06-29
AFTER = [date(2024, 6, 29), date(2024, 6, 30), date(2024, 7, 1)]
PARAMS = {"k_min": 3, "k_max": 6}
N_PLANTED = 150


def _run_row(engine, day: date) -> dict:
    with engine.connect() as conn:
        runs = read_sql(
            conn,
            "SELECT k, stability, moved_customers, moved_with_feature_change, message "
            "FROM segmentation.segment_runs WHERE snapshot_date = :d AND status = 'published'",
            {"d": day},
        )
    assert len(runs) == 1, f"no published run for {day}"
    return runs.iloc[0].to_dict()


def _plant_wholesalers(engine) -> list[str]:
    """New customers who each place one big order (30 lines of 40 units) every day from PLANTED_FROM."""
    ids = [f"W{i:05d}" for i in range(N_PLANTED)]
    customers = pd.DataFrame(
        {
            "customer_id": ids, "created_at": pd.Timestamp(PLANTED_FROM, tz="UTC"), "birth_year": pd.NA,
            "gender": None, "country": "France", "city": None, "email": None, "phone": None,
            "marketing_consent": False,
        }
    ).astype({"birth_year": "Int64"})
    lines = []
    for day in range((END - PLANTED_FROM).days + 1):
        when = pd.Timestamp(PLANTED_FROM + timedelta(days=day), tz="UTC") + pd.Timedelta(hours=10)
        for cid in ids:
            for line in range(1, 31):
                lines.append(
                    {"order_id": f"WO-{cid}-{day}", "line_number": line, "customer_id": cid, "ordered_at": when,
                     "product_id": f"WP{line:03d}", "category": "home", "quantity": 40, "unit_price": 25.0,
                     "discount": 0.0}
                )
    with engine.begin() as conn:
        bulk_insert(conn, "raw", "customers", customers)
        bulk_insert(conn, "raw", "transactions", pd.DataFrame(lines))
    return ids


def test_daily_runs_hold_still_and_pick_up_a_new_type(generated_warehouse: Callable[..., str]) -> None:
    engine = get_engine(generated_warehouse("postgres", customers=1500, days=400, end_date=END, seed=7))
    try:
        steady = []
        for day in STEADY:
            run_pipeline(engine, day, PARAMS, validate=False)
            steady.append(_run_row(engine, day))
        for before, now, day in zip(steady, steady[1:], STEADY[1:], strict=False):
            assert now["k"] == before["k"], f"{day}: k changed from {before['k']} to {now['k']}: {now['message']}"
            assert "k kept at" in now["message"], now["message"]
            moved, material = int(now["moved_customers"]), int(now["moved_with_feature_change"])
            assert moved <= 2 * material, f"{day}: {moved} customers moved, only {material} changed materially"
        assert steady[0]["moved_customers"] is None or pd.isna(steady[0]["moved_customers"])
        for row in steady:
            assert 0.0 <= float(row["stability"]) <= 1.0
        with engine.connect() as conn:
            profiles = read_sql(
                conn, "SELECT segment_id, stability FROM segmentation.segment_profiles WHERE snapshot_date = :d",
                {"d": STEADY[-1]},
            )
        assert len(profiles) == steady[-1]["k"] and profiles["stability"].between(0, 1).all()
        html = render_report(engine, STEADY[-1]).read_text(encoding="utf-8")
        assert "stability (bootstrap Jaccard)" in html and f"{float(steady[-1]['stability']):.2f}" in html

        planted = set(_plant_wholesalers(engine))
        found = None
        for day in AFTER:
            run_pipeline(engine, day, PARAMS, validate=False)
            with engine.connect() as conn:
                seg = read_sql(
                    conn, "SELECT customer_id, segment_id FROM segmentation.customer_segments_history "
                    "WHERE snapshot_date = :d", {"d": day},
                )
            seg["planted"] = seg["customer_id"].isin(planted)
            by_segment = seg.groupby("segment_id")["planted"].agg(["sum", "mean"])
            best = by_segment["sum"].idxmax()
            if by_segment.loc[best, "sum"] >= 0.8 * len(planted) and by_segment.loc[best, "mean"] >= 0.8:
                found = (day, _run_row(engine, day))
                break
        assert found is not None, "the new customer type never got a segment of its own"
        message = found[1]["message"]
        assert "segments changed since the previous snapshot: new segment" in message, message
        assert "k changed from" in message or "model refitted" in message or "k kept at" in message, message
    finally:
        engine.dispose()
