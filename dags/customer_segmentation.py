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

**Tasks.** `start_run` registers the run in `segmentation.segment_runs`; `validate_raw` runs the
Great Expectations suites on the window (a failed check stops the run, naming table, column and
rule); `extract` aggregates the window inside the warehouse (SQL GROUP BY, one row per customer);
`build_features` computes the documented features; `wait_for_earlier_snapshots` lets the earlier dates
of a backfill publish first (segment ids follow the previous snapshot); `cluster` chooses k by silhouette, fits
k-means, keeps segment ids stable and names segments; `quality_gate` refuses a weak model;
`publish` replaces the snapshot atomically and updates `customer_segments` only if S is the newest
snapshot; `report` writes the self-contained HTML report (Browse → Segment report). Tasks pass table
names and small dicts through XCom, never data.

**Parameters** (trigger form): window days, k range, algorithm, minimum silhouette, minimum
segment share, random seed, outlier method. Scheduled runs use the defaults.

**Backfills** from the UI (Trigger → Backfill) re-run any past days; re-running a date gives the
same tables, and an old date never replaces newer segments.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronTriggerTimetable, Param, PokeReturnValue, dag, task

PUBLISHED_SEGMENTS = Asset(name="segmentation.customer_segments", uri="warehouse://segmentation/customer_segments")


def _engine():
    from include.segmentation.orchestration.connection import warehouse_engine

    return warehouse_engine()


def _fail_fast(exc: Exception) -> None:
    """Data and model problems are not transient: fail without retrying."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(str(exc)) from exc


def _on_failure(context) -> None:
    from include.segmentation.orchestration.alerts import notify_failure

    notify_failure(context)


@dag(
    dag_id="customer_segmentation",
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
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
        "on_failure_callback": _on_failure,
    },
    tags=["segmentation", "customers", "daily"],
    params={
        "window_days": Param(365, type="integer", minimum=1, maximum=3650, description="Trailing window in days"),
        "k_min": Param(3, type="integer", minimum=2, maximum=50, description="Smallest k tried"),
        "k_max": Param(10, type="integer", minimum=2, maximum=50, description="Largest k tried"),
        "algorithm": Param("auto", type="string", enum=["auto", "kmeans", "minibatch_kmeans"]),
        "min_silhouette": Param(0.2, type="number", minimum=-1, maximum=1, description="Quality gate"),
        "min_segment_share": Param(0.02, type="number", minimum=0, maximum=0.5, description="Quality gate"),
        "random_seed": Param(42, type="integer", minimum=0),
        "outlier_method": Param("distance", type="string", enum=["distance", "dbscan"]),
        "quality": Param(
            {},
            type="object",
            description="Data-quality overrides {check: severity | {key: value}}, see docs/data_quality.md",
        ),
    },
    doc_md=__doc__,
)
def customer_segmentation():
    @task
    def start_run(**context) -> dict:
        from include.segmentation.pipeline.stages import start_run as start

        logical = context.get("logical_date") or context["dag_run"].run_after
        snapshot = pendulum.instance(logical).in_timezone("UTC").date()
        try:
            return start(_engine(), snapshot, dict(context["params"]))
        except ValueError as exc:
            _fail_fast(exc)

    @task(retries=0)
    def validate_raw(run: dict) -> dict:
        from include.segmentation.pipeline.stages import validate_stage
        from include.segmentation.quality import DataQualityError

        try:
            return validate_stage(_engine(), run)
        except DataQualityError as exc:
            _fail_fast(exc)

    @task
    def extract(run: dict) -> dict:
        from include.segmentation.pipeline.stages import EmptyWindowError, extract_stage

        try:
            return extract_stage(_engine(), run)
        except EmptyWindowError as exc:
            _fail_fast(exc)

    @task
    def build_features(run: dict, extracted: dict) -> dict:
        from include.segmentation.pipeline.stages import features_stage
        from include.segmentation.quality import DataQualityError

        try:
            return features_stage(_engine(), run, extracted)
        except DataQualityError as exc:
            _fail_fast(exc)

    @task.sensor(poke_interval=15, timeout=7200, mode="reschedule", retries=0)
    def wait_for_earlier_snapshots(run: dict) -> PokeReturnValue:
        """Backfills: segment ids follow the previous snapshot, so earlier dates are clustered first."""
        from include.segmentation.pipeline.stages import pending_earlier_runs

        pending = pending_earlier_runs(_engine(), run)
        if pending:
            import logging

            logging.getLogger("include.segmentation").info("waiting for earlier snapshots: %s", pending)
        return PokeReturnValue(is_done=not pending)

    @task(execution_timeout=timedelta(hours=2))
    def cluster(run: dict, features: dict) -> dict:
        from include.segmentation.model import ClusteringError
        from include.segmentation.pipeline.stages import cluster_stage

        try:
            return cluster_stage(_engine(), run, features)
        except ClusteringError as exc:
            _fail_fast(exc)

    @task(retries=0)
    def quality_gate(run: dict, clustered: dict) -> dict:
        from include.segmentation.pipeline.stages import ModelRejectedError, gate_stage

        try:
            return gate_stage(_engine(), run, clustered)
        except ModelRejectedError as exc:
            _fail_fast(exc)

    @task(outlets=[PUBLISHED_SEGMENTS])
    def publish(run: dict, clustered: dict, gate: dict) -> dict:
        from include.segmentation.pipeline.stages import publish_stage

        return publish_stage(_engine(), run, clustered)

    @task(retries=1)
    def report(run: dict, published: dict) -> str:
        import logging
        from datetime import date

        from include.segmentation.explain import render_report

        path = render_report(_engine(), date.fromisoformat(run["snapshot_date"]))
        logging.getLogger("include.segmentation").info("segment report: %s", path)
        return str(path)

    run = start_run()
    checked = validate_raw(run)
    extracted = extract(run)
    checked >> extracted
    features = build_features(run, extracted)
    clustered = cluster(run, features)
    wait_for_earlier_snapshots(run) >> clustered
    gate = quality_gate(run, clustered)
    published = publish(run, clustered, gate)
    report(run, published)


customer_segmentation()
