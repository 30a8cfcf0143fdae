"""Every table of schema ``segmentation``: the one place where their columns are declared.

Published (read by SQL consumers, granted to ``segment_reader``):

- ``segment_runs``: one row per run attempt, with scores; one published row per published date.
- ``customer_segments_history`` / ``customer_segments``: every snapshot / the newest one only.
- ``segment_profiles``, ``customer_features``: per snapshot, segment summaries and model inputs.
- ``segment_rules``, ``segment_transitions``, ``segment_drift``, ``segment_top_products``: insight.
- ``segment_price_response``, ``segment_demand_forecast``: the pricing and inventory feeds (docs/feeds.md).
- ``quality_results``: every data-quality check of every run.
- ``audience_sync_runs`` (with ``audience_members`` and ``audience_sync_queue``, the sync's state).

No table holds a clear-text e-mail or phone number.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
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
    inspect,
)

from include.segmentation.model import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from include.segmentation.store.engine import ddl_lock, ensure_schemas

SCHEMA = "segmentation"
#: The tables a segmentation run writes (created before the first run).
metadata = MetaData(schema=SCHEMA)
#: The audience sync's tables (created by the sync).
audience_metadata = MetaData(schema=SCHEMA)

# --- runs and snapshots ------------------------------------------------------------------------

# "superseded": a published run whose snapshot date was published again by a later run.
RUN_STATUSES: tuple[str, ...] = ("running", "published", "superseded", "rejected", "failed_validation", "failed", "abandoned")

segment_runs = Table(
    "segment_runs",
    metadata,
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
    Column("heartbeat_at", DateTime(timezone=True)),  # last sign of life of a running run
    Column("effective_weights", Text),  # JSON: feature -> weight the model actually used
    Column("lifetime_model", Text),  # JSON: fitted BG/NBD and Gamma-Gamma parameters
    Column("min_name_fidelity", Float),  # lowest share of a segment's members meeting its name
    Column("stability", Float),  # mean bootstrap Jaccard stability over the segments
    Column("moved_customers", Integer),  # customers whose segment changed since the previous snapshot
    Column("moved_with_feature_change", Integer),  # of those, customers whose own features moved materially
)
Index("ix_segment_runs_snapshot", segment_runs.c.snapshot_date, segment_runs.c.status)

customer_segments_history = Table(
    "customer_segments_history",
    metadata,
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
    metadata,
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
    metadata,
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
    Column("name_fidelity", Float),  # share of members meeting the definition of the segment's name
    Column("stability", Float),  # bootstrap Jaccard similarity to the best-matching resampled cluster
    PrimaryKeyConstraint("snapshot_date", "segment_id", name="segment_profiles_pkey"),
)



customer_features = Table(
    "customer_features",
    metadata,
    Column("snapshot_date", Date, nullable=False),
    Column("customer_id", Text, nullable=False),
    *[Column(name, Float) for name in NUMERIC_FEATURES],
    *[Column(name, Text) for name in CATEGORICAL_FEATURES],
    Column("run_id", Text, nullable=False),
    PrimaryKeyConstraint("snapshot_date", "customer_id", name="customer_features_pkey"),
)


# --- insight -------------------------------------------------------------------------------

segment_rules = Table(
    "segment_rules",
    metadata,
    Column("snapshot_date", Date, nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("segment_name", Text, nullable=False),
    Column("rule_rank", Integer, nullable=False),  # 1 = the segment's rule with the largest support
    Column("rule", Text, nullable=False),  # SQL predicate on customer_features, e.g. "recency_days <= 21"
    Column("conditions", Text, nullable=False),  # JSON list of {"feature", "op", "value"}
    Column("support", Integer, nullable=False),  # customers the rule matches
    Column("precision", Float, nullable=False),  # share of matched customers that are in the segment
    Column("coverage", Float, nullable=False),  # share of the segment's customers the rule matches
    Column("run_id", Text, nullable=False),
    PrimaryKeyConstraint("snapshot_date", "segment_id", "rule_rank", name="segment_rules_pkey"),
)

segment_transitions = Table(
    "segment_transitions",
    metadata,
    Column("snapshot_date", Date, nullable=False),
    Column("previous_snapshot_date", Date, nullable=False),
    Column("from_segment_id", Integer),  # NULL: not in the previous snapshot's population
    Column("from_segment_name", Text),
    Column("to_segment_id", Integer),  # NULL: not in this snapshot's population
    Column("to_segment_name", Text),
    Column("customers", Integer, nullable=False),
    Column("share_of_from", Float),  # customers / previous size of the from-segment
    Column("run_id", Text, nullable=False),
)
Index("ix_segment_transitions_snapshot", segment_transitions.c.snapshot_date)

segment_drift = Table(
    "segment_drift",
    metadata,
    Column("snapshot_date", Date, nullable=False),
    Column("previous_snapshot_date", Date, nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("segment_name", Text, nullable=False),
    Column("status", Text, nullable=False),  # stable, drift, new, gone
    Column("previous_size", Integer),
    Column("size", Integer, nullable=False),
    Column("size_change", Float),  # (size - previous_size) / previous_size
    Column("previous_share", Float),
    Column("share", Float, nullable=False),
    Column("centroid_shift", Float),  # Euclidean, in standard deviations of the (transformed) model features
    Column("top_shift_feature", Text),  # the feature that moved most
    Column("stayed", Integer, nullable=False),
    Column("moved_in", Integer, nullable=False),  # from another segment
    Column("moved_out", Integer, nullable=False),  # to another segment
    Column("moved_out_share", Float),  # moved_out / previous_size
    Column("warning", Text),
    Column("run_id", Text, nullable=False),
    PrimaryKeyConstraint("snapshot_date", "segment_id", name="segment_drift_pkey"),
)

segment_top_products = Table(
    "segment_top_products",
    metadata,
    Column("snapshot_date", Date, nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("segment_name", Text, nullable=False),
    Column("item_type", Text, nullable=False),  # category or product
    Column("ranking", Text, nullable=False),  # revenue or lift
    Column("rank", Integer, nullable=False),
    Column("item_id", Text, nullable=False),  # category name or product_id
    Column("category", Text),
    Column("revenue", Float, nullable=False),  # net of discounts, purchases in the window
    Column("revenue_share", Float),  # of the segment's revenue
    Column("buyers", Integer, nullable=False),  # segment customers who bought it
    Column("penetration", Float, nullable=False),  # buyers / segment size
    Column("lift", Float),  # revenue_share / the item's share of the whole population's revenue
    Column("run_id", Text, nullable=False),
    PrimaryKeyConstraint("snapshot_date", "segment_id", "item_type", "ranking", "rank", name="segment_top_products_pkey"),
)

#: Insight tables by the staged kind that fills them.
INSIGHT_TABLES: dict[str, Table] = {
    "rules": segment_rules,
    "transitions": segment_transitions,
    "drift": segment_drift,
    "top_products": segment_top_products,
}

# --- data quality --------------------------------------------------------------------------

quality_results = Table(
    "quality_results",
    metadata,
    Column("validation_id", Text, nullable=False),  # one id per validate_* call
    Column("run_id", Text, nullable=False),
    Column("snapshot_date", Date, nullable=False),
    Column("suite", Text, nullable=False),
    Column("check_name", Text, nullable=False),
    Column("table_name", Text, nullable=False),
    Column("column_name", Text),
    Column("rule", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("status", Text, nullable=False),  # passed | failed | skipped
    Column("success", Boolean),  # NULL when skipped
    Column("observed", Text),
    Column("observed_value", Float),
    Column("examples", Text),  # JSON list of masked rows
    Column("data_docs", Text),  # path of the run's Data Docs index.html
    Column("checked_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("validation_id", "check_name", name="quality_results_pkey"),
)
Index("ix_quality_results_run", quality_results.c.run_id, quality_results.c.suite)
Index("ix_quality_results_snapshot", quality_results.c.snapshot_date)
Index("ix_quality_results_check", quality_results.c.check_name, quality_results.c.checked_at)



# --- audience sync -------------------------------------------------------------------------

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



# --- the model as data, and live assignment (docs/live-assignment.md) ----------------------

segment_models = Table(
    "segment_models",
    metadata,
    Column("snapshot_date", Date, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("k", Integer, nullable=False),
    Column("model", Text, nullable=False),  # JSON: model/persisted.py (features, scaler, weights, centroids, ...)
    PrimaryKeyConstraint("snapshot_date", name="segment_models_pkey"),
)

customer_segments_live = Table(
    "customer_segments_live",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("segment_id", Integer, nullable=False),
    Column("segment_name", Text, nullable=False),
    Column("distance", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("is_outlier", Boolean, nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),  # data up to this instant
    Column("as_of_date", Date, nullable=False),  # features as the daily run of this date would compute them
    Column("model_snapshot_date", Date, nullable=False),
    Column("live_run_id", Text, nullable=False),
)

# --- feeds: pricing and inventory (explain/pricing.py, explain/demand.py, docs/feeds.md) ---------

segment_price_response = Table(
    "segment_price_response",
    metadata,
    Column("snapshot_date", Date, nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("segment_name", Text, nullable=False),
    Column("category", Text, nullable=False),  # '*' = all categories pooled; '(none)' = lines without one
    Column("revenue", Float, nullable=False),  # net of discounts, purchase lines in the window
    Column("discounted_revenue_share", Float),  # share of revenue from lines sold with a discount
    Column("avg_discount_depth", Float),  # discount / gross value, over the discounted lines
    Column("elasticity", Float),  # log-log, product fixed effects; NULL: too little price variation
    Column("elasticity_se", Float),
    Column("n_observations", Integer, nullable=False),  # lines of products sold at 2+ prices in the segment
    Column("n_products", Integer, nullable=False),  # products sold at 2+ prices in the segment
    Column("log_price_sd", Float),  # within-product standard deviation of log price
    Column("run_id", Text, nullable=False),
    PrimaryKeyConstraint("snapshot_date", "segment_id", "category", name="segment_price_response_pkey"),
)

segment_demand_forecast = Table(
    "segment_demand_forecast",
    metadata,
    Column("snapshot_date", Date, nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("segment_name", Text, nullable=False),
    Column("category", Text, nullable=False),  # '(none)' = lines without one
    Column("horizon_days", Integer, nullable=False),  # forecast for [S, S + horizon_days)
    Column("buyers", Integer, nullable=False),  # segment members with a purchase in the window
    Column("expected_occasions", Float),  # the segment's expected purchase days in the horizon (BG/NBD)
    Column("occasion_share", Float),  # share of the segment's purchase days that include the category
    Column("units_per_occasion", Float),  # category units / the segment's purchase days, in the window
    Column("revenue_per_occasion", Float),
    Column("expected_units", Float),  # expected_occasions x units_per_occasion
    Column("expected_revenue", Float),  # expected_occasions x revenue_per_occasion
    Column("run_id", Text, nullable=False),
    PrimaryKeyConstraint("snapshot_date", "segment_id", "category", name="segment_demand_forecast_pkey"),
)

#: Feed tables by the staged kind that fills them.
FEED_TABLES: dict[str, Table] = {"price_response": segment_price_response, "demand_forecast": segment_demand_forecast}

#: Staged kinds of a run and the published table each one fills.
SNAPSHOT_TABLES: dict[str, Table] = {
    "model": segment_models,
    "assignments": customer_segments_history,
    "profiles": segment_profiles,
    "features": customer_features,
    **INSIGHT_TABLES,
    **FEED_TABLES,
}

PUBLISHED_TABLES: tuple[str, ...] = (
    "segment_runs",
    "customer_segments_history",
    "customer_segments",
    "segment_profiles",
    "customer_features",
    "segment_rules",
    "segment_transitions",
    "segment_top_products",
    "segment_drift",
    "segment_price_response",
    "segment_demand_forecast",
    "quality_results",
    "audience_sync_runs",
    "segment_models",
    "customer_segments_live",
    "customer_segments_now",  # a view (pipeline/live.py)
)




def add_missing_columns(conn: Connection, table: Table) -> list[str]:
    """Add the nullable columns ``table`` declares but the warehouse lacks (a newer release's columns).

    Warehouses created by an earlier release keep their data; only ``ALTER TABLE ... ADD COLUMN``
    is ever issued, never a drop or a type change. Returns the columns added.
    """
    present = {c["name"] for c in inspect(conn).get_columns(table.name, schema=table.schema)}
    added = []
    for column in table.columns:
        if column.name in present or not column.nullable:
            continue
        ddl = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {table.schema}.{table.name} ADD COLUMN {column.name} {ddl}")
        added.append(column.name)
    return added


def ensure_segmentation_tables(engine: Engine) -> None:
    """Create the run's tables if missing and add newer columns (idempotent, under the DDL advisory lock)."""
    ensure_schemas(engine)
    with engine.begin() as conn:
        ddl_lock(conn)
        metadata.create_all(conn, checkfirst=True)
        for table in metadata.tables.values():
            add_missing_columns(conn, table)


def ensure_audience_tables(engine: Engine) -> None:
    """Create the audience sync tables if missing (idempotent)."""
    ensure_schemas(engine)
    with engine.begin() as conn:
        audience_metadata.create_all(conn, checkfirst=True)
