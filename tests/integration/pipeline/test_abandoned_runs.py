"""A run whose process is gone never blocks later dates: it is closed as 'abandoned'.

A real process is killed (SIGKILL) in the middle of a run; its row stays 'running'. Once its
heartbeat is older than the staleness limit, the next date's sensor check
(``pending_earlier_runs``) closes it as 'abandoned', drops its staging tables and does not wait for
it, while a live earlier run (fresh heartbeat) is still waited for. A failed run drops its staging
tables too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.segmentation.pipeline import EmptyWindowError, run_pipeline, start_run
from include.segmentation.pipeline.run import STALE_AFTER, RunClosedError, guard, pending_earlier_runs, run_key
from include.segmentation.store import get_engine, read_sql
from include.segmentation.store.staging import run_staging_tables

ROOT = Path(__file__).resolve().parents[3]
END = date(2024, 6, 30)
S1 = END + timedelta(days=1)

CRASHING_RUN = """
import sys, time
from datetime import date
from include.segmentation.pipeline import extract_stage, start_run
from include.segmentation.store import get_engine
engine = get_engine(sys.argv[1])
run = start_run(engine, date.fromisoformat(sys.argv[2]))
extract_stage(engine, run)
print(run["run_id"], flush=True)
time.sleep(600)
"""


def _runs(engine: sa.Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        df = read_sql(conn, "SELECT run_id, status, message, snapshot_date FROM segmentation.segment_runs")
    return {r["run_id"]: r for r in df.to_dict("records")}


def _staging_of(engine: sa.Engine, run_id: str) -> list[str]:
    with engine.connect() as conn:
        return run_staging_tables(conn, run_key(run_id))


@pytest.mark.parametrize("flavour", ["postgres", "sqlite"])
def test_killed_run_is_closed_as_abandoned_and_blocks_no_later_date(
    flavour: str, generated_warehouse: Callable[..., str]
) -> None:
    url = generated_warehouse(flavour, customers=600, days=400, end_date=END, seed=3)
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_RUN, url, S1.isoformat()],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        crashed = proc.stdout.readline().strip()
        assert crashed.startswith("seg_"), proc.stderr.read() if proc.stderr else ""
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    engine = get_engine(url)
    try:
        assert _runs(engine)[crashed]["status"] == "running"
        assert _staging_of(engine, crashed), "the crashed run left staging tables"
        later = start_run(engine, S1 + timedelta(days=1))
        # Within the staleness limit the crashed run still looks alive: the later date waits.
        assert pending_earlier_runs(engine, later) == [S1.isoformat()]
        time.sleep(3.5)  # timestamps are stored to the second: 3.5 s is past a 2 s limit whatever the rounding
        # Past it (a short limit instead of waiting 30 minutes): closed, and nothing waits for it.
        assert pending_earlier_runs(engine, later, stale_after=timedelta(seconds=2)) == []
        row = _runs(engine)[crashed]
        assert row["status"] == "abandoned"
        assert "no sign of life" in row["message"]
        assert _staging_of(engine, crashed) == []
        assert _runs(engine)[later["run_id"]]["status"] == "running"  # the waiting run beat: not stale
        # A zombie of the abandoned run that comes back cannot go on (or publish).
        zombie = {"run_id": crashed, "snapshot_date": S1.isoformat(), "params": later["params"]}
        with pytest.raises(RunClosedError, match="abandoned"):
            guard(engine, zombie, "cluster", lambda: None)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_sensor_timeout_outlasts_the_staleness_limit(airflow_db) -> None:
    """The sensor and the staleness rule agree: a crashed earlier run is closed long before the
    next date's wait_for_earlier_snapshots times out."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / "customer_segmentation.py")).get_dag("customer_segmentation")
    sensor = dag.get_task("wait_for_earlier_snapshots")
    assert timedelta(seconds=sensor.timeout) >= 2 * STALE_AFTER


@pytest.mark.parametrize("warehouse_url", ["sqlite", "postgres"], indirect=True)
def test_failed_run_drops_its_staging_tables(engine: sa.Engine) -> None:
    """A run that cannot succeed (empty window) is 'failed' and leaves no stg_* table behind."""
    with pytest.raises(EmptyWindowError):
        run_pipeline(engine, S1, validate=False)
    (row,) = _runs(engine).values()
    assert row["status"] == "failed"
    assert _staging_of(engine, row["run_id"]) == []


@pytest.mark.parametrize("warehouse_url", ["sqlite", "postgres"], indirect=True)
def test_leftover_staging_of_long_closed_runs_is_swept(engine: sa.Engine) -> None:
    """A run that ended 'failed' after its retries ran out keeps no staging tables for long."""
    from datetime import datetime, timezone

    from include.segmentation.pipeline.run import close_abandoned
    from include.segmentation.store import ensure_published_tables
    from include.segmentation.store.run_log import upsert_run

    ensure_published_tables(engine)
    old = datetime.now(timezone.utc) - 2 * STALE_AFTER
    done, recent = "seg_20240701_aaaaaaaaaaaa", "seg_20240701_bbbbbbbbbbbb"
    with engine.begin() as conn:
        for run_id, finished in ((done, old), (recent, datetime.now(timezone.utc))):
            upsert_run(conn, {"run_id": run_id, "snapshot_date": S1, "status": "failed", "started_at": old,
                              "finished_at": finished}, merge=False)
            conn.exec_driver_sql(f"CREATE TABLE segmentation.stg_features_20240701_{run_key(run_id)} (x INTEGER)")
    close_abandoned(engine)
    assert _staging_of(engine, done) == []
    assert len(_staging_of(engine, recent)) == 1  # may still be retried: kept
