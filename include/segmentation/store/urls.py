"""Warehouse URL resolution: explicit URL, ``WAREHOUSE_URL``, ``AIRFLOW_CONN_WAREHOUSE`` or the SQLite default.

Airflow connections arrive as fields, as a URI or as JSON; all become one SQLAlchemy URL with the
``postgresql+psycopg2`` driver for PostgreSQL. No Airflow import: the environment variable is read
directly, so tools and tests resolve the warehouse the same way tasks do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import URL, make_url

from include.segmentation.settings import DEFAULT_SQLITE_PATH
from include.segmentation.store.identifiers import WarehouseError

#: libpq options taken from a connection's ``extra`` into the URL query.
_PG_QUERY_KEYS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options"}


def connection_to_url(
    conn_type: str,
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    port: int | None = None,
    schema: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> URL:
    """Turn Airflow-connection fields into a SQLAlchemy URL.

    ``postgres``/``postgresql`` -> ``postgresql+psycopg2``; ``sqlite`` -> the file in ``host``
    (or in ``schema``, as Airflow parses ``sqlite:////abs/path.db``). ``extra`` may carry libpq
    options (``sslmode`` ...), passed as query parameters.
    """
    kind = (conn_type or "").lower().replace("-", "_")
    if kind in {"postgres", "postgresql", "postgresql+psycopg2"}:
        query = {k: str(v) for k, v in (extra or {}).items() if k in _PG_QUERY_KEYS}
        return URL.create(
            "postgresql+psycopg2",
            username=login or None,
            password=password or None,
            host=host or "127.0.0.1",
            port=int(port) if port else 5432,
            database=schema or "postgres",
            query=query,
        )
    if kind == "sqlite":
        path = host or ""
        if not path and schema:
            path = schema if schema.startswith("/") else "/" + schema
        if not path:
            raise WarehouseError("sqlite warehouse connection needs the file path in 'host'")
        return URL.create("sqlite", database=path)
    raise WarehouseError(f"unsupported warehouse connection type {conn_type!r} (use postgres or sqlite)")


def resolve_url(url: str | URL | None = None) -> URL:
    """The warehouse URL: explicit argument, else ``WAREHOUSE_URL``, else ``AIRFLOW_CONN_WAREHOUSE``
    (URI or JSON form), else the embedded SQLite file ``data/warehouse.db``."""
    if url:
        return _normalise(make_url(url) if isinstance(url, str) else url)
    if os.environ.get("WAREHOUSE_URL"):
        return _normalise(make_url(os.environ["WAREHOUSE_URL"]))
    conn = os.environ.get("AIRFLOW_CONN_WAREHOUSE")
    if conn:
        return parse_airflow_conn_env(conn)
    return URL.create("sqlite", database=str(DEFAULT_SQLITE_PATH))


def parse_airflow_conn_env(value: str) -> URL:
    """Parse an ``AIRFLOW_CONN_*`` value (JSON or URI) the way the pipeline needs it."""
    value = value.strip()
    if value.startswith("{"):
        data = json.loads(value)
        return connection_to_url(
            data.get("conn_type", ""),
            host=data.get("host"),
            login=data.get("login"),
            password=data.get("password"),
            port=data.get("port"),
            schema=data.get("schema"),
            extra=data.get("extra") if isinstance(data.get("extra"), dict) else None,
        )
    u = make_url(value)
    if u.drivername.startswith("sqlite"):
        return _normalise(u)
    return connection_to_url(
        u.drivername.split("+")[0], host=u.host, login=u.username, password=u.password,
        port=u.port, schema=u.database, extra=dict(u.query),
    )


def _normalise(u: URL) -> URL:
    """The psycopg2 driver for bare ``postgres``/``postgresql`` URLs; others unchanged."""
    if u.drivername in {"postgres", "postgresql"}:
        return u.set(drivername="postgresql+psycopg2")
    return u
