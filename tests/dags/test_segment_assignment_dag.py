"""The segment_assignment DAG: every 15 minutes, one run at a time, no catch-up, one task.

Rules every DAG follows (parse-time imports, owner, retries, docs) are in test_dag_policy.py.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def dag(get_dag):
    return get_dag("segment_assignment")


def test_schedule_and_settings(dag) -> None:
    assert "Cron" in type(dag.timetable).__name__
    assert dag.timetable.expression == "*/15 * * * *" and str(dag.timetable.timezone) in ("UTC", "Timezone('UTC')")
    assert dag.catchup is False and dag.max_active_runs == 1
    assert {"segmentation", "live"} <= set(dag.tags)
    assert dag.doc_md and "customer_segments_now" in dag.doc_md and "Skipped" in dag.doc_md
    assert dag.task_ids == ["assign"]
    task = dag.get_task("assign")
    assert task.retries >= 1 and task.execution_timeout is not None
