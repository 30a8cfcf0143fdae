"""``dag.test()`` runs customer_segmentation end to end on PostgreSQL and SQLite.

On the generator's default data (5,000 customers, 730 days) the published segments recover the
planted customer types (adjusted Rand index >= 0.8), and the task that stops a bad run is named.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pendulum
import pytest
from sklearn.metrics import adjusted_rand_score

from include.segmentation.store import get_engine, read_sql
from tests.airflow_env import warehouse_conn_env

DAG_FILE = Path(__file__).resolve().parents[3] / "dags" / "customer_segmentation.py"
END = date(2024, 6, 30)
S = END + timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgres"])
def flavour(request: pytest.FixtureRequest) -> str:
    """Each test runs on both warehouse flavours."""
    return request.param


def _run_dag(warehouse: str, snapshot: date, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse_conn_env(warehouse))
    dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("customer_segmentation")
    dr = dag.test(logical_date=pendulum.datetime(snapshot.year, snapshot.month, snapshot.day, tz="UTC"))
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    return str(dr.state), states


def _read(warehouse: str, *queries: str) -> list[pd.DataFrame]:
    """The results of ``queries`` on the warehouse, through an engine of their own."""
    engine = get_engine(warehouse)
    try:
        with engine.connect() as conn:
            return [read_sql(conn, sql) for sql in queries]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_dag_publishes_segments_that_recover_planted_types(
    flavour: str, generated_warehouse: Callable[..., str], airflow_db, monkeypatch
) -> None:
    warehouse = generated_warehouse(flavour, customers=5000, days=730, end_date=END, seed=42)
    state, tasks = _run_dag(warehouse, S, monkeypatch)
    assert state == "success", tasks
    assert set(tasks.values()) == {"success"}
    got, runs, quality = _read(
        warehouse,
        "SELECT s.customer_id, s.segment_id, p.planted_type FROM segmentation.customer_segments s "
        "JOIN evaluation.planted_types p ON p.customer_id = s.customer_id",
        "SELECT * FROM segmentation.segment_runs",
        "SELECT COUNT(*) AS n FROM segmentation.quality_results",
    )
    run, quality = runs.iloc[0], quality["n"].iloc[0]
    ari = adjusted_rand_score(got["planted_type"], got["segment_id"])
    print(f"ARI={ari:.3f} k={run['k']} silhouette={float(run['silhouette']):.3f} n={len(got)}")
    assert ari >= 0.8
    assert run["status"] == "published" and str(run["snapshot_date"])[:10] == S.isoformat()
    assert quality > 0  # every check's result is stored for the run


def test_dag_stops_at_validation_and_publishes_nothing(
    flavour: str, generated_warehouse: Callable[..., str], airflow_db, monkeypatch
) -> None:
    warehouse = generated_warehouse(flavour, customers=800, days=400, end_date=END, seed=5)
    # The day before S has no data: the raw-window suite must stop the run before anything is published.
    state, tasks = _run_dag(warehouse, S + timedelta(days=1), monkeypatch)
    assert state == "failed"
    assert tasks["start_run"] == "success" and tasks["validate_raw"] == "failed"
    assert tasks["publish"] == "upstream_failed" and tasks["extract"] == "upstream_failed"
    runs, published = _read(
        warehouse,
        "SELECT status, message FROM segmentation.segment_runs",
        "SELECT COUNT(*) AS n FROM segmentation.customer_segments",
    )
    published = published["n"].iloc[0]
    assert runs["status"].tolist() == ["failed_validation"]
    assert "last_day_not_empty" in runs["message"].iloc[0]
    assert published == 0


@pytest.mark.parametrize(
    "end", [date(2011, 12, 9), date(2024, 8, 31)], ids=["years-before-old-start", "after-old-start"]
)
def test_dag_runs_any_date_the_data_supports(
    end: date, generated_warehouse: Callable[..., str], airflow_db, monkeypatch
) -> None:
    """A historical date runs every task (it used to create a run with no task instances)."""
    warehouse = generated_warehouse("sqlite", customers=600, days=400, end_date=end, seed=11)
    snapshot = end + timedelta(days=1)
    state, tasks = _run_dag(warehouse, snapshot, monkeypatch)
    assert tasks, "the run has no task instances"
    assert state == "success", tasks
    assert tasks["publish"] == "success"
    (runs,) = _read(warehouse, "SELECT status, snapshot_date FROM segmentation.segment_runs")
    assert runs["status"].tolist() == ["published"]
    assert str(runs["snapshot_date"].iloc[0])[:10] == snapshot.isoformat()
