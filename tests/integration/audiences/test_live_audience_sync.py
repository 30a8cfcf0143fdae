"""A live assignment flows through the audience sync (PostgreSQL and SQLite, generated warehouse).

After a daily publish and a first sync, activity moves one consenting customer to another segment
through a live assignment run; the next sync (reading ``customer_segments_now``) removes exactly that
customer from the old segment's audience and adds it to the new one, and sends nothing else. A live run
that changes no membership leaves nothing to send, and in the DAG its ``announce`` task is skipped, so
no live-segments Asset event (and no audience sync) follows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.audiences import Audience, hash_identifier, sync_audience
from include.segmentation.audiences.membership import SOURCES
from include.segmentation.model.persisted import PersistedModel
from include.segmentation.pipeline.live import assign_collected, collect_ids, live_assign
from include.segmentation.pipeline.publish import published_model
from include.segmentation.store import bulk_insert, get_engine, read_sql
from tests.integration.pipeline.test_live_assignment import CUTOFF, DAG_FILE, END, NOW, _publish


def _warehouse(generated_warehouse, flavour: str) -> str:
    return generated_warehouse(flavour, customers=1200, days=400, end_date=END, seed=7, prepare=_publish)


@pytest.fixture(params=["sqlite", "postgres"])
def published(request: pytest.FixtureRequest, generated_warehouse) -> Iterator[sa.Engine]:
    """A warehouse of this test's own, 1,200 generated customers, with the daily snapshot of S published."""
    engine = get_engine(_warehouse(generated_warehouse, request.param))
    yield engine
    engine.dispose()


def _frame(engine: sa.Engine, sql: str, **params: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_sql(conn, sql, params)


def _orders(customer: str, profile: str) -> pd.DataFrame:
    """Order lines after the cut-off (before NOW) that may move ``customer`` to another segment."""
    def line(n: int, hours: float, qty: int, price: float) -> dict[str, Any]:
        return {"order_id": f"move_{profile}_{n}", "line_number": 1, "customer_id": customer,
                "ordered_at": pd.Timestamp(CUTOFF + timedelta(hours=hours)), "product_id": "p1",
                "category": "books", "quantity": qty, "unit_price": price, "discount": 0.0}

    if profile == "big":
        return pd.DataFrame([line(1, 9, 12, 400.0)])
    return pd.DataFrame([line(n, 1 + n, 1, 15.0) for n in range(8)])  # "many": frequent small orders


def _consenting(engine: sa.Engine, limit: int = 60) -> pd.DataFrame:
    """Published, non-outlier customers with marketing consent and an e-mail (candidates to move)."""
    frame = _frame(
        engine,
        "SELECT s.customer_id, s.segment_id, c.email, c.phone, c.country, c.marketing_consent "
        "FROM segmentation.customer_segments s JOIN raw.customers c ON c.customer_id = s.customer_id "
        "WHERE c.email IS NOT NULL AND s.is_outlier = :no ORDER BY s.customer_id",
        no=False,
    )
    consent = frame["marketing_consent"].map(lambda v: v is True or v == 1)
    return frame[consent].head(limit)


def _find_move(engine: sa.Engine, model: PersistedModel) -> tuple[str, int, int, pd.DataFrame]:
    """A consenting customer and orders that the published model puts in another segment: tried in a
    transaction that is rolled back, with the live run's own functions (nothing is written)."""
    for row in _consenting(engine).itertuples():
        cid, old = str(row.customer_id), int(row.segment_id)
        for profile in ("big", "many"):
            orders = _orders(cid, profile)
            with engine.connect() as conn:
                trans = conn.begin()
                try:
                    bulk_insert(conn, "raw", "transactions", orders)
                    collect_ids(conn, CUTOFF, NOW, [cid])
                    assigned = assign_collected(conn, model, NOW)
                finally:
                    trans.rollback()
            new = int(assigned.loc[cid, "segment_id"])
            if new != old:
                return cid, old, new, orders
    raise AssertionError("no candidate customer moves segment with the tried activity")


def _hashes(engine: sa.Engine, customer: str, audience: Audience) -> set[tuple[str, str]]:
    """The (kind, hash) identifiers the audience holds for one customer (consent + valid identifiers)."""
    c = _frame(engine, "SELECT email, phone, country FROM raw.customers WHERE customer_id = :c", c=customer).iloc[0]
    out = set()
    for kind, raw in (("email", c["email"]), ("phone", c["phone"])):
        if kind in audience.identifiers and isinstance(raw, str) and raw:
            hashed = hash_identifier(kind, raw, c["country"], audience.platform)
            if hashed:
                out.add((kind, hashed))
    return out


def _file_rows(folder: Path, audience: Audience, summary: dict[str, Any], op: str) -> set[tuple[str, str]]:
    """(kind, hash) rows of the file the run wrote for ``op``."""
    (path,) = (folder / audience.name).glob(f"*_{summary['run_id']}_{op}.csv")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {(k.lower(), v) for r in rows for k, v in r.items() if v}


def _sync_all(engine: sa.Engine, audiences: list[Audience], folder: Path) -> dict[str, dict[str, Any]]:
    return {a.name: sync_audience(engine, a, folder=folder, trigger="test") for a in audiences}


def test_live_change_is_synced_for_that_customer_only(published: sa.Engine, tmp_path: Path) -> None:
    model = published_model(published)
    assert model is not None
    audiences = [Audience(name=f"segment_{sid}", segments=(sid,), destination="file", folder=str(tmp_path))
                 for sid in model.segment_ids]
    first = _sync_all(published, audiences, tmp_path)
    assert all(s["status"] == "success" and s["removed"] == 0 for s in first.values())
    assert sum(s["added"] for s in first.values()) > 0 and all(s["source"] in SOURCES for s in first.values())

    cid, old, new, orders = _find_move(published, model)
    with published.begin() as conn:
        bulk_insert(conn, "raw", "transactions", orders)
    out = live_assign(published, NOW)
    assert out["status"] == "assigned", out["reason"]
    assert out["customers"] == 1 and out["changed_segment"] == 1 and out["changed_membership"] == 1

    second = _sync_all(published, audiences, tmp_path)
    by_segment = {a.segments[0]: a for a in audiences}
    moved = _hashes(published, cid, by_segment[new])
    assert moved and moved == _hashes(published, cid, by_segment[old])  # same file layout: same hashes
    for sid, audience in by_segment.items():
        s = second[audience.name]
        assert s["status"] == "success" and s["source"] == "customer_segments_now", (sid, s)
        adds, removes = _file_rows(tmp_path, audience, s, "add"), _file_rows(tmp_path, audience, s, "remove")
        if sid == old:
            assert (adds, removes, s["added"], s["removed"]) == (set(), moved, 0, len(moved))
        elif sid == new:
            assert (adds, removes, s["added"], s["removed"]) == (moved, set(), len(moved), 0)
        else:
            assert (adds, removes, s["added"], s["removed"]) == (set(), set(), 0, 0), sid
    state = _frame(published, "SELECT audience, id_type, hashed_id FROM segmentation.audience_members")
    holders = {a for a, k, h in state.itertuples(index=False) if (k, h) in moved}
    assert holders == {by_segment[new].name}

    # A later live run on the same data changes no membership: nothing to send.
    quiet = live_assign(published, NOW + timedelta(minutes=15))
    assert quiet["status"] == "assigned" and quiet["customers"] == 1 and quiet["changed_membership"] == 0
    third = _sync_all(published, audiences, tmp_path)
    assert all((s["added"], s["removed"], s["to_add"], s["to_remove"]) == (0, 0, 0, 0) for s in third.values())


def _conn_env(warehouse: str) -> str:
    url = sa.make_url(warehouse)
    return json.dumps({"conn_type": "sqlite", "host": url.database})


def _live_events(session_factory: Any) -> int:
    from airflow.models.asset import AssetEvent, AssetModel

    with session_factory() as session:
        return int(
            session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "segmentation.customer_segments_now").count()
        )


def test_the_dag_announces_only_a_membership_change(generated_warehouse, airflow_db, monkeypatch) -> None:
    """``dag.test()`` of segment_assignment: a run that moves a customer emits the live-segments Asset event
    (``announce`` succeeds); a later run on the same data changes nothing: ``announce`` skipped, no event."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session

    warehouse = _warehouse(generated_warehouse, "sqlite")
    engine = get_engine(warehouse)
    try:
        model = published_model(engine)
        assert model is not None
        _, _, _, orders = _find_move(engine, model)
        with engine.begin() as conn:
            bulk_insert(conn, "raw", "transactions", orders)
    finally:
        engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", _conn_env(warehouse))
    dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("segment_assignment")
    before = _live_events(create_session)

    run = dag.test(logical_date=pendulum.instance(NOW))
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()} == {"assign": "success",
                                                                            "announce": "success"}
    after_change = _live_events(create_session)
    assert after_change == before + 1

    quiet = dag.test(logical_date=pendulum.instance(NOW + timedelta(minutes=15)))
    assert {ti.task_id: str(ti.state) for ti in quiet.get_task_instances()} == {"assign": "success",
                                                                              "announce": "skipped"}
    assert _live_events(create_session) == after_change
