"""Airflow connections, read in one place: the warehouse engine and the ad platforms' credentials.

Airflow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import URL, Engine

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


#: The driver the store needs (``COPY`` through psycopg2's ``copy_expert``, see store/tableio.py).
WAREHOUSE_PG_SCHEME = "postgresql+psycopg2"
_PG_CONN_TYPES = {"postgres", "postgresql"}


def postgres_hook_url(conn_id: str) -> URL:
    """The SQLAlchemy URL of the Postgres connection ``conn_id``, as Airflow's Postgres provider builds it.

    ``PostgresHook.sqlalchemy_url`` honours what users put in their connections for the provider:
    ``iam`` (AWS IAM token, Redshift), ``sqlalchemy_query``; the driver stays psycopg2, which the
    store needs. libpq options in the extra (``sslmode``, ``sslrootcert``, ``connect_timeout``,
    ``options``, ``keepalives`` ...), which the hook hands to the driver in ``get_conn``, go into the
    URL's query the same way, so the engine connects exactly as the hook does.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=conn_id, sqlalchemy_scheme=WAREHOUSE_PG_SCHEME)
    url = hook.sqlalchemy_url
    query = dict(url.query)
    for key, value in hook.connection.extra_dejson.items():
        if key in hook.ignored_extra_options or key in query:
            continue
        if isinstance(value, bool):
            query[key] = "1" if value else "0"
        elif isinstance(value, str | int | float):
            query[key] = str(value)
    return url.set(query=query)


def warehouse_engine(conn_id: str = WAREHOUSE_CONN_ID) -> Engine:
    """Engine for the Airflow connection ``conn_id``; without one, the embedded SQLite default.

    A ``postgres`` connection goes through Airflow's Postgres provider (:func:`postgres_hook_url`);
    ``sqlite`` (the embedded demo warehouse) is mapped by ``store.connection_to_url``.
    """
    try:
        conn = connection_fields(conn_id)
    except LookupError:
        engine = get_engine(resolve_url(None))
        log.warning("no Airflow connection %r: using %s", conn_id, describe(engine))
        return engine
    if (conn["conn_type"] or "").lower() in _PG_CONN_TYPES:
        url = postgres_hook_url(conn_id)
        # libpq `options` travel as connect_args, where get_engine adds the session time zone to them.
        options = url.query.get("options")
        url = url.difference_update_query(["options"])
        engine = get_engine(url, connect_args={"options": options} if options else {})
    else:
        url = connection_to_url(
            conn["conn_type"] or "", conn["host"], conn["login"], conn["password"], conn["port"], conn["schema"],
            conn["extra"],
        )
        engine = get_engine(url)
    log.info("warehouse: %s", describe(engine))
    return engine
