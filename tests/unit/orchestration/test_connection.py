"""The `warehouse` connection -> engine, through Airflow's Postgres provider for postgres connections.

Uses the local PostgreSQL (127.0.0.1:5432, trust) for the one test that connects.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from include.segmentation.orchestration.connection import WAREHOUSE_PG_SCHEME, postgres_hook_url, warehouse_engine


def _set_conn(monkeypatch: pytest.MonkeyPatch, **fields) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(fields))


def test_postgres_connection_goes_through_the_provider_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(
        monkeypatch, conn_type="postgres", host="db.internal", port=6543, login="seg", password="s3cret",
        schema="analytics",
        extra={"sslmode": "require", "connect_timeout": 7, "keepalives": True, "cursor": "dictcursor",
               "sqlalchemy_query": {"application_name": "segmentation"}},
    )
    url = postgres_hook_url("warehouse")
    assert url.drivername == WAREHOUSE_PG_SCHEME == "postgresql+psycopg2"  # the store's COPY needs psycopg2
    assert (url.host, url.port, url.username, url.password, url.database) == (
        "db.internal", 6543, "seg", "s3cret", "analytics")
    # libpq extras as the hook's get_conn passes them; the hook's own keys (cursor ...) are not libpq's.
    assert dict(url.query) == {"application_name": "segmentation", "sslmode": "require", "connect_timeout": "7",
                               "keepalives": "1"}


def test_extra_sqlalchemy_scheme_cannot_switch_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, conn_type="postgres", host="h", schema="d", extra={"sqlalchemy_scheme": "postgresql+psycopg"})
    assert postgres_hook_url("warehouse").drivername == "postgresql+psycopg2"


def test_warehouse_engine_connects_with_the_connections_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(
        monkeypatch, conn_type="postgres", host="127.0.0.1", port=5432, login="postgres", schema="postgres",
        extra={"sslmode": "disable", "application_name": "custseg-test", "options": "-c statement_timeout=4321"},
    )
    engine = warehouse_engine()
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "4321ms"  # options from the extra
            assert conn.execute(text("SHOW TimeZone")).scalar() == "UTC"  # and the store's session time zone
            assert conn.execute(text("SHOW application_name")).scalar() == "custseg-test"
    finally:
        engine.dispose()


def test_sqlite_connection_keeps_the_embedded_warehouse(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    db = tmp_path / "w.db"
    _set_conn(monkeypatch, conn_type="sqlite", host=str(db))
    engine = warehouse_engine()
    try:
        assert engine.dialect.name == "sqlite" and engine.url.database == str(db)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
