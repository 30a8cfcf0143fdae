"""Destination credentials from a plain connection dict (no Airflow import here).

The DAG turns an Airflow connection into ``{"conn_type", "host", "login", "password", "extra"}``
and passes it in. Expected fields:

- ``meta_ads``: ``password`` = access token (or extra ``access_token``); extra ``api_version``
  (default ``v25.0``) and ``base_url`` (default ``https://graph.facebook.com``).
- ``google_ads``: extra ``developer_token``; ``login_customer_id`` (manager account, optional);
  ``customer_id`` (account owning the lists, optional when audience ids are resource names);
  either an access token (``password`` or extra ``access_token``) or extra ``client_id``,
  ``client_secret``, ``refresh_token`` (exchanged at ``token_url``, default Google's OAuth
  endpoint); ``api_version`` (default ``v26``) and ``base_url``.

Secret fields are excluded from ``repr`` so they never reach a log line by accident; errors name
the connection and the missing field, never a value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from include.segmentation.errors import PermanentError

META_DEFAULT_BASE_URL = "https://graph.facebook.com"
META_DEFAULT_API_VERSION = "v25.0"
GOOGLE_DEFAULT_BASE_URL = "https://googleads.googleapis.com"
GOOGLE_DEFAULT_API_VERSION = "v26"
GOOGLE_DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"


class CredentialsError(PermanentError, ValueError):
    """A destination connection lacks a field; the message names connection and field only."""


@dataclass(frozen=True)
class MetaCredentials:
    """What the Meta Marketing API client needs."""

    access_token: str = field(repr=False)
    api_version: str = META_DEFAULT_API_VERSION
    base_url: str = META_DEFAULT_BASE_URL

    def secrets(self) -> tuple[str, ...]:
        """Values to scrub from any message."""
        return (self.access_token,)


@dataclass(frozen=True)
class GoogleAdsCredentials:
    """What the Google Ads API client needs."""

    developer_token: str = field(repr=False)
    access_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    login_customer_id: str | None = None
    customer_id: str | None = None
    api_version: str = GOOGLE_DEFAULT_API_VERSION
    base_url: str = GOOGLE_DEFAULT_BASE_URL
    token_url: str = GOOGLE_DEFAULT_TOKEN_URL

    def secrets(self) -> tuple[str, ...]:
        """Values to scrub from any message."""
        return tuple(s for s in (self.developer_token, self.access_token, self.client_secret, self.refresh_token) if s)


def _extra(conn: Mapping[str, Any]) -> dict[str, Any]:
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra.strip() else {}
        except json.JSONDecodeError:
            raise CredentialsError("connection extra is not valid JSON") from None
    if not isinstance(extra, Mapping):
        raise CredentialsError("connection extra must be a JSON object")
    return dict(extra)


def _base_url(value: Any, default: str) -> str:
    url = str(value or default).rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise CredentialsError("extra 'base_url' must start with https:// (or http:// for local test servers)")
    return url


def _digits(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).replace("-", "").strip()
    if not text.isdigit():
        raise CredentialsError("customer ids must be digits (dashes allowed)")
    return text


def meta_credentials(conn: Mapping[str, Any], conn_id: str = "meta_ads") -> MetaCredentials:
    """Meta credentials from a connection dict; raises naming the missing field."""
    extra = _extra(conn)
    token = conn.get("password") or extra.get("access_token")
    if not token:
        raise CredentialsError(f"connection {conn_id!r}: field 'password' (the Meta access token) is empty")
    return MetaCredentials(
        access_token=str(token),
        api_version=str(extra.get("api_version") or META_DEFAULT_API_VERSION),
        base_url=_base_url(extra.get("base_url"), META_DEFAULT_BASE_URL),
    )


def google_ads_credentials(conn: Mapping[str, Any], conn_id: str = "google_ads") -> GoogleAdsCredentials:
    """Google Ads credentials from a connection dict; raises naming the missing field."""
    extra = _extra(conn)
    dev = extra.get("developer_token")
    if not dev:
        raise CredentialsError(f"connection {conn_id!r}: extra field 'developer_token' is empty")
    access = conn.get("password") or extra.get("access_token")
    oauth = [extra.get(k) for k in ("client_id", "client_secret", "refresh_token")]
    if not access and not all(oauth):
        missing = [k for k, v in zip(("client_id", "client_secret", "refresh_token"), oauth, strict=True) if not v]
        raise CredentialsError(
            f"connection {conn_id!r}: give an access token ('password') or extra fields "
            f"client_id, client_secret, refresh_token (missing: {', '.join(missing)})"
        )
    try:
        login = _digits(extra.get("login_customer_id") or conn.get("login"))
        customer = _digits(extra.get("customer_id"))
    except CredentialsError as exc:
        raise CredentialsError(f"connection {conn_id!r}: {exc}") from None
    return GoogleAdsCredentials(
        developer_token=str(dev),
        access_token=str(access) if access else None,
        client_id=str(oauth[0]) if oauth[0] else None,
        client_secret=str(oauth[1]) if oauth[1] else None,
        refresh_token=str(oauth[2]) if oauth[2] else None,
        login_customer_id=login,
        customer_id=customer,
        api_version=str(extra.get("api_version") or GOOGLE_DEFAULT_API_VERSION),
        base_url=_base_url(extra.get("base_url"), GOOGLE_DEFAULT_BASE_URL),
        token_url=_base_url(extra.get("token_url"), GOOGLE_DEFAULT_TOKEN_URL),
    )
