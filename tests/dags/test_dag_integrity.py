"""Every DAG imports cleanly, is thin at parse time, and has the expected shape and settings."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
ALLOWED_TOP_LEVEL = {"__future__", "datetime", "pendulum", "airflow.sdk", "typing", "json", "os", "logging"}
HEAVY = ("pandas", "numpy", "sklearn", "great_expectations", "sqlalchemy", "psycopg2", "include")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "customer_segmentation" in dagbag.dags


@pytest.mark.parametrize("path", sorted(DAGS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_import_only_light_modules_at_top_level(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name in ALLOWED_TOP_LEVEL or name.split(".")[0] in {"__future__", "datetime", "pendulum"}, (
                f"{path.name} imports {name} at top level"
            )
            assert not name.startswith(HEAVY), name
    assert ast.get_docstring(tree), f"{path.name} needs a module docstring (it is the DAG's doc_md)"


def test_parsing_does_not_import_heavy_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "heavy = [m for m in ('pandas', 'sklearn', 'great_expectations', 'include.segmentation.pipeline.stages') if m in sys.modules]; "
        "print('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(DAGS_DIR / "customer_segmentation.py")],
        capture_output=True, text=True, env=os.environ.copy(), check=True,
    )
    assert "HEAVY=\n" in out.stdout or out.stdout.strip().endswith("HEAVY="), out.stdout[-500:]


def test_customer_segmentation_shape(dagbag) -> None:
    dag = dagbag.dags["customer_segmentation"]
    assert set(dag.task_ids) == {
        "start_run", "validate_raw", "extract", "build_features", "cluster", "quality_gate", "publish", "report",
        "wait_for_earlier_snapshots",
    }
    assert dag.catchup is False
    assert {"segmentation", "daily"} <= set(dag.tags)
    assert dag.doc_md and "Snapshot date" in dag.doc_md
    assert "CronTriggerTimetable" in type(dag.timetable).__name__ or "Cron" in type(dag.timetable).__name__
    order = {t: {u for u in dag.get_task(t).upstream_task_ids} for t in dag.task_ids}
    assert order["extract"] >= {"validate_raw", "start_run"}
    assert "extract" in order["build_features"] and "cluster" in order["quality_gate"]
    assert "wait_for_earlier_snapshots" in order["cluster"]
    assert "quality_gate" in order["publish"] and "publish" in order["report"]
    publish = dag.get_task("publish")
    assert [o.name for o in publish.outlets] == ["segmentation.customer_segments"]
    for tid in ("start_run", "extract", "build_features", "cluster", "publish"):
        assert dag.get_task(tid).retries >= 1, tid
    assert dag.get_task("validate_raw").retries == 0 and dag.get_task("quality_gate").retries == 0
    assert all(dag.get_task(t).execution_timeout is not None for t in dag.task_ids)


def test_params_are_validated(dagbag) -> None:
    dag = dagbag.dags["customer_segmentation"]
    params = dag.params
    assert params["window_days"] == 365 and params["k_min"] == 3 and params["k_max"] == 10
    assert {"algorithm", "min_silhouette", "min_segment_share", "random_seed"} <= set(params.keys())
    with pytest.raises(Exception, match="minimum|less than"):
        params.get_param("window_days").resolve(0)
    with pytest.raises(Exception, match="enum|not one of"):
        params.get_param("algorithm").resolve("spectral")
    assert params.get_param("k_max").resolve(8) == 8
