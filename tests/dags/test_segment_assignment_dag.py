"""The segment_assignment DAG: every 15 minutes, one run at a time, no catch-up; assign, then announce the
live-segments Asset (what schedules audience_sync) only when a membership changed.

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
    assert sorted(dag.task_ids) == ["announce", "assign"]
    for task_id in ("assign", "announce"):
        task = dag.get_task(task_id)
        assert task.retries >= 1 and task.execution_timeout is not None
    assert dag.get_task("announce").upstream_task_ids == {"assign"}


def test_announce_has_the_live_segments_outlet(dag) -> None:
    """Only ``announce`` updates an Asset: the one audience_sync is scheduled on besides the daily one."""
    from include.segmentation.orchestration.assets import LIVE_SEGMENTS

    outlets = {t.task_id: [(o.name, o.uri) for o in t.outlets] for t in dag.tasks}
    assert outlets == {"assign": [], "announce": [(LIVE_SEGMENTS.name, LIVE_SEGMENTS.uri)]}
    assert LIVE_SEGMENTS.name == "segmentation.customer_segments_now"
    assert "audience_sync" in (dag.doc_md or "")


def test_announce_skips_when_no_membership_changed(dag) -> None:
    """No changed membership: skipped, so no Asset event and no audience sync; a change: it runs."""
    from airflow.sdk.exceptions import AirflowSkipException

    announce = dag.get_task("announce").python_callable
    with pytest.raises(AirflowSkipException):
        announce({"status": "assigned", "customers": 3, "changed_segment": 0, "changed_membership": 0})
    assert announce({"status": "assigned", "customers": 3, "changed_segment": 1, "changed_membership": 1}) is None
