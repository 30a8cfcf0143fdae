"""The warehouse URL from Airflow connection fields, env values and defaults; identifiers are validated."""

from __future__ import annotations

import json

import pytest

from include.segmentation.store import (
    DEFAULT_SQLITE_PATH,
    WarehouseError,
    connection_to_url,
    parse_airflow_conn_env,
    resolve_url,
    sqlite_schema_path,
    validate_identifier,
)


def test_postgres_connection_fields() -> None:
    url = connection_to_url("postgres", "db.internal", "seg", "s3cret", 6543, "analytics", {"sslmode": "require", "x": 1})
    assert url.drivername == "postgresql+psycopg2"
    assert (url.host, url.port, url.username, url.password, url.database) == ("db.internal", 6543, "seg", "s3cret", "analytics")
    assert dict(url.query) == {"sslmode": "require"}
    assert "s3cret" not in url.render_as_string(hide_password=True)


def test_sqlite_connection_in_host_or_schema() -> None:
    assert connection_to_url("sqlite", host="/data/w.db").database == "/data/w.db"
    assert connection_to_url("sqlite", schema="data/w.db").database == "/data/w.db"
    with pytest.raises(WarehouseError, match="file path"):
        connection_to_url("sqlite")
    with pytest.raises(WarehouseError, match="unsupported warehouse connection type 'mysql'"):
        connection_to_url("mysql", host="x")


def test_airflow_conn_env_uri_and_json() -> None:
    uri = parse_airflow_conn_env("postgresql://seg:pw@127.0.0.1:5432/wh")
    assert (uri.drivername, uri.database, uri.username) == ("postgresql+psycopg2", "wh", "seg")
    js = parse_airflow_conn_env(json.dumps({"conn_type": "sqlite", "host": "/tmp/w.db"}))
    assert js.drivername == "sqlite" and js.database == "/tmp/w.db"


def test_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE", raising=False)
    assert resolve_url(None).database == str(DEFAULT_SQLITE_PATH)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", '{"conn_type": "sqlite", "host": "/a.db"}')
    assert resolve_url(None).database == "/a.db"
    monkeypatch.setenv("WAREHOUSE_URL", "sqlite:////b.db")
    assert resolve_url(None).database == "/b.db"
    assert resolve_url("postgres://u@h/db").drivername == "postgresql+psycopg2"


def test_sqlite_schema_files_sit_next_to_the_main_file() -> None:
    assert str(sqlite_schema_path("/x/warehouse.db", "raw")) == "/x/warehouse.raw.db"


@pytest.mark.parametrize("bad", ["raw.customers", "x; DROP TABLE y", "1abc", "", "a" * 64])
def test_identifiers_from_configuration_are_validated(bad: str) -> None:
    with pytest.raises(WarehouseError, match="invalid"):
        validate_identifier(bad)
    assert validate_identifier("customer_segments") == "customer_segments"
