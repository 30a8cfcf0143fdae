"""A run's life: register it, guard each stage, and run every stage in order without Airflow."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import Engine

from include.segmentation.errors import PermanentError
from include.segmentation.params import resolve_params
from include.segmentation.pipeline.types import RunContext
from include.segmentation.quality import DataQualityError
from include.segmentation.store import ensure_published_tables, mark_run, read_sql, upsert_run
from include.segmentation.store.run_log import LIVE_STATUSES, close_abandoned_runs, get_run, heartbeat
from include.segmentation.store.staging import drop_run_staging, staging_tables

log = logging.getLogger("include.segmentation")

T = TypeVar("T")

# A running run beats every HEARTBEAT_SECONDS while a stage works (and its sensor beats while it
# waits); a 'running' run with no beat for STALE_AFTER has lost its process and is closed as
# 'abandoned'. STALE_AFTER covers Airflow's gaps between tasks (queueing, retry delays) and is well
# inside the 2-hour timeout of wait_for_earlier_snapshots, so a crashed run never fails a later date.
HEARTBEAT_SECONDS = 60.0
STALE_AFTER = timedelta(minutes=30)


class EmptyWindowError(PermanentError, ValueError):
    """No customer activity in the run's window: there is nothing to segment."""


class ModelRejectedError(PermanentError, RuntimeError):
    """The quality gate refused the model; the run is recorded as rejected."""


class RunClosedError(PermanentError, RuntimeError):
    """The run was already closed (superseded by a newer attempt, abandoned, ...): it must not go on."""


def make_run_id(snapshot_date: date) -> str:
    """A new id for every attempt, so a failed re-run of a published date never rewrites its record.

    Published rows carry the id of the attempt that published them (their lineage); their content
    is the same whichever attempt publishes a date with the same data and parameters.
    """
    return f"seg_{snapshot_date:%Y%m%d}_{uuid.uuid4().hex[:12]}"


def snapshot_of(run: RunContext) -> date:
    """The run's snapshot date S."""
    return date.fromisoformat(run["snapshot_date"])


def staging_key(run: RunContext) -> str:
    """The part of the run id that names the run's own staging tables."""
    return run["run_id"].rsplit("_", 1)[-1]


def run_key(run_id: str) -> str:
    """The staging key of a run id (``seg_<S>_<key>``)."""
    return run_id.rsplit("_", 1)[-1]


def drop_run_tables(engine: Engine, run_id: str) -> None:
    """Drop a closed run's staging tables (best effort: a failure here must not hide the run's own error)."""
    try:
        dropped = drop_run_staging(engine, run_key(run_id))
        if dropped:
            log.info("run %s: dropped staging tables %s", run_id, ", ".join(dropped))
    except Exception as exc:  # noqa: BLE001
        log.warning("run %s: could not drop its staging tables: %s", run_id, exc)


def _beat(engine: Engine, run_id: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            heartbeat(engine, run_id)
        except Exception as exc:  # noqa: BLE001 - a missed beat is not the stage's failure
            log.warning("run %s: heartbeat failed: %s", run_id, exc)


def _alive(engine: Engine, run_id: str) -> bool:
    """Beat the run's heartbeat; False when the run is closed. A parallel task of the same run may be
    rewriting its row at that moment (``mark_run``), so a miss is checked once more."""
    if heartbeat(engine, run_id):
        return True
    row = get_run(engine, run_id)
    return bool(row and row["status"] in LIVE_STATUSES and heartbeat(engine, run_id))


def guard(engine: Engine, run: RunContext, stage: str, fn: Callable[[], T]) -> T:
    """Run a stage while beating the run's heartbeat; an unexpected error marks the run failed
    (expected ones mark themselves). A run that was closed meanwhile (abandoned, superseded) stops
    here. An error no retry can fix also drops the run's staging tables."""
    run_id = run["run_id"]
    if not _alive(engine, run_id):
        row = get_run(engine, run_id)
        status = row["status"] if row else "unknown"
        raise RunClosedError(
            f"{stage}: run {run_id} is already {status}"
            + (f" ({row['message']})" if row and row.get("message") else "")
            + "; it stops here"
        )
    stop = threading.Event()
    beater = threading.Thread(target=_beat, args=(engine, run_id, stop), name=f"heartbeat-{run_id}", daemon=True)
    beater.start()
    try:
        return fn()
    except ModelRejectedError:  # marked 'rejected' where it was raised
        drop_run_tables(engine, run_id)
        raise
    except RunClosedError:
        raise
    except Exception as exc:
        status = "failed_validation" if isinstance(exc, DataQualityError) else "failed"
        mark_run(engine, run_id, status, f"{stage}: {exc}"[:4000])
        if isinstance(exc, PermanentError):  # not retried: the run is over
            drop_run_tables(engine, run_id)
        raise
    finally:
        stop.set()
        beater.join(timeout=5)


def close_abandoned(engine: Engine, stale_after: timedelta = STALE_AFTER) -> list[str]:
    """Close runs whose process is gone as 'abandoned' and drop their staging tables; their ids.

    Also drops staging tables left by runs that ended without dropping them more than
    ``stale_after`` ago (a transient failure whose retries ran out ends 'failed' with its tables)."""
    closed = close_abandoned_runs(engine, stale_after)
    for row in closed:
        log.warning("run %s (%s): no heartbeat for %s, closed as abandoned", row["run_id"], row["snapshot_date"], stale_after)
        drop_run_tables(engine, row["run_id"])
    _sweep_closed_staging(engine, stale_after)
    return [row["run_id"] for row in closed]


def _sweep_closed_staging(engine: Engine, stale_after: timedelta) -> None:
    try:
        with engine.connect() as conn:
            keys = {name.rsplit("_", 1)[-1] for name in staging_tables(conn)}
            if not keys:
                return
            runs = read_sql(
                conn,
                "SELECT run_id, status, finished_at FROM segmentation.segment_runs WHERE status NOT IN ('running')",
            )
        cutoff = datetime.now(timezone.utc) - stale_after
        for run_id, finished in zip(runs["run_id"], runs["finished_at"], strict=True):
            if run_key(str(run_id)) not in keys or finished is None:
                continue
            when = datetime.fromisoformat(str(finished)[:19]).replace(tzinfo=timezone.utc)
            if when < cutoff:
                drop_run_tables(engine, str(run_id))
    except Exception as exc:  # noqa: BLE001 - housekeeping must never fail a run
        log.warning("could not sweep staging tables of closed runs: %s", exc)


def start_run(engine: Engine, snapshot_date: date, params: dict[str, Any] | None = None) -> RunContext:
    """Check the parameters, register the run as 'running' and return the context every stage receives."""
    snapshot_date = date(snapshot_date.year, snapshot_date.month, snapshot_date.day)  # e.g. pendulum.Date -> date
    resolved = resolve_params(params)
    ensure_published_tables(engine)
    close_abandoned(engine)
    run_id = make_run_id(snapshot_date)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with engine.begin() as conn:
        upsert_run(
            conn,
            {
                "run_id": run_id,
                "snapshot_date": snapshot_date,
                "status": "running",
                "params": resolved,
                "started_at": now,
                "heartbeat_at": now,
            },
            merge=False,
        )
    log.info("run %s: snapshot %s, window %s days", run_id, snapshot_date, resolved["window_days"])
    return {"run_id": run_id, "snapshot_date": snapshot_date.isoformat(), "params": resolved}


def pending_earlier_runs(engine: Engine, run: RunContext, stale_after: timedelta = STALE_AFTER) -> list[str]:
    """Snapshot dates before this run's that are being computed right now.

    Segment ids are matched against the newest snapshot published before S, so when a backfill
    runs several dates at once, the cluster stage of S waits for the earlier ones (Airflow sensor in
    reschedule mode). Ids then do not depend on timing, and re-running a backfill gives identical
    tables. Each poke is a sign of life of the waiting run, and closes runs whose process is gone
    (no heartbeat for ``stale_after``) as 'abandoned' first, so a crashed worker blocks nobody.
    """
    heartbeat(engine, run["run_id"])
    close_abandoned(engine, stale_after)
    with engine.connect() as conn:
        rows = read_sql(
            conn,
            "SELECT DISTINCT snapshot_date FROM segmentation.segment_runs "
            "WHERE status = 'running' AND snapshot_date < :s ORDER BY snapshot_date",
            {"s": snapshot_of(run)},
        )
    return [str(d)[:10] for d in rows["snapshot_date"]]
