"""Warehouse tables of the audience sync, in schema ``segmentation`` (created by ``ensure_audience_tables``).

- ``audience_members``: per audience and target (destination + its audience id), the hashed
  identifiers the destination has accepted. A row exists only once the platform confirmed it;
  this is the state every diff is computed against.
- ``audience_sync_queue``: the intended diff of the latest run of an audience, written *before*
  anything is sent: one row per hashed identifier with ``op`` (add/remove), ``batch_no`` and
  ``status`` (pending -> staged -> sent, or failed with a reason). It makes a crashed or partially
  failed run visible, and is replaced by the next run's diff.
- ``audience_sync_runs``: one row per audience per run: counts, status, times, the platform's
  match figures when it reports them.

No table holds a clear-text e-mail or phone number.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

from include.segmentation.store.warehouse import ensure_schemas

SCHEMA = "segmentation"
audience_metadata = MetaData(schema=SCHEMA)

SYNC_STATUSES: tuple[str, ...] = ("running", "success", "partial", "failed", "interrupted", "dry_run")
QUEUE_STATUSES: tuple[str, ...] = ("pending", "staged", "sent", "failed")

audience_members = Table(
    "audience_members",
    audience_metadata,
    Column("audience", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("id_type", Text, nullable=False),
    Column("hashed_id", Text, nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("run_id", Text, nullable=False),
    PrimaryKeyConstraint("audience", "target", "id_type", "hashed_id", name="audience_members_pkey"),
)

audience_sync_queue = Table(
    "audience_sync_queue",
    audience_metadata,
    Column("audience", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("id_type", Text, nullable=False),
    Column("hashed_id", Text, nullable=False),
    Column("op", Text, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("batch_no", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("error", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("audience", "target", "id_type", "hashed_id", name="audience_sync_queue_pkey"),
)
Index("ix_audience_sync_queue_run_batch", audience_sync_queue.c.run_id, audience_sync_queue.c.batch_no)

audience_sync_runs = Table(
    "audience_sync_runs",
    audience_metadata,
    Column("run_id", Text, primary_key=True),
    Column("audience", Text, nullable=False),
    Column("destination", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("run_number", Integer, nullable=False),  # 1, 2, ... per audience: orders runs within a second
    Column("snapshot_date", Date),
    Column("mode", Text, nullable=False),
    Column("full_resend", Boolean, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("in_segments", Integer),
    Column("no_consent", Integer),
    Column("eligible", Integer),
    Column("identifiers", Integer),
    Column("invalid", Integer),
    Column("to_add", Integer),
    Column("to_remove", Integer),
    Column("added", Integer),
    Column("removed", Integer),
    Column("failed", Integer),
    Column("retried", Integer),
    Column("status", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("match_figures", Text),  # JSON: what the platform reported (received, invalid, match rate range)
    Column("message", Text),
    Column("trigger", Text),  # e.g. the Airflow run id
)
Index("ix_audience_sync_runs_audience", audience_sync_runs.c.audience, audience_sync_runs.c.run_number)


def ensure_audience_tables(engine: Engine) -> None:
    """Create the audience sync tables if missing (idempotent)."""
    ensure_schemas(engine)
    with engine.begin() as conn:
        audience_metadata.create_all(conn, checkfirst=True)
