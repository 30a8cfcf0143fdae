"""The sources subpackage."""

from include.segmentation.sources.contract import (
    EVENT_TYPES,
    RAW_INDEXES,
    RAW_TABLES,
    create_source_contract,
    evaluation_metadata,
    raw_metadata,
)
from include.segmentation.sources.extract import (
    Window,
    extract_aggregates,
    pg_extract_settings,
)
from include.segmentation.sources.online_retail import (
    CUSTOMER_COLUMNS,
    DEFAULT_PATH,
    REQUIRED_COLUMNS,
    TRANSACTION_COLUMNS,
    default_path,
    excess_precision,
    load_online_retail,
    read_online_retail,
    round_prices,
    to_source_contract,
)
from include.segmentation.sources.synthetic import (
    CATEGORIES,
    generate_chunk,
    generate_to_warehouse,
)

__all__ = [
    "CATEGORIES",
    "CUSTOMER_COLUMNS",
    "DEFAULT_PATH",
    "EVENT_TYPES",
    "RAW_INDEXES",
    "RAW_TABLES",
    "REQUIRED_COLUMNS",
    "TRANSACTION_COLUMNS",
    "Window",
    "create_source_contract",
    "default_path",
    "evaluation_metadata",
    "excess_precision",
    "extract_aggregates",
    "generate_chunk",
    "generate_to_warehouse",
    "load_online_retail",
    "pg_extract_settings",
    "raw_metadata",
    "read_online_retail",
    "round_prices",
    "to_source_contract",
]
