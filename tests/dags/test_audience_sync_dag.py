"""The audience_sync DAG: structure, schedule on the published- or live-segments Asset, params, and a real run.

Rules every DAG follows (parse-time imports, owner, retries, docs) are in test_dag_policy.py.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text


@pytest.fixture(scope="module")
def dag(get_dag):
    return get_dag("audience_sync")


def test_structure_schedule_and_params(dag) -> None:
    assert dag is not None
    condition = dag.timetable.asset_condition
    assets = list(condition.objects)
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    # Either Asset triggers a run: a daily publish, or a live assignment that changed a membership.
    assert type(condition).__name__ == "AssetAny"
    assert [(a.name, a.uri) for a in assets] == [
        ("segmentation.customer_segments", "warehouse://segmentation/customer_segments"),
        ("segmentation.customer_segments_now", "warehouse://segmentation/customer_segments_now"),
    ]
    assert set(dag.params.keys()) == {"audiences", "full_resend", "dry_run", "allow_mass_removal"}
    assert dag.params["full_resend"] is False and dag.params["dry_run"] is False and dag.params["audiences"] == ""
    assert {"segmentation", "audiences"} <= set(dag.tags)
    assert dag.max_active_runs == 1
    assert "audience" in (dag.doc_md or "").lower()
    assert set(dag.task_dict) == {"plan_audiences", "sync", "report"}
    assert all(t.retries >= 1 and t.execution_timeout is not None for t in dag.tasks)


def _seed_warehouse(url: str, publish: bool = True) -> None:
    from include.segmentation.sources import create_source_contract
    from include.segmentation.store import bulk_insert, ensure_segmentation_tables, get_engine

    engine = get_engine(url)
    create_source_contract(engine)
    ensure_segmentation_tables(engine)
    customers = pd.DataFrame([
        {"customer_id": "a", "created_at": pd.Timestamp("2024-01-01", tz="UTC"), "country": "US",
         "email": "Ann@Example.com", "phone": "650 555 0101", "marketing_consent": True},
        {"customer_id": "b", "created_at": pd.Timestamp("2024-01-01", tz="UTC"), "country": "US",
         "email": "bo@example.com", "phone": None, "marketing_consent": False},
    ])
    segments = pd.DataFrame([
        {"customer_id": c, "snapshot_date": date(2026, 1, 31), "segment_id": 0, "segment_name": "Loyal",
         "distance": 0.1, "confidence": 0.9, "is_outlier": False, "run_id": "r1"} for c in ("a", "b")
    ])
    with engine.begin() as conn:
        bulk_insert(conn, "raw", "customers", customers)
        if publish:
            bulk_insert(conn, "segmentation", "customer_segments", segments)
    engine.dispose()


def test_dag_run_syncs_a_file_audience(dag, airflow_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "warehouse.db"
    url = f"sqlite:///{db}"
    _seed_warehouse(url)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    monkeypatch.setenv("WAREHOUSE_URL", url)
    folder = tmp_path / "out"
    config = tmp_path / "audiences.json"
    config.write_text(json.dumps([
        {"name": "loyal_file", "segments": ["Loyal"], "destination": "file", "folder": str(folder)},
        {"name": "other_file", "segments": [0], "destination": "file", "folder": str(folder), "enabled": False},
    ]))
    monkeypatch.setenv("SEGMENTATION_AUDIENCES_FILE", str(config))

    dag_run = dag.test(run_conf={"audiences": "", "dry_run": False})
    assert str(dag_run.state) in ("success", "DagRunState.SUCCESS")

    files = sorted(p.name for p in (folder / "loyal_file").iterdir())
    assert len(files) == 2 and files[0].endswith("_add.csv") and files[1].endswith("_remove.csv")
    assert not (folder / "other_file").exists(), "disabled audiences are skipped unless named"
    from include.segmentation.store import get_engine

    engine = get_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT audience, status, eligible, added, trigger FROM segmentation.audience_sync_runs")).all()
    engine.dispose()
    assert len(rows) == 1
    audience, status, eligible, added, trigger = rows[0]
    assert (audience, status, eligible, added) == ("loyal_file", "success", 1, 2)
    assert trigger == dag_run.run_id


def test_dag_run_skips_when_nothing_is_published(dag, airflow_db, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "warehouse.db"
    url = f"sqlite:///{db}"
    _seed_warehouse(url, publish=False)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    monkeypatch.setenv("WAREHOUSE_URL", url)
    config = tmp_path / "audiences.json"
    config.write_text(json.dumps([{"name": "loyal_file", "segments": ["Loyal"], "folder": str(tmp_path / "out")}]))
    monkeypatch.setenv("SEGMENTATION_AUDIENCES_FILE", str(config))

    dag_run = dag.test()
    assert str(dag_run.state) in ("success", "DagRunState.SUCCESS")
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert "skipped" in states["sync"]
    assert not (tmp_path / "out").exists()
