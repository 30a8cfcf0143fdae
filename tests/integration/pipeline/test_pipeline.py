"""The segmentation pipeline end to end on real warehouses (PostgreSQL and SQLite), without Airflow.

Covers idempotent re-runs, backfills that never replace newer segments, stable ids across days,
the quality gate, crash safety of publish, the read-only role, and each bad-input path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.model import ClusteringError
from include.segmentation.pipeline import EmptyWindowError, ModelRejectedError, run_pipeline
from include.segmentation.store import bulk_insert, get_engine, read_sql

END = date(2024, 6, 30)
S = END + timedelta(days=1)
FAST = {"k_min": 3, "k_max": 8}
TINY = {"min_population": 1, "min_segment_size": 1}  # reach the clustering's own checks


def _table(engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_sql(conn, sql, params)


def _published(engine) -> dict[str, pd.DataFrame]:
    """Every published table, sorted, for before/after comparisons."""
    out = {}
    for name, key in (
        ("customer_segments", "customer_id"),
        ("customer_segments_history", "snapshot_date, customer_id"),
        ("segment_profiles", "snapshot_date, segment_id"),
        ("customer_features", "snapshot_date, customer_id"),
    ):
        out[name] = _table(engine, f"SELECT * FROM segmentation.{name} ORDER BY {key}").astype(str)
    return out


def _runs(engine) -> pd.DataFrame:
    return _table(engine, "SELECT run_id, snapshot_date, status, message FROM segmentation.segment_runs ORDER BY run_id")


@pytest.fixture(params=["sqlite", "postgres"])
def loaded(request: pytest.FixtureRequest, generated_engine: Callable[..., sa.Engine]) -> sa.Engine:
    """A warehouse of this test's own with 1,200 generated customers, on each flavour."""
    return generated_engine(request.param, customers=1200, days=400, end_date=END, seed=7)


def test_publishes_a_complete_snapshot(loaded) -> None:
    out = run_pipeline(loaded, S, FAST, validate=False)
    assert out["current"] is True and out["snapshot_date"] == S.isoformat()
    segs = _table(loaded, "SELECT * FROM segmentation.customer_segments")
    active = _table(
        loaded,
        "SELECT customer_id FROM raw.transactions WHERE customer_id IS NOT NULL AND ordered_at >= :a AND ordered_at < :b "
        "UNION SELECT customer_id FROM raw.browsing_events WHERE customer_id IS NOT NULL AND occurred_at >= :a AND occurred_at < :b",
        a=str(S - timedelta(days=365)), b=str(S),
    )
    assert set(segs["customer_id"]) == set(active["customer_id"])  # one row per active customer, nobody else
    assert segs["customer_id"].is_unique
    run = _table(loaded, "SELECT * FROM segmentation.segment_runs").iloc[0]
    assert run["status"] == "published" and int(run["k"]) == out["scores"]["k"]
    assert 3 <= int(run["k"]) <= 8 and float(run["silhouette"]) >= 0.2
    assert int(run["population"]) == len(segs) and int(run["excluded_guest_lines"]) > 0
    assert int(run["excluded_anonymous_events"]) > 0
    profiles = _table(loaded, "SELECT * FROM segmentation.segment_profiles")
    assert len(profiles) == int(run["k"]) and abs(profiles["share"].astype(float).sum() - 1) < 1e-9
    assert profiles["segment_name"].is_unique
    assert set(profiles["segment_id"].astype(int)) == set(segs["segment_id"].astype(int))
    conf = segs["confidence"].astype(float)
    assert ((conf > 0) & (conf <= 1)).all()
    feats = _table(loaded, "SELECT * FROM segmentation.customer_features")
    assert len(feats) == len(segs)
    # staging tables are gone after publish
    insp = sa.inspect(loaded)
    assert not [t for t in insp.get_table_names(schema="segmentation") if t.startswith("stg_")]


def test_rerun_is_identical_and_backfill_never_replaces_newer(loaded) -> None:
    run_pipeline(loaded, S, FAST, validate=False)
    first = _published(loaded)
    run_pipeline(loaded, S, FAST, validate=False)
    again = _published(loaded)
    for name in first:  # same content; run_id is the lineage of the attempt that published it
        pd.testing.assert_frame_equal(first[name].drop(columns="run_id"), again[name].drop(columns="run_id"), obj=name)
    runs = _runs(loaded)
    assert sorted(runs["status"]) == ["published", "superseded"]

    older = S - timedelta(days=30)
    out = run_pipeline(loaded, older, FAST, validate=False)
    assert out["current"] is False
    now = _published(loaded)
    pd.testing.assert_frame_equal(again["customer_segments"], now["customer_segments"])
    dates = _table(loaded, "SELECT DISTINCT snapshot_date FROM segmentation.customer_segments_history ORDER BY 1")
    assert [str(d)[:10] for d in dates["snapshot_date"]] == [older.isoformat(), S.isoformat()]


def test_segment_ids_are_stable_from_one_day_to_the_next(loaded) -> None:
    day1, day2 = S - timedelta(days=1), S
    run_pipeline(loaded, day1, FAST, validate=False)
    run_pipeline(loaded, day2, FAST, validate=False)
    h = _table(
        loaded,
        "SELECT a.segment_id AS id1, b.segment_id AS id2 FROM segmentation.customer_segments_history a "
        "JOIN segmentation.customer_segments_history b ON a.customer_id = b.customer_id "
        "WHERE a.snapshot_date = :d1 AND b.snapshot_date = :d2",
        d1=day1, d2=day2,
    )
    kept = (h["id1"] == h["id2"]).mean()
    assert kept > 0.9, f"only {kept:.1%} of customers kept their segment id"
    p1 = _table(loaded, "SELECT segment_id FROM segmentation.segment_profiles WHERE snapshot_date = :d", d=day1)
    p2 = _table(loaded, "SELECT segment_id FROM segmentation.segment_profiles WHERE snapshot_date = :d", d=day2)
    assert len(set(p1["segment_id"]) & set(p2["segment_id"])) >= min(len(p1), len(p2)) - 1


def test_quality_gate_rejects_and_keeps_previous_snapshot(loaded) -> None:
    run_pipeline(loaded, S, FAST, validate=False)
    before = _published(loaded)
    # Re-running the same, already published date with a gate it cannot pass.
    with pytest.raises(ModelRejectedError, match="silhouette .* below the minimum 0.9900"):
        run_pipeline(loaded, S, {**FAST, "min_silhouette": 0.99}, validate=False)
    after = _published(loaded)
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    runs = _runs(loaded)
    rejected = runs[runs["status"] == "rejected"]
    assert len(rejected) == 1 and "model rejected" in rejected["message"].iloc[0]
    assert sorted(runs["status"]) == ["published", "rejected"]  # the published record is untouched


def test_crash_during_publish_leaves_previous_snapshot(loaded, monkeypatch) -> None:
    run_pipeline(loaded, S - timedelta(days=1), FAST, validate=False)
    before = _published(loaded)
    import include.segmentation.store.publish as publish

    real = publish.upsert_run

    def crash(conn, row, merge=True):
        if row.get("status") == "published":
            raise RuntimeError("simulated crash after the snapshot rows were written")
        return real(conn, row, merge)

    monkeypatch.setattr(publish, "upsert_run", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_pipeline(loaded, S, FAST, validate=False)
    monkeypatch.undo()
    after = _published(loaded)
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    runs = _runs(loaded)
    crashed = runs[runs["snapshot_date"].astype(str).str[:10] == S.isoformat()]
    assert crashed["status"].tolist() == ["failed"] and "simulated crash" in crashed["message"].iloc[0]


def test_empty_window_is_a_clear_error(loaded) -> None:
    run_pipeline(loaded, S, FAST, validate=False)
    before = _published(loaded)
    with pytest.raises(EmptyWindowError, match="no customer activity in the window"):
        run_pipeline(loaded, date(2000, 1, 1), FAST, validate=False)
    after = _published(loaded)
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    failed = _runs(loaded).query("status == 'failed'")
    assert len(failed) == 1 and "extract: no customer activity" in failed["message"].iloc[0]


def _customer(cid: str) -> dict:
    return {
        "customer_id": cid, "created_at": pd.Timestamp("2024-01-01", tz="UTC"), "birth_year": pd.NA, "gender": None,
        "country": "France", "city": None, "email": None, "phone": None, "marketing_consent": False,
    }


def _line(order: str, cid: str | None, day: int, qty: int = 1, price: float = 10.0) -> dict:
    return {
        "order_id": order, "line_number": 1, "customer_id": cid,
        "ordered_at": pd.Timestamp("2024-06-01", tz="UTC") + pd.Timedelta(days=day), "product_id": "P1",
        "category": "home", "quantity": qty, "unit_price": price, "discount": 0.0,
    }


def _load(engine, customers: list[dict], lines: list[dict], events: list[dict] | None = None) -> None:
    with engine.begin() as conn:
        bulk_insert(conn, "raw", "customers", pd.DataFrame(customers).astype({"birth_year": "Int64"}))
        if lines:
            bulk_insert(conn, "raw", "transactions", pd.DataFrame(lines))
        if events:
            bulk_insert(conn, "raw", "browsing_events", pd.DataFrame(events))


def test_population_smaller_than_k_range(engine) -> None:
    _load(engine, [_customer("a"), _customer("b")], [_line("o1", "a", 1), _line("o2", "b", 2, price=99.0)])
    with pytest.raises(ClusteringError, match="population of 2 customer\\(s\\) is too small for k_min=3"):
        run_pipeline(engine, S, TINY, validate=False)
    assert _runs(engine)["status"].tolist() == ["failed"]
    assert _table(engine, "SELECT COUNT(*) AS n FROM segmentation.customer_segments")["n"].iloc[0] == 0


def test_single_repeated_customer(engine) -> None:
    _load(engine, [_customer("solo")], [_line(f"o{i}", "solo", i % 20) for i in range(50)])
    with pytest.raises(ClusteringError, match="population of 1 customer"):
        run_pipeline(engine, S, TINY, validate=False)
    assert _runs(engine)["status"].tolist() == ["failed"]


def test_identical_feature_vectors_have_no_variance(engine) -> None:
    """Customers whose every feature is the same (all-null attributes, one identical page view each)."""
    customers = [_customer(f"c{i}") for i in range(40)]
    events = [
        {
            "event_id": f"e{i}", "session_id": f"s{i}", "customer_id": f"c{i}",
            "occurred_at": pd.Timestamp("2024-06-10", tz="UTC"), "event_type": "page_view", "product_id": None,
            "category": None, "search_query": None, "dwell_seconds": None,
        }
        for i in range(40)
    ]
    _load(engine, customers, [], events)
    with pytest.raises(ClusteringError, match="no variance"):
        run_pipeline(engine, S, TINY, validate=False)
    assert _runs(engine)["status"].tolist() == ["failed"]


def test_reader_role_sees_published_tables_only(generated_warehouse: Callable[..., str]) -> None:
    engine = get_engine(generated_warehouse("postgres", customers=600, days=400, end_date=END, seed=3))
    run_pipeline(engine, S, FAST, validate=False)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET ROLE segment_reader")
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM segmentation.customer_segments").scalar_one() > 0
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM segmentation.segment_runs").scalar_one() == 1
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.exec_driver_sql("SELECT COUNT(*) FROM raw.customers")
        conn.rollback()
        conn.exec_driver_sql("SET ROLE segment_reader")
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.exec_driver_sql("DELETE FROM segmentation.customer_segments")
        conn.rollback()
    engine.dispose()
