"""Only a run that changes ``customer_segments`` emits the published-segments Asset event.

``dag.test()`` runs the newest date, then an older date (a backfill): the older run publishes its
history rows but leaves ``customer_segments`` alone, so its ``announce`` task is skipped and no
Asset event (hence no ``audience_sync`` run) follows it.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pendulum
import pytest
import sqlalchemy as sa

from tests.airflow_env import warehouse_conn_env

DAG_FILE = Path(__file__).resolve().parents[3] / "dags" / "customer_segmentation.py"
END = date(2024, 6, 30)
NEWEST = END + timedelta(days=1)
OLDER = END - timedelta(days=2)


def _run(dag, snapshot: date):
    dr = dag.test(logical_date=pendulum.datetime(snapshot.year, snapshot.month, snapshot.day, tz="UTC"))
    return dr, {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _asset_events(run_id: str) -> list:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            sa.select(AssetEvent).where(
                AssetEvent.source_dag_id == "customer_segmentation", AssetEvent.source_run_id == run_id
            )
        ).all()
        return [(e.source_task_id, e.asset.uri) for e in rows]


@pytest.mark.slow
def test_only_the_newest_snapshot_emits_the_asset_event(generated_warehouse, airflow_db, monkeypatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    warehouse = generated_warehouse("sqlite", customers=5000, days=730, end_date=END, seed=42)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse_conn_env(warehouse))
    dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("customer_segmentation")

    newest, states = _run(dag, NEWEST)
    assert str(newest.state) == "success", states
    assert states["publish"] == "success" and states["announce"] == "success"
    assert _asset_events(newest.run_id) == [("announce", "warehouse://segmentation/customer_segments")]

    older, states = _run(dag, OLDER)  # a backfilled older date: history only, customer_segments unchanged
    assert str(older.state) == "success", states
    assert states["publish"] == "success" and states["announce"] == "skipped"
    assert _asset_events(older.run_id) == []
