"""Airflow connections, read in one place: the warehouse engine and the ad platforms' credentials.

Airflow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from include.segmentation.audiences.config import Audience
from include.segmentation.audiences.credentials import (
    CredentialsError,
    GoogleAdsCredentials,
    MetaCredentials,
    google_ads_credentials,
    meta_credentials,
)
from include.segmentation.settings import WAREHOUSE_CONN_ID
from include.segmentation.store import connection_to_url, describe, get_engine, resolve_url

log = logging.getLogger("include.segmentation")


def connection_fields(conn_id: str) -> dict[str, Any]:
    """An Airflow connection as a plain dict (type, host, login, password, port, schema, extra).

    Raises LookupError when the connection does not exist (the SDK's own error types vary).
    """
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException and friends differ across versions
        raise LookupError(f"Airflow connection {conn_id!r} is not available ({type(exc).__name__})") from None
    return {
        "conn_type": conn.conn_type,
        "host": conn.host,
        "login": conn.login,
        "password": conn.password,
        "port": conn.port,
        "schema": conn.schema,
        "extra": conn.extra_dejson,
    }


def audience_credentials(audience: Audience) -> MetaCredentials | GoogleAdsCredentials | None:
    """The destination credentials of an audience from its Airflow connection (None for files)."""
    conn_id = audience.effective_connection_id
    if conn_id is None:
        return None
    try:
        conn = connection_fields(conn_id)
    except LookupError as exc:
        raise CredentialsError(f"audience {audience.name!r}: {exc}") from None
    if audience.destination == "meta":
        return meta_credentials(conn, conn_id)
    return google_ads_credentials(conn, conn_id)


def warehouse_engine(conn_id: str = WAREHOUSE_CONN_ID) -> Engine:
    """Engine for the Airflow connection ``conn_id``; without one, the embedded SQLite default."""
    try:
        conn = connection_fields(conn_id)
    except LookupError:
        engine = get_engine(resolve_url(None))
        log.warning("no Airflow connection %r: using %s", conn_id, describe(engine))
        return engine
    url = connection_to_url(
        conn["conn_type"] or "", conn["host"], conn["login"], conn["password"], conn["port"], conn["schema"],
        conn["extra"],
    )
    engine = get_engine(url)
    log.info("warehouse: %s", describe(engine))
    return engine
