"""The warehouse source contract: the ``raw`` tables the pipeline reads, exactly as documented.

Users whose warehouse has another layout create views in ``raw`` with these names and columns
(see README, "Bring your own data"). ``evaluation.planted_types`` holds the synthetic generator's
ground truth; it lives outside ``raw`` so the pipeline can never read it.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION
from sqlalchemy.types import Float

from include.segmentation.store import ensure_schemas, is_sqlite

EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout",
)

raw_metadata = MetaData()

customers = Table(
    "customers",
    raw_metadata,
    Column("customer_id", Text, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("birth_year", Integer, nullable=True),
    Column("gender", Text, nullable=True),
    Column("country", Text, nullable=True),
    Column("city", Text, nullable=True),
    Column("email", Text, nullable=True),
    Column("phone", Text, nullable=True),
    Column("marketing_consent", Boolean, nullable=False),
    schema="raw",
)

transactions = Table(
    "transactions",
    raw_metadata,
    Column("order_id", Text, nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("customer_id", Text, nullable=True),
    Column("ordered_at", DateTime(timezone=True), nullable=False),
    Column("product_id", Text, nullable=False),
    Column("category", Text, nullable=True),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(12, 2), nullable=False),
    Column("discount", Numeric(12, 2), nullable=False, server_default=text("0")),
    UniqueConstraint("order_id", "line_number", name="transactions_order_line_key"),
    schema="raw",
)

browsing_events = Table(
    "browsing_events",
    raw_metadata,
    Column("event_id", Text, primary_key=True),
    Column("session_id", Text, nullable=False),
    Column("customer_id", Text, nullable=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("product_id", Text, nullable=True),
    Column("category", Text, nullable=True),
    Column("search_query", Text, nullable=True),
    Column("dwell_seconds", Float(precision=53).with_variant(DOUBLE_PRECISION(), "postgresql"), nullable=True),
    schema="raw",
)

# Indexes for the windowed reads: by timestamp, and by customer within time.
RAW_INDEXES: tuple[Index, ...] = (
    Index("ix_transactions_ordered_at", transactions.c.ordered_at),
    Index("ix_transactions_customer_ordered_at", transactions.c.customer_id, transactions.c.ordered_at),
    Index("ix_browsing_events_occurred_at", browsing_events.c.occurred_at),
    Index("ix_browsing_events_customer_occurred_at", browsing_events.c.customer_id, browsing_events.c.occurred_at),
)

evaluation_metadata = MetaData()

planted_types = Table(
    "planted_types",
    evaluation_metadata,
    Column("customer_id", Text, nullable=False),
    Column("planted_type", Text, nullable=False),
    PrimaryKeyConstraint("customer_id", name="planted_types_pkey"),
    schema="evaluation",
)

RAW_TABLES: tuple[str, ...] = ("customers", "transactions", "browsing_events")


def create_source_contract(engine: Engine) -> None:
    """Create schemas, the three ``raw`` tables with their indexes, and ``evaluation.planted_types``.

    Idempotent: existing tables are left as they are.
    """
    ensure_schemas(engine)
    with engine.begin() as conn:
        raw_metadata.create_all(conn, checkfirst=True)
        evaluation_metadata.create_all(conn, checkfirst=True)


def drop_raw_indexes(engine: Engine) -> None:
    """Drop the window indexes (bulk loads rebuild them once at the end, which is much faster)."""
    with engine.begin() as conn:
        for ix in RAW_INDEXES:
            ix.drop(conn, checkfirst=True)


def create_raw_indexes(engine: Engine) -> None:
    """(Re)create the window indexes and refresh planner statistics."""
    with engine.begin() as conn:
        for ix in RAW_INDEXES:
            ix.create(conn, checkfirst=True)
    analyze_raw(engine, ("customers", "transactions", "browsing_events"))


def analyze_raw(engine: Engine, tables: tuple[str, ...]) -> None:
    """Refresh planner statistics of raw ``tables`` (SQLite analyzes the whole raw schema)."""
    with engine.connect() as conn:
        if is_sqlite(conn):
            conn.exec_driver_sql("ANALYZE raw")
        else:
            names = ", ".join(f"raw.{t}" for t in tables)
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(f"ANALYZE {names}")
