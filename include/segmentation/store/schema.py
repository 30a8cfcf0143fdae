"""Published tables in schema ``segmentation``: what SQL consumers and ad-platform syncs read.

- ``segment_runs``: one row per run attempt (published, superseded, rejected, failed_validation, failed),
  with scores; exactly one published row per published snapshot date.
- ``customer_segments_history``: every published snapshot, key (snapshot_date, customer_id).
- ``customer_segments``: the latest published snapshot only; a backfill of an older date never
  replaces it.
- ``segment_profiles``: per snapshot and segment, size, share, centroid and feature summaries.
- ``customer_features``: the model's input features of each published snapshot.

Other stages (quality results, rules, drift, audience sync state) own their tables in their own
modules and create them with ``ensure_*_tables``.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

from include.segmentation.store.warehouse import ddl_lock, ensure_schemas

SCHEMA = "segmentation"
output_metadata = MetaData(schema=SCHEMA)

# "superseded": a published run whose snapshot date was published again by a later run.
RUN_STATUSES: tuple[str, ...] = ("running", "published", "superseded", "rejected", "failed_validation", "failed")

segment_runs = Table(
    "segment_runs",
    output_metadata,
    Column("run_id", Text, primary_key=True),
    Column("snapshot_date", Date, nullable=False),
    Column("status", Text, nullable=False),
    Column("algorithm", Text),
    Column("k", Integer),
    Column("silhouette", Float),
    Column("davies_bouldin", Float),
    Column("calinski_harabasz", Float),
    Column("silhouette_sample_size", Integer),
    Column("population", Integer),
    Column("excluded_guest_lines", Integer),
    Column("excluded_anonymous_events", Integer),
    Column("outliers", Integer),
    Column("rules_accuracy", Float),
    Column("rules_macro_recall", Float),
    Column("rules_macro_f1", Float),
    Column("params", Text),  # JSON: the run's parameters
    Column("k_scores", Text),  # JSON: scores for every k tried
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("message", Text),
)
Index("ix_segment_runs_snapshot", segment_runs.c.snapshot_date, segment_runs.c.status)

customer_segments_history = Table(
    "customer_segments_history",
    output_metadata,
    Column("snapshot_date", Date, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("segment_name", Text, nullable=False),
    Column("distance", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("is_outlier", Boolean, nullable=False),
    Column("run_id", Text, nullable=False),
    PrimaryKeyConstraint("snapshot_date", "customer_id", name="customer_segments_history_pkey"),
)
Index("ix_customer_segments_history_segment", customer_segments_history.c.snapshot_date, customer_segments_history.c.segment_id)

customer_segments = Table(
    "customer_segments",
    output_metadata,
    Column("customer_id", Text, primary_key=True),
    Column("snapshot_date", Date, nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("segment_name", Text, nullable=False),
    Column("distance", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("is_outlier", Boolean, nullable=False),
    Column("run_id", Text, nullable=False),
)
Index("ix_customer_segments_segment", customer_segments.c.segment_id)

segment_profiles = Table(
    "segment_profiles",
    output_metadata,
    Column("snapshot_date", Date, nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("segment_name", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("share", Float, nullable=False),
    Column("description", Text),
    Column("centroid", Text, nullable=False),  # JSON: centroid in the transformed, unscaled feature space
    Column("feature_means", Text, nullable=False),  # JSON: feature -> mean in original units
    Column("feature_medians", Text, nullable=False),  # JSON: feature -> median in original units
    Column("top_categories", Text),  # JSON list
    Column("run_id", Text, nullable=False),
    PrimaryKeyConstraint("snapshot_date", "segment_id", name="segment_profiles_pkey"),
)


def ensure_output_tables(engine: Engine) -> None:
    """Create the ``segmentation`` schema's core tables if missing (idempotent).

    ``customer_features`` is created by the publish stage from the feature list.
    """
    ensure_schemas(engine)
    with engine.begin() as conn:
        ddl_lock(conn)
        output_metadata.create_all(conn, checkfirst=True)
