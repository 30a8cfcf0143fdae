"""Staging tables: where a run's results wait, in schema ``segmentation``, until publish copies them.

A staging table is always ``segmentation.stg_<kind>_<YYYYMMDD>[_<run key>]``; nothing else is ever
read as, published from or dropped as one (``qualified_staging`` is that rule). The pipeline names
its tables with the run's key, so two runs of the same date never read or drop each other's rows.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import Column, Connection, Engine, MetaData, Table, text

from include.segmentation.errors import PermanentError
from include.segmentation.store.identifiers import validate_identifier
from include.segmentation.store.schema import SCHEMA
from include.segmentation.store.tableio import bulk_insert, read_table

STAGING_SCHEMA = SCHEMA
PREFIX = "stg_"


class StagingNameError(PermanentError, ValueError):
    """A name given as a staging table is not ``segmentation.stg_*``."""


def staging_table(kind: str, snapshot_date: date, key: str = "") -> str:
    """Name (unqualified) of a staging table for one snapshot (and one run, when ``key`` is given)."""
    if key and not key.isalnum():
        raise StagingNameError(f"staging key must be letters and digits, got {key!r}")
    suffix = f"_{key.lower()}" if key else ""
    return validate_identifier(f"{PREFIX}{kind}_{snapshot_date:%Y%m%d}{suffix}", "staging table")


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


def write_staging(engine: Engine, kind: str, snapshot_date: date, like: Table, df: pd.DataFrame, key: str = "") -> str:
    """Replace the staging table of ``kind`` for the snapshot (and run ``key``) with ``df`` (``like``'s columns)."""
    name = staging_table(kind, snapshot_date, key)
    table = staging_like(like, name)
    optional = [c.name for c in like.columns if c.nullable and c.name not in df.columns]
    if optional:  # columns a stage does not fill (yet) are stored as NULL
        df = df.assign(**dict.fromkeys(optional, None))
    with engine.begin() as conn:
        drop_table(conn, STAGING_SCHEMA, name)
        table.create(conn)
        bulk_insert(conn, STAGING_SCHEMA, name, df, [c.name for c in like.columns])
    return qualified(name)


def staging_tables(conn: Connection) -> list[str]:
    """Unqualified names of every staging table (``stg_*``) in schema ``segmentation``."""
    if conn.dialect.name == "sqlite":
        sql = f"SELECT name FROM {STAGING_SCHEMA}.sqlite_master WHERE type = 'table'"
        names = [str(n) for n in conn.exec_driver_sql(sql).scalars()]
    else:
        names = [
            str(n)
            for n in conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": STAGING_SCHEMA},
            ).scalars()
        ]
    return sorted(n for n in names if n.startswith(PREFIX))


def run_staging_tables(conn: Connection, key: str) -> list[str]:
    """Qualified names of every staging table of the run with staging ``key`` (``stg_*_<key>``)."""
    if not key or not key.isalnum():
        raise StagingNameError(f"staging key must be letters and digits, got {key!r}")
    suffix = f"_{key.lower()}"
    return [qualified(n) for n in staging_tables(conn) if n.endswith(suffix)]


def drop_run_staging(engine: Engine, key: str) -> list[str]:
    """Drop every staging table of one run (a failed, superseded or abandoned run); returns them."""
    with engine.begin() as conn:
        names = run_staging_tables(conn, key)
        drop_staging(conn, names)
    return names
