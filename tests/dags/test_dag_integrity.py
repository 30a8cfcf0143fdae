"""The customer_segmentation DAG has the expected tasks, order, settings and parameters.

Rules every DAG follows (imports, owner, retries, docs) are in test_dag_policy.py.
"""

from __future__ import annotations

import pytest

TASKS = [
    "start_run", "validate_raw", "extract", "build_features", "wait_for_earlier_snapshots",
    "cluster", "explain", "quality_gate", "publish", "report", "announce",
]


@pytest.fixture(scope="module")
def dag(get_dag):
    return get_dag("customer_segmentation")


def test_the_bag_holds_exactly_the_project_dags(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"customer_segmentation", "audience_sync", "segment_assignment"}


def test_customer_segmentation_shape(dag) -> None:
    assert sorted(dag.task_ids) == sorted(TASKS)
    assert dag.catchup is False
    assert {"segmentation", "daily"} <= set(dag.tags)
    assert dag.doc_md and "Snapshot date" in dag.doc_md
    assert "Cron" in type(dag.timetable).__name__
    upstream = {t: set(dag.get_task(t).upstream_task_ids) for t in dag.task_ids}
    assert upstream["extract"] >= {"validate_raw", "start_run"}
    assert "extract" in upstream["build_features"]
    assert {"build_features", "wait_for_earlier_snapshots"} <= upstream["cluster"]
    assert "cluster" in upstream["explain"]
    assert "explain" in upstream["quality_gate"]
    assert "quality_gate" in upstream["publish"] and "publish" in upstream["report"]
    # Every task runs after start_run, and report is the only end.
    assert all("start_run" in dag.get_task(t).get_flat_relative_ids(upstream=True) for t in TASKS[1:])
    assert sorted(t.task_id for t in dag.leaves) == ["announce", "report"]
    assert "publish" in upstream["announce"]
    assert not dag.get_task("publish").outlets  # only announce emits, and only for the newest snapshot
    assert [o.name for o in dag.get_task("announce").outlets] == ["segmentation.customer_segments"]
    for tid in ("start_run", "extract", "build_features", "cluster", "explain", "publish"):
        assert dag.get_task(tid).retries >= 1, tid
    assert dag.get_task("validate_raw").retries == 0 and dag.get_task("quality_gate").retries == 0
    assert all(dag.get_task(t).execution_timeout is not None for t in dag.task_ids)


def test_params_are_validated(dag) -> None:
    params = dag.params
    assert params["window_days"] == 365 and params["k_min"] == 3 and params["k_max"] == 10
    assert {"algorithm", "min_silhouette", "min_segment_share", "random_seed"} <= set(params.keys())
    with pytest.raises(Exception, match="minimum|less than"):
        params.get_param("window_days").resolve(0)
    with pytest.raises(Exception, match="enum|not one of"):
        params.get_param("algorithm").resolve("spectral")
    assert params.get_param("k_max").resolve(8) == 8
