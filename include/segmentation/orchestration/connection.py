"""Thin Airflow adapter: the warehouse engine from the Airflow connection ``warehouse``.

The only module of the package that imports Airflow, and only inside functions, so that every
stage stays importable and testable without Airflow.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from include.segmentation.store import connection_to_url, describe, get_engine, resolve_url

log = logging.getLogger("include.segmentation")

WAREHOUSE_CONN_ID = "warehouse"


def warehouse_engine(conn_id: str = WAREHOUSE_CONN_ID) -> Engine:
    """Engine for the Airflow connection ``conn_id``; without one, the embedded SQLite default."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - AirflowNotFoundException and friends differ across versions
        engine = get_engine(resolve_url(None))
        log.warning("no Airflow connection %r: using %s", conn_id, describe(engine))
        return engine
    url = connection_to_url(
        conn.conn_type or "", conn.host, conn.login, conn.password, conn.port, conn.schema, conn.extra_dejson
    )
    engine = get_engine(url)
    log.info("warehouse: %s", describe(engine))
    return engine
