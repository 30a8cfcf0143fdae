"""Warehouse engine: one SQLAlchemy engine for PostgreSQL (production) and SQLite (embedded default).

Schemas: ``raw`` (source contract), ``segmentation`` (published output) and ``evaluation``
(planted types of synthetic data, never read by the pipeline). On PostgreSQL they are real
schemas. On SQLite each schema is a separate database file ATTACHed under the schema's name,
next to the main file: ``warehouse.db`` gets ``warehouse.raw.db``, ``warehouse.segmentation.db``
and ``warehouse.evaluation.db``. SQL written as ``raw.customers`` therefore runs unchanged on both.

PostgreSQL sessions are pinned to UTC (``-c timezone=UTC``): naive timestamps (``timestamp without
time zone``) are read as UTC, whatever the database's time zone setting is.

Timestamps on SQLite are stored as UTC text ``YYYY-MM-DD HH:MM:SS`` so that they sort and compare
as strings and ``julianday()`` understands them (``ts_param`` binds them that way).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL

from include.segmentation.store.identifiers import WarehouseError, validate_identifier
from include.segmentation.store.urls import resolve_url

SCHEMAS: tuple[str, ...] = ("raw", "segmentation", "evaluation")


def is_sqlite(bind: Engine | Connection) -> bool:
    """True when the warehouse is the embedded SQLite flavour."""
    return bind.dialect.name == "sqlite"


def sqlite_schema_path(main_db: str | Path, schema: str) -> Path:
    """The file that holds ``schema`` for the SQLite warehouse whose main file is ``main_db``."""
    p = Path(main_db)
    return p.with_name(f"{p.stem}.{schema}{p.suffix or '.db'}")


def get_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """Create the warehouse engine; on SQLite the schema files are attached on every connection."""
    u = resolve_url(url)
    if u.drivername.startswith("sqlite"):
        db = u.database
        if not db or db == ":memory:":
            raise WarehouseError("the SQLite warehouse must be a file (schemas are attached files)")
        Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"timeout": 60}, **kwargs)

        @event.listens_for(engine, "connect")
        def _attach(dbapi_conn: Any, _record: Any) -> None:
            # Autocommit at the driver level; SQLAlchemy emits BEGIN itself (see below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 60000")
            for schema in SCHEMAS:
                cur.execute("ATTACH DATABASE ? AS " + schema, (str(sqlite_schema_path(db, schema)),))
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock up front, so concurrent writers queue instead of failing.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # Every PostgreSQL session runs in UTC: a ``timestamp without time zone`` (e.g. in a
    # bring-your-own-data view) is then read as UTC wherever the database's or role's time zone
    # points, so the window boundary [S - window, S) is always S 00:00 UTC.
    connect_args = dict(kwargs.pop("connect_args", {}) or {})
    options = str(connect_args.get("options", "") or "")
    if "timezone=" not in options.lower():
        connect_args["options"] = f"{options} -c timezone=UTC".strip()
    return create_engine(u, connect_args=connect_args, **kwargs)


def describe(bind: Engine | Connection) -> str:
    """A loggable description of the warehouse, never with its password."""
    u = bind.engine.url if isinstance(bind, Connection) else bind.url
    return u.render_as_string(hide_password=True)


DDL_LOCK_KEY = 718_204_330  # pg_advisory_xact_lock key taken around every CREATE of the project's objects


def ddl_lock(conn: Connection) -> None:
    """Serialise DDL between concurrent runs (PostgreSQL): two overlapping ``CREATE TABLE IF NOT EXISTS``
    of the same table otherwise fail with a unique violation on pg_type. SQLite's BEGIN IMMEDIATE
    already serialises writers."""
    if not is_sqlite(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": DDL_LOCK_KEY})


def ensure_schemas(engine: Engine) -> None:
    """Create the raw/segmentation/evaluation schemas (PostgreSQL); SQLite attaches them on connect."""
    if is_sqlite(engine):
        with engine.begin():
            pass
        return
    with engine.begin() as conn:
        ddl_lock(conn)
        for schema in SCHEMAS:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {validate_identifier(schema)}")


def table_exists(bind: Engine | Connection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists."""
    validate_identifier(schema, "schema")
    validate_identifier(table, "table")
    if is_sqlite(bind):
        sql = text(f"SELECT 1 FROM {schema}.sqlite_master WHERE type IN ('table','view') AND name = :t")
        params: dict[str, Any] = {"t": table}
    else:
        sql = text(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = :s AND table_name = :t"
        )
        params = {"s": schema, "t": table}
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return conn.execute(sql, params).first() is not None
    return bind.execute(sql, params).first() is not None


def ts_param(bind: Engine | Connection, value: datetime | date) -> Any:
    """A timestamp bound parameter that compares correctly with stored timestamps on either dialect."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    if is_sqlite(bind):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value
