"""Publish: move one snapshot's staged results into the published tables in a single transaction.

Idempotent for a snapshot date S: the snapshot's rows are replaced, never appended twice.
``customer_segments`` (what consumers read) is replaced only when S is the newest published
snapshot, so a backfill of an older date never hides newer segments. Publishers are serialised:
on PostgreSQL by a transaction-scoped advisory lock, on SQLite by the write lock that every
transaction takes up front (``BEGIN IMMEDIATE``, see ``engine``). The read-only role
``segment_reader`` is granted SELECT on the published tables only. A crash before COMMIT leaves
consumers on the previous complete snapshot.

Two attempts of the same date: the later-started attempt wins (ties broken by run id). Inside the
lock a run publishes only if it is still live and no later-started attempt of its date is running
or published; otherwise ``PublishRefused`` is raised and nothing is written. A later attempt that
publishes after an earlier one marks the earlier one 'superseded'. A run publishes only its own
staging tables (names ending in its run key).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, Table, text

from include.segmentation.errors import PermanentError
from include.segmentation.store.engine import is_sqlite
from include.segmentation.store.identifiers import validate_identifier
from include.segmentation.store.run_log import upsert_run
from include.segmentation.store.schema import (
    PUBLISHED_TABLES,
    SCHEMA,
    SNAPSHOT_TABLES,
    customer_segments,
    ensure_segmentation_tables,
)
from include.segmentation.store.staging import StagingNameError, qualified_staging

log = logging.getLogger(__name__)

PUBLISH_LOCK_KEY = 718_204_331  # pg_advisory_xact_lock key shared by every publisher
READER_ROLE = "segment_reader"

class PublishRefused(PermanentError, RuntimeError):
    """This run may not publish its date: a later-started attempt is running or published, or the run
    is already closed. ``status`` is what the run becomes ('superseded', or its current status)."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


def _check_may_publish(conn: Connection, snapshot_date: date, run_id: str) -> None:
    """Under the publish lock: refuse unless the run is live and the newest live attempt of its date."""
    own = conn.execute(
        text("SELECT status, message FROM segmentation.segment_runs WHERE run_id = :r"), {"r": run_id}
    ).first()
    if own is None:
        raise PublishRefused(f"run {run_id} is not registered in segment_runs; nothing published", "failed")
    if own.status not in ("running", "failed"):
        raise PublishRefused(
            f"run {run_id} is already {own.status}" + (f" ({own.message})" if own.message else "") + "; nothing published",
            own.status,
        )
    newer = conn.execute(
        text(
            "SELECT o.run_id, o.status, o.started_at FROM segmentation.segment_runs o "
            "JOIN segmentation.segment_runs me ON me.run_id = :r "
            "WHERE o.snapshot_date = :s AND o.run_id <> :r AND o.status IN ('running', 'published') "
            "AND (o.started_at > me.started_at OR (o.started_at = me.started_at AND o.run_id > me.run_id)) "
            "ORDER BY o.started_at DESC, o.run_id DESC"
        ),
        {"r": run_id, "s": snapshot_date},
    ).first()
    if newer is not None:
        raise PublishRefused(
            f"superseded: a newer attempt {newer.run_id} of {snapshot_date} (started {str(newer.started_at)[:19]} UTC, "
            f"{newer.status}) wins; the later-started run of a date is the one published, so this run "
            "published nothing",
            "superseded",
        )


def ensure_published_tables(engine: Engine) -> None:
    """Create every published table (idempotent) and, on PostgreSQL, the reader grants.

    One transaction under the DDL advisory lock, so overlapping backfill runs on a fresh warehouse
    do not race each other's CREATE TABLE.
    """
    ensure_segmentation_tables(engine)
    with engine.begin() as conn:
        if not is_sqlite(conn):
            grant_reader(conn)


def grant_reader(conn: Connection) -> None:
    """Create role ``segment_reader`` if allowed and grant it SELECT on the published tables only."""
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": READER_ROLE}).first()
    if not exists:
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(f"CREATE ROLE {READER_ROLE} NOLOGIN")
        except Exception as exc:  # noqa: BLE001 - lacking CREATEROLE, or created concurrently
            log.warning("could not create role %s (%s); grants skipped unless it exists", READER_ROLE, type(exc).__name__)
    if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": READER_ROLE}).first():
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {READER_ROLE}")
        existing = set(
            conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": SCHEMA}
            ).scalars()
        )
        for table in PUBLISHED_TABLES:
            if table in existing:
                conn.exec_driver_sql(f"GRANT SELECT ON {SCHEMA}.{validate_identifier(table)} TO {READER_ROLE}")


def _columns(table: Table) -> str:
    return ", ".join(c.name for c in table.columns)


def publish_snapshot(
    engine: Engine,
    snapshot_date: date,
    run_id: str,
    staged: dict[str, str],
    run_row: dict[str, Any],
) -> dict[str, Any]:
    """Publish staged ``assignments``, ``profiles`` and ``features`` tables for ``snapshot_date``.

    ``staged`` maps those three kinds to ``segmentation.stg_*`` table names; ``run_row`` is the
    ``segment_runs`` row to store with status ``published``. Returns what was written.
    """
    targets: dict[str, Table] = SNAPSHOT_TABLES
    own_suffix = "_" + run_id.rsplit("_", 1)[-1].lower()
    for kind, name in staged.items():
        try:
            qualified_staging(name)
        except StagingNameError as exc:
            raise ValueError(f"refusing to publish from {name!r}: not a segmentation staging table") from exc
        if kind not in targets:
            raise ValueError(f"unknown staged kind {kind!r}")
        if not name.endswith(own_suffix):
            raise ValueError(f"refusing to publish from {name!r}: not a staging table of run {run_id}")
    s = {"s": snapshot_date}
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE holds the write lock until COMMIT
        if not is_sqlite(conn):
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PUBLISH_LOCK_KEY})
        _check_may_publish(conn, snapshot_date, run_id)
        written: dict[str, int] = {}
        for kind, final in targets.items():
            if kind not in staged:
                continue
            cols = _columns(final)
            conn.execute(text(f"DELETE FROM {SCHEMA}.{final.name} WHERE snapshot_date = :s"), s)
            res = conn.execute(text(f"INSERT INTO {SCHEMA}.{final.name} ({cols}) SELECT {cols} FROM {staged[kind]}"))
            written[final.name] = int(res.rowcount)
        newest = conn.execute(
            text(
                "SELECT MAX(snapshot_date) FROM segmentation.segment_runs "
                "WHERE status = 'published' AND snapshot_date <> :s"
            ),
            s,
        ).scalar_one()
        newest_date = date.fromisoformat(str(newest)[:10]) if newest is not None else None
        is_current = newest_date is None or snapshot_date >= newest_date
        if is_current:
            cols = _columns(customer_segments)
            conn.exec_driver_sql(f"DELETE FROM {SCHEMA}.customer_segments")
            res = conn.execute(
                text(
                    f"INSERT INTO {SCHEMA}.customer_segments ({cols}) "
                    f"SELECT {cols} FROM {SCHEMA}.customer_segments_history WHERE snapshot_date = :s"
                ),
                s,
            )
            written["customer_segments"] = int(res.rowcount)
        conn.execute(
            text(
                "UPDATE segmentation.segment_runs SET status = 'superseded', "
                "message = :m WHERE snapshot_date = :s AND status = 'published' AND run_id <> :r"
            ),
            {**s, "r": run_id, "m": f"superseded: the newer attempt {run_id} of {snapshot_date} was published"},
        )
        upsert_run(conn, {**run_row, "run_id": run_id, "snapshot_date": snapshot_date, "status": "published"})
    return {"snapshot_date": snapshot_date.isoformat(), "current": is_current, "rows": written}
