"""The ``warehouse`` Airflow connection for ``dag.test()`` runs: the JSON form of AIRFLOW_CONN_WAREHOUSE."""

from __future__ import annotations

import json

import sqlalchemy as sa


def warehouse_conn_env(warehouse: str) -> str:
    """AIRFLOW_CONN_WAREHOUSE (JSON) pointing at the SQLAlchemy URL ``warehouse`` (SQLite file or PostgreSQL)."""
    url = sa.make_url(warehouse)
    if url.drivername.startswith("sqlite"):
        return json.dumps({"conn_type": "sqlite", "host": url.database})
    return json.dumps(
        {"conn_type": "postgres", "host": url.host, "port": url.port, "login": url.username, "schema": url.database}
    )
