"""The store subpackage."""

from include.segmentation.settings import DEFAULT_SQLITE_PATH
from include.segmentation.store.engine import (
    SCHEMAS,
    describe,
    ensure_schemas,
    get_engine,
    is_sqlite,
    sqlite_schema_path,
    table_exists,
    ts_param,
)
from include.segmentation.store.identifiers import (
    WarehouseError,
    validate_identifier,
)
from include.segmentation.store.publish import (
    READER_ROLE,
    ensure_published_tables,
    publish_snapshot,
)
from include.segmentation.store.run_log import (
    mark_run,
    upsert_run,
)
from include.segmentation.store.schema import (
    INSIGHT_TABLES,
    SCHEMA,
    customer_features,
    customer_segments_history,
    ensure_audience_tables,
    ensure_segmentation_tables,
    quality_results,
    segment_profiles,
)
from include.segmentation.store.staging import (
    STAGING_SCHEMA,
    StagingNameError,
    drop_staging,
    drop_table,
    qualified_staging,
    read_staging,
    staging_table,
    write_staging,
)
from include.segmentation.store.tableio import (
    bulk_insert,
    pg_column_types,
    read_sql,
    read_table,
)
from include.segmentation.store.urls import (
    connection_to_url,
    parse_airflow_conn_env,
    resolve_url,
)

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "INSIGHT_TABLES",
    "READER_ROLE",
    "SCHEMA",
    "SCHEMAS",
    "STAGING_SCHEMA",
    "StagingNameError",
    "WarehouseError",
    "bulk_insert",
    "connection_to_url",
    "customer_features",
    "customer_segments_history",
    "describe",
    "drop_staging",
    "drop_table",
    "ensure_audience_tables",
    "ensure_published_tables",
    "ensure_schemas",
    "ensure_segmentation_tables",
    "get_engine",
    "is_sqlite",
    "mark_run",
    "parse_airflow_conn_env",
    "pg_column_types",
    "publish_snapshot",
    "qualified_staging",
    "quality_results",
    "read_sql",
    "read_staging",
    "read_table",
    "resolve_url",
    "segment_profiles",
    "sqlite_schema_path",
    "staging_table",
    "table_exists",
    "ts_param",
    "upsert_run",
    "validate_identifier",
    "write_staging",
]
