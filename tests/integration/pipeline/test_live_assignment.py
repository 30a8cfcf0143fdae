"""Live assignment on real warehouses (PostgreSQL and SQLite): after a daily publish, new orders and
sign-ups get a segment from the published model, the daily tables never change, re-runs are idempotent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.model import MODEL_FEATURES, build_features
from include.segmentation.model.persisted import PersistedModel
from include.segmentation.pipeline import run_pipeline
from include.segmentation.pipeline.live import (
    as_of_date,
    assign_collected,
    collect_ids,
    ensure_live_objects,
    live_assign,
)
from include.segmentation.pipeline.publish import published_model
from include.segmentation.sources import Window, create_source_contract, extract_aggregates
from include.segmentation.store import bulk_insert, drop_table, get_engine, read_sql, read_staging
from include.segmentation.store.publish import PUBLISH_LOCK_KEY
from tests.airflow_env import warehouse_conn_env

DAG_FILE = Path(__file__).resolve().parents[3] / "dags" / "segment_assignment.py"
END = date(2024, 6, 30)
S = END + timedelta(days=1)
CUTOFF = datetime(2024, 7, 1, tzinfo=timezone.utc)
NOW = CUTOFF + timedelta(hours=12)
FAST = {"k_min": 3, "k_max": 6}
DAILY = ("customer_segments", "customer_segments_history", "segment_profiles", "customer_features", "segment_runs",
         "segment_models", "segment_rules", "segment_drift", "segment_top_products", "segment_transitions")


def _publish(engine: sa.Engine) -> None:
    """Template preparation: one daily run at S (published)."""
    run_pipeline(engine, S, FAST, validate=False)


@pytest.fixture(params=["sqlite", "postgres"])
def published(request: pytest.FixtureRequest, generated_warehouse) -> Iterator[sa.Engine]:
    """A warehouse of this test's own, 1,200 generated customers, with the daily snapshot of S published."""
    engine = get_engine(generated_warehouse(request.param, customers=1200, days=400, end_date=END, seed=7,
                                            prepare=_publish))
    yield engine
    engine.dispose()


def _frame(engine: sa.Engine, sql: str, **params: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_sql(conn, sql, params)


def _daily_tables(engine: sa.Engine) -> dict[str, pd.DataFrame]:
    out = {}
    for name in DAILY:
        frame = _frame(engine, f"SELECT * FROM segmentation.{name}")
        out[name] = frame.astype(str).sort_values(list(frame.columns)).reset_index(drop=True)
    return out


def _ts(value: datetime) -> pd.Timestamp:
    return pd.Timestamp(value)


def _add_activity(engine: sa.Engine, existing: str) -> None:
    """After the cut-off: two orders of an existing customer, a sign-up who buys and browses, a sign-up
    who does nothing else yet, a guest order and an anonymous event; and an order after NOW."""
    customers = pd.DataFrame([
        {"customer_id": "new_buyer", "created_at": _ts(CUTOFF + timedelta(hours=8)), "birth_year": 1990,
         "gender": "f", "country": "DE", "city": None, "email": None, "phone": None, "marketing_consent": True},
        {"customer_id": "new_signup", "created_at": _ts(CUTOFF + timedelta(hours=9, minutes=30)), "birth_year": None,
         "gender": None, "country": "FR", "city": None, "email": None, "phone": None, "marketing_consent": False},
        {"customer_id": "tomorrow", "created_at": _ts(NOW + timedelta(hours=1)), "birth_year": None,
         "gender": None, "country": "FR", "city": None, "email": None, "phone": None, "marketing_consent": False},
    ])
    customers["birth_year"] = customers["birth_year"].astype("Int64")

    def line(order: str, customer: str | None, at: datetime, qty: int, price: float, n: int = 1) -> dict[str, Any]:
        return {"order_id": order, "line_number": n, "customer_id": customer, "ordered_at": _ts(at),
                "product_id": "p1", "category": "books", "quantity": qty, "unit_price": price, "discount": 0.0}

    tx = pd.DataFrame([
        line("live_o1", existing, CUTOFF + timedelta(hours=9), 2, 30.0),
        line("live_o2", existing, CUTOFF + timedelta(hours=10), 1, 250.0),
        line("live_o3", "new_buyer", CUTOFF + timedelta(hours=8, minutes=30), 3, 12.5),
        line("live_o3", "new_buyer", CUTOFF + timedelta(hours=8, minutes=30), 1, 40.0, n=2),
        line("live_guest", None, CUTOFF + timedelta(hours=9), 1, 10.0),
        line("live_later", "tomorrow", NOW + timedelta(hours=2), 1, 10.0),
    ])
    ev = pd.DataFrame([
        {"event_id": "live_e1", "session_id": "live_s1", "customer_id": "new_buyer",
         "occurred_at": _ts(CUTOFF + timedelta(hours=8, minutes=10)), "event_type": "product_view",
         "product_id": "p1", "category": "books", "search_query": None, "dwell_seconds": 42.0},
        {"event_id": "live_e2", "session_id": "live_s2", "customer_id": None,
         "occurred_at": _ts(CUTOFF + timedelta(hours=11)), "event_type": "page_view",
         "product_id": None, "category": None, "search_query": None, "dwell_seconds": None},
    ])
    with engine.begin() as conn:
        bulk_insert(conn, "raw", "customers", customers)
        bulk_insert(conn, "raw", "transactions", tx)
        bulk_insert(conn, "raw", "browsing_events", ev)


def _expected_from_daily_extract(engine: sa.Engine, model: PersistedModel, ids: list[str]) -> pd.DataFrame:
    """What the daily definitions give these customers on the same data: the full extract of the window
    ending at D (no data exists between NOW and D), build_features as of D, the published model."""
    d = as_of_date(NOW)
    out = extract_aggregates(engine, Window(d, model.window_days), key="livecheck")
    try:
        aggregates = read_staging(engine, out["aggregates_table"])
    finally:
        with engine.begin() as conn:
            drop_table(conn, "segmentation", out["aggregates_table"].split(".", 1)[1])
    features = build_features(aggregates, d, model.window_days)
    return model.assign(features.loc[ids])


def test_new_activity_shows_in_customer_segments_now(published: sa.Engine) -> None:
    daily = _frame(published, "SELECT * FROM segmentation.customer_segments")
    existing = str(daily.sort_values("customer_id")["customer_id"].iloc[0])
    _add_activity(published, existing)
    before = _daily_tables(published)

    out = live_assign(published, NOW)

    assert out["status"] == "assigned", out["reason"]
    assert out["customers"] == 3 and out["new_customers"] == 2  # existing, new_buyer, new_signup
    assert out["model_snapshot_date"] == S.isoformat() and out["as_of_date"] == (S + timedelta(days=1)).isoformat()
    now = _frame(published, "SELECT * FROM segmentation.customer_segments_now")
    assert now["customer_id"].is_unique and len(now) == len(daily) + 2
    live = now[now["source"] == "live"].set_index("customer_id")
    assert set(live.index) == {existing, "new_buyer", "new_signup"}
    model = published_model(published)
    assert model is not None and model.snapshot_date == S.isoformat()
    assert set(live["segment_id"].astype(int)) <= set(model.segment_ids)
    assert (live["model_snapshot_date"].astype(str).str[:10] == S.isoformat()).all()
    # Everyone else keeps the daily row.
    rest = now[now["source"] == "daily"].set_index("customer_id")
    same = daily.set_index("customer_id").loc[rest.index]
    assert (rest["segment_id"].astype(int) == same["segment_id"].astype(int)).all()

    # Buyers' segments are what the daily definitions and the published model give on the same data.
    expected = _expected_from_daily_extract(published, model, [existing, "new_buyer"])
    stored = _frame(published, "SELECT * FROM segmentation.customer_segments_live").set_index("customer_id")
    for cid in (existing, "new_buyer"):
        assert int(stored.loc[cid, "segment_id"]) == int(expected.loc[cid, "segment_id"]), cid
        assert float(stored.loc[cid, "distance"]) == pytest.approx(float(expected.loc[cid, "distance"]), abs=1e-9)
        assert float(stored.loc[cid, "confidence"]) == pytest.approx(float(expected.loc[cid, "confidence"]), abs=1e-9)

    # Idempotent: the same run again writes the same rows; the daily tables never changed.
    again = live_assign(published, NOW)
    assert again["status"] == "assigned" and again["customers"] == 3 and again["changed_segment"] == 0
    stored_again = _frame(published, "SELECT * FROM segmentation.customer_segments_live").set_index("customer_id")
    pd.testing.assert_frame_equal(stored.sort_index().astype(str), stored_again.sort_index().astype(str))
    after = _daily_tables(published)
    for name in DAILY:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)


def test_same_data_gives_the_daily_segment(published: sa.Engine) -> None:
    """At the daily cut-off itself the live features are the daily run's: every customer gets the daily segment."""
    daily = _frame(published, "SELECT customer_id, segment_id, distance FROM segmentation.customer_segments")
    sample = daily.sample(300, random_state=1).set_index("customer_id")
    model = published_model(published)
    assert model is not None
    with published.begin() as conn:
        collect_ids(conn, CUTOFF, CUTOFF, list(sample.index))
        got = assign_collected(conn, model, CUTOFF)
    assert len(got) == len(sample)
    got = got.loc[sample.index]
    assert (got["segment_id"].astype(int) == sample["segment_id"].astype(int)).all()
    assert np.allclose(got["distance"].astype(float), sample["distance"].astype(float), atol=1e-9)
    # The published model also reproduces the whole snapshot from the published features.
    feats = _frame(published, "SELECT * FROM segmentation.customer_features").set_index("customer_id")
    every = model.assign(feats[list(MODEL_FEATURES)].astype("float64"))
    want = daily.set_index("customer_id")["segment_id"].astype(int)
    assert (every.loc[want.index, "segment_id"].astype(int) == want).all()
    # A live run at the cut-off writes rows the daily snapshot already supersedes: they are pruned.
    out = live_assign(published, CUTOFF, customers=list(sample.index[:20]))
    assert out["customers"] == 20 and out["pruned"] == 20
    assert _frame(published, "SELECT COUNT(*) AS n FROM segmentation.customer_segments_live")["n"].iloc[0] == 0


def test_segment_models_row_is_published_with_the_snapshot(published: sa.Engine) -> None:
    row = _frame(published, "SELECT m.*, r.k AS run_k FROM segmentation.segment_models m "
                            "JOIN segmentation.segment_runs r ON r.run_id = m.run_id")
    assert len(row) == 1 and str(row["snapshot_date"].iloc[0])[:10] == S.isoformat()
    doc = json.loads(row["model"].iloc[0])
    assert int(row["k"].iloc[0]) == int(row["run_k"].iloc[0]) == len(doc["segments"])
    profiles = _frame(published, "SELECT segment_id, segment_name FROM segmentation.segment_profiles")
    assert {(s["segment_id"], s["segment_name"]) for s in doc["segments"]} == {
        (int(i), str(n)) for i, n in zip(profiles["segment_id"], profiles["segment_name"], strict=True)
    }
    assert doc["lifetime_model"] is None or doc["lifetime_model"]["model"] == "bg_nbd"
    left = _frame(published, "SELECT COUNT(*) AS n FROM segmentation.segment_runs")  # and no staging left behind
    assert int(left["n"].iloc[0]) == 1


def test_skips_with_a_reason_when_it_cannot_assign(published: sa.Engine, warehouse_factory) -> None:
    flavour = published.dialect.name
    # A daily publish holds the lock: skipped, nothing written.
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with published.begin() as conn:
            if flavour != "sqlite":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PUBLISH_LOCK_KEY})
            holding.set()
            release.wait(30)

    ensure_live_objects(published)
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        out = live_assign(published, NOW, lock_wait_seconds=0.5)
    finally:
        release.set()
        holder.join()
    assert out["status"] == "skipped" and ("publishing" in out["reason"] or "locked" in out["reason"])
    assert _frame(published, "SELECT COUNT(*) AS n FROM segmentation.customer_segments_live")["n"].iloc[0] == 0
    # No activity since the cut-off: skipped, saying so.
    quiet = live_assign(published, NOW)
    assert quiet["status"] == "skipped" and "no customer activity" in quiet["reason"] and quiet["customers"] == 0
    # Nothing published yet.
    empty = get_engine(warehouse_factory.empty("sqlite" if flavour == "sqlite" else "postgres"))
    try:
        create_source_contract(empty)
        out = live_assign(empty, NOW)
        assert out["status"] == "skipped" and "nothing is published" in out["reason"]
    finally:
        empty.dispose()


@pytest.mark.postgres
def test_segment_reader_reads_the_live_tables(generated_warehouse) -> None:
    engine = get_engine(generated_warehouse("postgres", customers=1200, days=400, end_date=END, seed=7,
                                            prepare=_publish))
    try:
        ensure_live_objects(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL ROLE segment_reader")
            for name in ("customer_segments_now", "customer_segments_live", "segment_models"):
                conn.exec_driver_sql(f"SELECT COUNT(*) FROM segmentation.{name}").scalar()
    finally:
        engine.dispose()


def test_the_dag_assigns_then_skips_when_nothing_is_new(generated_warehouse, airflow_db, monkeypatch) -> None:
    """``dag.test()`` of segment_assignment at NOW: the task succeeds with counts; at a time with no new
    activity the task is skipped (not a silent success)."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag

    warehouse = generated_warehouse("sqlite", customers=1200, days=400, end_date=END, seed=7, prepare=_publish)
    engine = get_engine(warehouse)
    try:
        existing = str(_frame(engine, "SELECT MIN(customer_id) AS c FROM segmentation.customer_segments")["c"].iloc[0])
        _add_activity(engine, existing)
    finally:
        engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse_conn_env(warehouse))
    dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("segment_assignment")
    run = dag.test(logical_date=pendulum.instance(NOW))
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {"assign": "success", "announce": "success"}
    engine = get_engine(warehouse)
    try:
        live = _frame(engine, "SELECT customer_id FROM segmentation.customer_segments_live")
    finally:
        engine.dispose()
    assert set(live["customer_id"]) == {existing, "new_buyer", "new_signup"}
    quiet = dag.test(logical_date=pendulum.instance(CUTOFF + timedelta(hours=1)))  # before any new activity
    assert {ti.task_id: str(ti.state) for ti in quiet.get_task_instances()} == {"assign": "skipped", "announce": "skipped"}


def test_as_of_date_is_the_first_midnight_at_or_after_now() -> None:
    """Live features are those of the daily run whose cut-off is the first midnight at or after ``now``."""
    assert as_of_date(CUTOFF) == S  # exactly at a cut-off: that day's daily run reads the same data
    assert as_of_date(CUTOFF + timedelta(seconds=1)) == S + timedelta(days=1)
    assert as_of_date(CUTOFF + timedelta(hours=23, minutes=59, seconds=59)) == S + timedelta(days=1)
