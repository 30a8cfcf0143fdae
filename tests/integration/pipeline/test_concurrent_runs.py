"""Two real runs of the same snapshot date never mix rows: publishing is serialised, a run publishes
only its own staging tables, and the later-started attempt wins.

Runs A (started first) and B (started later) of date S with different parameters go through every
stage interleaved in two threads on PostgreSQL; then they publish in parallel, A first or B first.
Whatever the order, B ends 'published', A ends 'superseded' with a message naming B, and every
published row of S carries B's run id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from include.segmentation.pipeline import (
    cluster_stage,
    explain_stage,
    extract_stage,
    features_stage,
    gate_stage,
    publish_stage,
    start_run,
)
from include.segmentation.pipeline.run import RunClosedError, run_key
from include.segmentation.store import get_engine, read_sql
from include.segmentation.store.schema import SNAPSHOT_TABLES

END = date(2024, 6, 30)
S = END + timedelta(days=1)


def _stage_all(engine: sa.Engine, run: dict, step: threading.Barrier) -> dict[str, Any]:
    """Every stage up to the gate; the two threads meet at ``step`` between stages (interleaving)."""
    extracted = extract_stage(engine, run)
    step.wait()
    featured = features_stage(engine, run, extracted)
    step.wait()
    clustered = cluster_stage(engine, run, featured)
    step.wait()
    explained = explain_stage(engine, run, clustered)
    gate = gate_stage(engine, run, clustered)
    step.wait()
    return {"clustered": clustered, "explained": explained, "gate": gate}


def _publish(engine: sa.Engine, run: dict, staged: dict) -> Any:
    try:
        return publish_stage(engine, run, staged["clustered"], staged["explained"], staged["gate"])
    except RunClosedError as exc:
        return exc


def _published_run_ids(engine: sa.Engine) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for table in [t.name for t in SNAPSHOT_TABLES.values()]:
            got = read_sql(conn, f"SELECT DISTINCT run_id FROM segmentation.{table} WHERE snapshot_date = :s", {"s": S})
            out[table] = set(got["run_id"])
        out["customer_segments"] = set(read_sql(conn, "SELECT DISTINCT run_id FROM segmentation.customer_segments")["run_id"])
    return out


@pytest.mark.parametrize("order", ["parallel", "older_first", "newer_first"])
def test_two_runs_of_one_date_publish_only_the_newer_attempt(
    order: str, generated_warehouse: Callable[..., str]
) -> None:
    engine = get_engine(generated_warehouse("postgres", customers=1000, days=400, end_date=END, seed=21))
    try:
        a = start_run(engine, S, {"random_seed": 1})
        time.sleep(1.1)  # started_at has second resolution: B is unambiguously the later attempt
        b = start_run(engine, S, {"random_seed": 2, "k_min": 3, "k_max": 3})
        step = threading.Barrier(2, timeout=600)
        staged: dict[str, dict] = {}
        errors: list[BaseException] = []

        def stage(run: dict) -> None:
            try:
                staged[run["run_id"]] = _stage_all(engine, run, step)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                step.abort()

        threads = [threading.Thread(target=stage, args=(r,)) for r in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors

        results: dict[str, Any] = {}
        if order == "parallel":
            go = threading.Barrier(2)

            def publish(run: dict) -> None:
                go.wait()
                results[run["run_id"]] = _publish(engine, run, staged[run["run_id"]])

            threads = [threading.Thread(target=publish, args=(r,)) for r in (a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            first, second = (a, b) if order == "older_first" else (b, a)
            results[first["run_id"]] = _publish(engine, first, staged[first["run_id"]])
            results[second["run_id"]] = _publish(engine, second, staged[second["run_id"]])

        assert not isinstance(results[b["run_id"]], Exception), results[b["run_id"]]
        with engine.connect() as conn:
            runs = read_sql(conn, "SELECT run_id, status, message FROM segmentation.segment_runs").set_index("run_id")
        assert runs.loc[b["run_id"], "status"] == "published"
        assert runs.loc[a["run_id"], "status"] == "superseded"
        assert b["run_id"] in runs.loc[a["run_id"], "message"]
        if order == "newer_first":
            assert isinstance(results[a["run_id"]], RunClosedError)
            assert "superseded" in str(results[a["run_id"]]) and b["run_id"] in str(results[a["run_id"]])

        published = _published_run_ids(engine)
        assert published["customer_segments_history"] == {b["run_id"]}
        assert published["customer_segments"] == {b["run_id"]}
        for table, ids in published.items():
            assert ids <= {b["run_id"]}, f"{table} holds rows of {ids - {b['run_id']}}"
        with engine.connect() as conn:
            left = read_sql(
                conn,
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'segmentation' "
                "AND table_name LIKE 'stg%'",
            )["table_name"].tolist()
        assert not [t for t in left if t.endswith(run_key(a["run_id"])) or t.endswith(run_key(b["run_id"]))], left
    finally:
        engine.dispose()
