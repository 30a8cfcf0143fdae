"""
### audience_sync — keep ad-platform audiences in step with the published segments

Runs whenever the `customer_segmentation` DAG publishes a snapshot (Asset
`segmentation.customer_segments`) or a `segment_assignment` live run changes a customer's segment
(Asset `segmentation.customer_segments_now`), and can be triggered by hand. Membership is read from
`customer_segments_now` (each customer's most recent assignment, live or daily) when that view exists,
so after a live run only the customers whose membership changed are sent.

For each audience defined in `include/segmentation/audiences/config.py` (or the JSON file named by
`SEGMENTATION_AUDIENCES_FILE`) one mapped task:

1. reads the current segments (`customer_segments_now`, else the latest snapshot) and `raw.customers`, keeps customers with marketing consent,
   normalises and SHA-256-hashes their e-mails / phones by the destination's rules;
2. diffs them against what the destination accepted before (`segmentation.audience_members`);
3. sends only additions (and removals in *mirror* mode) to the destination — `file` (hashed upload
   files under `artifacts/audiences/`), `meta` (Custom Audience users endpoint) or `google_ads`
   (Customer Match via OfflineUserDataJobService) — with retries and backoff;
4. records the run in `segmentation.audience_sync_runs`.

A failed or interrupted task can simply be retried or re-run: only unconfirmed changes are sent.
Credentials come from the Airflow connections `meta_ads` / `google_ads` (see docs/audience_sync.md).
Clear-text identifiers never leave the warehouse and never reach logs or XCom.

**Params** (manual runs): `audiences` (comma-separated names; empty = all enabled),
`full_resend` (re-send every member), `dry_run` (compute and record counts, send nothing),
`allow_mass_removal` (override the per-audience removal safety limit).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from include.segmentation.orchestration.assets import LIVE_SEGMENTS, PUBLISHED_SEGMENTS


@dag(
    dag_id="audience_sync",
    description="Push consented, hashed customers of the published segments to ad platforms and files",
    schedule=(PUBLISHED_SEGMENTS | LIVE_SEGMENTS),  # a daily publish or a live run that changed a membership
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),  # scheduled by the Assets; any date can be triggered
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["segmentation", "audiences", "ads"],
    default_args={
        "owner": "segmentation",
        "retries": 2,
        "retry_delay": pendulum.duration(minutes=5),
        "retry_exponential_backoff": True,
        "max_retry_delay": pendulum.duration(minutes=30),
        "execution_timeout": pendulum.duration(hours=3),
    },
    params={
        "audiences": Param("", type="string", title="Audiences",
                           description="Comma-separated audience names; empty = every enabled audience"),
        "full_resend": Param(False, type="boolean", title="Full re-send",
                             description="Send every current member again, not only the changes"),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Compute and record the counts; send nothing"),
        "allow_mass_removal": Param(False, type="boolean", title="Allow mass removal",
                                    description="Override the per-audience max_removal_fraction safety limit"),
    },
)
def audience_sync():
    @task
    def plan_audiences() -> list[dict]:
        """Which audiences this run syncs (names only, for XCom)."""
        from include.segmentation.audiences import load_audiences, select_audiences

        params = get_current_context()["params"]
        chosen = select_audiences(load_audiences(), params.get("audiences") or None)
        return [{"name": a.name, "destination": a.destination} for a in chosen]

    @task(map_index_template="{{ audience_name }}")
    def sync(audience: dict) -> dict:
        """Sync one audience; returns its counts (no identifiers)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from include.segmentation.audiences import NothingPublished, load_audiences, select_audiences, sync_audience
        from include.segmentation.orchestration.connection import audience_credentials, warehouse_engine

        context = get_current_context()
        # Airflow documents setting extra keys for map_index_template; its Context TypedDict has no such key.
        context["audience_name"] = audience["name"]  # type: ignore[typeddict-unknown-key]
        params = context["params"]
        (aud,) = select_audiences(load_audiences(), [audience["name"]])
        engine = warehouse_engine()
        try:
            return sync_audience(
                engine,
                aud,
                credentials=audience_credentials(aud),
                full_resend=bool(params.get("full_resend")),
                dry_run=bool(params.get("dry_run")),
                allow_mass_removal=bool(params.get("allow_mass_removal")),
                trigger=str(context["run_id"]),
            )
        except NothingPublished as exc:
            raise AirflowSkipException(str(exc)) from None
        finally:
            engine.dispose()

    @task
    def report(results: list[dict]) -> dict:
        """Totals over all audiences of this run (runs only when every audience succeeded, so a
        failed audience fails the DAG run; its own task log and history row say why)."""
        from include.segmentation.audiences import summarize

        return summarize(r for r in results if isinstance(r, dict))

    report(sync.expand(audience=plan_audiences()))


audience_sync()
