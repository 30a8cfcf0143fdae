"""
### segment_assignment — live segments between daily runs

Every 15 minutes (and whenever triggered by hand), customers with activity since the current
daily snapshot's cut-off (new orders or returns, identified browsing events, sign-ups) get a
segment from the **published model** of that snapshot (`segmentation.segment_models`): their
features are computed up to the run's time with the daily definitions, and each is assigned to
the nearest centroid, with confidence and the outlier rule. Results go to
`segmentation.customer_segments_live` in one transaction (those customers' rows replaced);
`segmentation.customer_segments_now` shows every customer's most recent assignment (live when it
saw newer data than the daily snapshot, else daily).

It never re-clusters, never changes segment ids or names, and never writes a daily table. The run's
time (its logical date) bounds the data read, so re-running a run rewrites the same rows.

**Audience sync:** when the run changed at least one customer's audience membership (a new
customer, another segment or outlier flag than `customer_segments_now` showed), the `announce`
task emits the Asset `segmentation.customer_segments_now`, which triggers `audience_sync`; that run
sends only the customers whose membership changed (its diff against what each platform accepted),
batched by each platform's limits. No change: `announce` is skipped and no event is emitted.

**Skipped, not successful, when it cannot do anything:** nothing published yet, the current snapshot
has no stored model, a daily `publish` holds the publish lock at that moment (the next run uses the
new model), or no customer had activity; the task log says which, with counts.
Details: `docs/live-assignment.md`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from include.segmentation.orchestration.assets import LIVE_SEGMENTS


@dag(
    dag_id="segment_assignment",
    description="Every 15 minutes: assign customers with new activity to a segment of the published model",
    schedule=CronTriggerTimetable("*/15 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    default_args={
        "owner": "data-platform",
        "retries": 1,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(minutes=20),
    },
    tags=["segmentation", "customers", "live"],
    doc_md=__doc__,
)
def segment_assignment():
    @task
    def assign(**context) -> dict:
        """Assign customers with activity since the snapshot's cut-off, up to this run's time."""
        from airflow.sdk.exceptions import AirflowSkipException

        from include.segmentation.orchestration.tasks import logical_utc, run_stage
        from include.segmentation.pipeline.live import live_stage

        out = run_stage(live_stage, logical_utc(context).isoformat())
        if out["status"] != "assigned":
            raise AirflowSkipException(f"live assignment did nothing: {out['reason']}")
        return dict(out)

    @task(outlets=[LIVE_SEGMENTS])
    def announce(assigned: dict) -> None:
        """Emit the live-segments Asset event (so audience_sync runs) only when a membership changed;
        otherwise skipped: no event, no audience sync."""
        import logging

        from airflow.sdk.exceptions import AirflowSkipException

        changed = int(assigned.get("changed_membership") or 0)
        if changed <= 0:
            raise AirflowSkipException("no customer's segment or outlier flag changed: no Asset event")
        logging.getLogger("include.segmentation").info(
            "%d customer(s) changed audience membership: Asset %s updated", changed, LIVE_SEGMENTS.name)

    announce(assign())


segment_assignment()
