"""
### Customer segmentation (daily)

Every morning, and for any past day you backfill, fresh customer segments for every active
customer, published to the warehouse schema `segmentation` for SQL consumers and ad-platform syncs.

**Snapshot date.** A run's snapshot date S is the UTC date of its logical date. It reads only data
with timestamps before S 00:00 UTC, over a trailing window (default 365 days). The timetable is
`CronTriggerTimetable("0 2 * * *", timezone="UTC")`: the run for day S starts at S 02:00 UTC, once
the previous day is complete (Airflow 3's `@daily` has point intervals, so a cron trigger timetable
says what it means). `airflow dags test customer_segmentation 2011-12-10` segments customers as of
2011-12-10.

**Tasks** (the graph is the pipeline): `start_run` checks the parameters and registers the run in
`segmentation.segment_runs`; `validate_raw` runs the Great Expectations suites on the window (a
failed check stops the run, naming table, column and rule); `extract` aggregates the window inside
the warehouse (SQL GROUP BY, one row per customer); `build_features` computes the documented
features; `wait_for_earlier_snapshots` lets the earlier dates of a backfill publish first (segment
ids follow the previous snapshot); `cluster` chooses k by silhouette, fits k-means, keeps segment ids
stable and names segments; `explain` builds profiles, rules, drift and top products; `quality_gate`
refuses a weak model; `publish` replaces the snapshot atomically and updates `customer_segments`
only if S is the newest snapshot; `report` writes the self-contained HTML report (Browse → Segment
report). Tasks pass table names and small typed records through XCom, never data.

**Parameters** (trigger form, each with its help text): history window, fewest and most segments,
algorithm, minimum silhouette and segment share (the quality gate), random seed, outlier rule,
segment id match distance, data-quality overrides. Scheduled runs use the defaults.

**Backfills** from the UI (Trigger → Backfill) re-run any past days; re-running a date gives the
same tables, and an old date never replaces newer segments.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, PokeReturnValue, dag, task

from include.segmentation.orchestration.assets import PUBLISHED_SEGMENTS
from include.segmentation.orchestration.params import dag_params


def _run(stage: str, *args):
    """Run the pipeline stage ``stage`` on the warehouse connection (data errors fail without retry)."""
    from include.segmentation.orchestration.tasks import run_stage

    return run_stage(stage, *args)


def _on_failure(context) -> None:
    """The failure alert (an Airflow notifier, built here so parsing stays light); add provider
    notifiers beside it in ``on_failure_callback``, e.g. ``[_on_failure, SlackNotifier(...)]``."""
    from include.segmentation.orchestration.alerts import SegmentationFailureNotifier

    SegmentationFailureNotifier()(context)


@dag(
    dag_id="customer_segmentation",
    description="Daily customer segments from the warehouse: validate, featurise, cluster, explain, gate, publish",
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),  # any snapshot the data supports; catchup off
    catchup=False,
    max_active_runs=2,
    max_active_tasks=4,
    dagrun_timeout=timedelta(hours=3),
    default_args={
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=1),
        "on_failure_callback": [_on_failure],
    },
    tags=["segmentation", "customers", "daily"],
    params=dag_params(),
    doc_md=__doc__,
)
def customer_segmentation():
    @task
    def start_run(**context) -> dict:
        """Check the parameters and register the run; S is the UTC date of the logical date."""
        from include.segmentation.orchestration.tasks import logical_utc

        return _run("start_run", logical_utc(context).date(), dict(context["params"]))

    @task(retries=0)
    def validate_raw(run: dict) -> dict:
        """Great Expectations suites on the raw window; a failed check stops the run."""
        return _run("validate_stage", run)

    @task
    def extract(run: dict) -> dict:
        """Aggregate the window inside the warehouse: one row per customer."""
        return _run("extract_stage", run)

    @task
    def build_features(run: dict, extracted: dict) -> dict:
        """Compute and check the documented features."""
        return _run("features_stage", run, extracted)

    @task.sensor(poke_interval=15, timeout=7200, mode="reschedule", retries=0)
    def wait_for_earlier_snapshots(run: dict) -> PokeReturnValue:
        """Backfills: segment ids follow the previous snapshot, so earlier dates are clustered first."""
        import logging

        pending = _run("pending_earlier_runs", run)
        if pending:
            logging.getLogger("include.segmentation").info("waiting for earlier snapshots: %s", pending)
        return PokeReturnValue(is_done=not pending)

    @task(execution_timeout=timedelta(hours=2))
    def cluster(run: dict, featured: dict) -> dict:
        """Choose k, fit, keep segment ids stable and name the segments."""
        return _run("cluster_stage", run, featured)

    @task
    def explain(run: dict, clustered: dict) -> dict:
        """Profiles, rules, drift and transitions, top products."""
        return _run("explain_stage", run, clustered)

    @task(retries=0)
    def quality_gate(run: dict, clustered: dict) -> dict:
        """Refuse a weak model; check the staged output."""
        return _run("gate_stage", run, clustered)

    @task
    def publish(run: dict, clustered: dict, explained: dict, gate: dict) -> dict:
        """Publish the snapshot atomically; customer_segments follows the newest snapshot only."""
        return _run("publish_stage", run, clustered, explained, gate)

    @task(outlets=[PUBLISHED_SEGMENTS])
    def announce(published: dict) -> None:
        """Emit the published-segments Asset event only when customer_segments now shows this snapshot
        (a backfilled older date does not change it: skipped, so no event and no audience sync)."""
        from airflow.sdk.exceptions import AirflowSkipException

        if not published.get("current"):
            raise AirflowSkipException("customer_segments unchanged: an older snapshot, no Asset event")

    @task(retries=1)
    def report(run: dict, published: dict) -> str:
        """Write the self-contained HTML report (Browse → Segment report)."""
        return _run("report_stage", run, published)

    run = start_run()
    extracted = extract(run)
    validate_raw(run) >> extracted
    featured = build_features(run, extracted)
    clustered = cluster(run, featured)
    wait_for_earlier_snapshots(run) >> clustered
    explained = explain(run, clustered)
    gate = quality_gate(run, clustered)
    explained >> gate
    published = publish(run, clustered, explained, gate)
    report(run, published)
    announce(published)


customer_segmentation()
