"""A run's life: register it, guard each stage, and run every stage in order without Airflow."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import Engine

from include.segmentation.errors import PermanentError
from include.segmentation.params import resolve_params
from include.segmentation.pipeline.types import RunContext
from include.segmentation.quality import DataQualityError
from include.segmentation.store import ensure_published_tables, mark_run, read_sql, ts_param, upsert_run

log = logging.getLogger("include.segmentation")

T = TypeVar("T")


class EmptyWindowError(PermanentError, ValueError):
    """No customer activity in the run's window: there is nothing to segment."""


class ModelRejectedError(PermanentError, RuntimeError):
    """The quality gate refused the model; the run is recorded as rejected."""


def make_run_id(snapshot_date: date) -> str:
    """A new id for every attempt, so a failed re-run of a published date never rewrites its record.

    Published rows carry the id of the attempt that published them (their lineage); their content
    is the same whichever attempt publishes a date with the same data and parameters.
    """
    return f"seg_{snapshot_date:%Y%m%d}_{uuid.uuid4().hex[:12]}"


def snapshot_of(run: RunContext) -> date:
    """The run's snapshot date S."""
    return date.fromisoformat(run["snapshot_date"])


def guard(engine: Engine, run: RunContext, stage: str, fn: Callable[[], T]) -> T:
    """Run a stage; an unexpected error marks the run failed (expected ones mark themselves)."""
    try:
        return fn()
    except ModelRejectedError:
        raise
    except Exception as exc:
        status = "failed_validation" if isinstance(exc, DataQualityError) else "failed"
        mark_run(engine, run["run_id"], status, f"{stage}: {exc}"[:4000])
        raise


def start_run(engine: Engine, snapshot_date: date, params: dict[str, Any] | None = None) -> RunContext:
    """Check the parameters, register the run as 'running' and return the context every stage receives."""
    snapshot_date = date(snapshot_date.year, snapshot_date.month, snapshot_date.day)  # e.g. pendulum.Date -> date
    resolved = resolve_params(params)
    ensure_published_tables(engine)
    run_id = make_run_id(snapshot_date)
    with engine.begin() as conn:
        upsert_run(
            conn,
            {
                "run_id": run_id,
                "snapshot_date": snapshot_date,
                "status": "running",
                "params": resolved,
                "started_at": datetime.now(timezone.utc).replace(microsecond=0),
            },
            merge=False,
        )
    log.info("run %s: snapshot %s, window %s days", run_id, snapshot_date, resolved["window_days"])
    return {"run_id": run_id, "snapshot_date": snapshot_date.isoformat(), "params": resolved}


def pending_earlier_runs(engine: Engine, run: RunContext, stale_after: timedelta = timedelta(hours=3)) -> list[str]:
    """Snapshot dates before this run's that are being computed right now.

    Segment ids are matched against the newest snapshot published before S, so when a backfill
    runs several dates at once, the cluster stage of S waits for the earlier ones (Airflow sensor in
    reschedule mode). Ids then do not depend on timing, and re-running a backfill gives identical
    tables. A 'running' record older than ``stale_after`` (a crashed worker) is ignored.
    """
    since = datetime.now(timezone.utc) - stale_after
    with engine.connect() as conn:
        rows = read_sql(
            conn,
            "SELECT DISTINCT snapshot_date FROM segmentation.segment_runs "
            "WHERE status = 'running' AND snapshot_date < :s AND started_at >= :since ORDER BY snapshot_date",
            {"s": snapshot_of(run), "since": ts_param(conn, since)},
        )
    return [str(d)[:10] for d in rows["snapshot_date"]]
