"""Staging tables: where a run's results wait, in schema ``segmentation``, until publish copies them.

A staging table is always ``segmentation.stg_<kind>_<YYYYMMDD>``; nothing else is ever read as,
published from or dropped as one (``qualified_staging`` is that rule).
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import Column, Connection, Engine, MetaData, Table

from include.segmentation.errors import PermanentError
from include.segmentation.store.identifiers import validate_identifier
from include.segmentation.store.schema import SCHEMA
from include.segmentation.store.tableio import bulk_insert, read_table

STAGING_SCHEMA = SCHEMA
PREFIX = "stg_"


class StagingNameError(PermanentError, ValueError):
    """A name given as a staging table is not ``segmentation.stg_*``."""


def staging_table(kind: str, snapshot_date: date) -> str:
    """Name (unqualified) of a staging table for one snapshot."""
    return validate_identifier(f"{PREFIX}{kind}_{snapshot_date:%Y%m%d}", "staging table")


def qualified(name: str) -> str:
    """``segmentation.<name>``."""
    return f"{STAGING_SCHEMA}.{validate_identifier(name, 'staging table')}"


def qualified_staging(name: str) -> str:
    """Check that ``name`` is a qualified staging table name and return it (the ``stg_`` rule)."""
    schema, _, table = name.partition(".")
    if schema != STAGING_SCHEMA or not table.startswith(PREFIX):
        raise StagingNameError(f"not a staging table: {name!r} (must be {STAGING_SCHEMA}.{PREFIX}*)")
    return qualified(table)


def drop_table(conn: Connection, schema: str, table: str) -> None:
    """Drop ``schema.table`` if it exists."""
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {validate_identifier(schema)}.{validate_identifier(table)}")


def drop_staging(conn: Connection, names: list[str]) -> None:
    """Drop staging tables by qualified name; names that are not staging tables are ignored."""
    for name in names:
        try:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {qualified_staging(name)}")
        except StagingNameError:
            continue


def staging_like(table: Table, staging_name: str) -> Table:
    """A constraint-free copy of ``table``'s columns named ``staging_name`` in the same schema."""
    return Table(
        validate_identifier(staging_name),
        MetaData(schema=STAGING_SCHEMA),
        *[Column(c.name, c.type, nullable=True) for c in table.columns],
    )


def read_staging(engine: Engine, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a staging table (all columns, or ``columns``) into a DataFrame."""
    table = qualified_staging(name).partition(".")[2]
    with engine.connect() as conn:
        return read_table(conn, STAGING_SCHEMA, table, columns)


def write_staging(engine: Engine, kind: str, snapshot_date: date, like: Table, df: pd.DataFrame) -> str:
    """Replace the staging table of ``kind`` for the snapshot with ``df`` (``like``'s columns)."""
    name = staging_table(kind, snapshot_date)
    table = staging_like(like, name)
    with engine.begin() as conn:
        drop_table(conn, STAGING_SCHEMA, name)
        table.create(conn)
        bulk_insert(conn, STAGING_SCHEMA, name, df, [c.name for c in like.columns])
    return qualified(name)
