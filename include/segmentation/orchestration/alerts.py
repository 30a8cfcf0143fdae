"""Failure notifications for the segmentation DAG: always logged, optionally POSTed to a webhook.

The alert is an Airflow notifier, :class:`SegmentationFailureNotifier` (an ``airflow.sdk.BaseNotifier``),
so provider notifiers (``SlackNotifier``, ``SmtpNotifier``, ``MSTeamsNotifier`` ...) plug in beside it:
``on_failure_callback=[SegmentationFailureNotifier(), SlackNotifier(...)]``. The DAG's
``on_failure_callback`` builds it lazily (DAG parsing stays light); :func:`notify_failure` is the same
thing as a plain function. The alert names the DAG, run, task, try and the error type, with a
redacted, short error message: e-mail addresses, phone numbers, credentials in URLs and
``password=``/``token=`` values are masked, because exception texts (SQL parameters, connection
errors) can carry them. An error that is not retried, a permanent one (``AirflowFailException``, what
the task wrapper raises for a ``PermanentError``) or one on the last try, says "not retried: ..."
instead of "(try 1/3)".

Where alerts go:
- always: the log (logger ``include.segmentation.orchestration.alerts``, level ERROR), i.e. the task's log in Airflow;
- optionally: a webhook (Slack/Teams/Mattermost-style incoming webhook, or any HTTP endpoint that
  accepts JSON). Configure it with the Airflow connection ``segmentation_alerts`` (``host`` = the
  full URL, or ``schema``/``host``/``port``; optional ``password`` = bearer token), e.g.
  ``AIRFLOW_CONN_SEGMENTATION_ALERTS='{"conn_type": "http", "host": "https://hooks.example.com/T0/B0"}'``,
  or with the environment variables ``SEGMENTATION_ALERT_WEBHOOK_URL`` (and optional
  ``SEGMENTATION_ALERT_WEBHOOK_TOKEN``). The URL and token are never logged: webhook URLs often
  carry their secret in the path.

A notification problem never raises: a broken webhook must not hide the original failure.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

ALERT_CONN_ID = "segmentation_alerts"
WEBHOOK_URL_ENV = "SEGMENTATION_ALERT_WEBHOOK_URL"
WEBHOOK_TOKEN_ENV = "SEGMENTATION_ALERT_WEBHOOK_TOKEN"
MAX_MESSAGE_CHARS = 500

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
_SECRET_KV = re.compile(
    r"(?i)\b(?P<key>password|passwd|pwd|secret|token|api[_-]?key|authorization)(?P<sep>\s*[=:]\s*)"
    r"(?P<value>bearer\s+\S+|[\"']?[^\s,;&\"')]+)"
)
_PHONE_CANDIDATE = re.compile(r"(?<![\w.])\+?\d[\d ().-]{6,}\d(?![\w])")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def redact(text: str) -> str:
    """Mask e-mails, phone numbers, URL credentials and ``password=``-style values in ``text``."""
    out = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    out = _SECRET_KV.sub(lambda m: f"{m.group('key')}{m.group('sep')}***", out)
    out = _EMAIL.sub("<email>", out)

    def _phone(m: re.Match[str]) -> str:
        s = m.group(0)
        digits = sum(ch.isdigit() for ch in s)
        if digits < 9 or _ISO_DATE.match(s):
            return s
        return "<phone>"

    return _PHONE_CANDIDATE.sub(_phone, out)


@dataclass(frozen=True)
class FailureAlert:
    """What went wrong, in fields that are safe to log and send."""

    dag_id: str
    run_id: str | None
    task_id: str | None
    try_number: int | None
    max_tries: int | None
    logical_date: str | None
    error_type: str | None
    error: str | None
    log_url: str | None
    permanent: bool = False  # AirflowFailException: a retry cannot fix it, so the task is never retried

    @property
    def retried(self) -> bool | None:
        """False when this failure is final (permanent, or no retries left); None when unknown."""
        if self.permanent:
            return False
        if self.try_number and self.max_tries is not None:
            return self.try_number <= self.max_tries
        return None

    @property
    def tries(self) -> str:
        """`` (try 1/3)`` while retries remain; ``, not retried: ...`` when this failure is final."""
        if self.permanent:
            return ", not retried: permanent error (a retry gives the same answer)"
        if self.retried is False:
            return f", not retried: no retries left (try {self.try_number}/{(self.max_tries or 0) + 1})"
        if self.try_number and self.max_tries is not None:
            return f" (try {self.try_number}/{self.max_tries + 1})"
        return ""

    @property
    def text(self) -> str:
        """One human-readable line (Slack-style ``text``)."""
        where = f"task {self.task_id}" if self.task_id else "DAG run"
        tries = self.tries
        err = f": {self.error_type}: {self.error}" if self.error_type else (f": {self.error}" if self.error else "")
        link = f" <{self.log_url}>" if self.log_url else ""
        return (
            f"[segmentation] {where} failed in {self.dag_id}, run {self.run_id}, "
            f"logical date {self.logical_date}{tries}{err}{link}"
        )

    def payload(self) -> dict[str, Any]:
        """The JSON body POSTed to the webhook: ``text`` plus the structured fields."""
        return {"text": self.text, **asdict(self), "retried": self.retried}


@dataclass(frozen=True)
class WebhookTarget:
    """Where to POST alerts. ``repr`` hides the URL and token."""

    url: str
    token: str | None = None
    timeout: float = 10.0

    def __repr__(self) -> str:
        return f"WebhookTarget({_safe_origin(self.url)!r}, token={'***' if self.token else None})"

    __str__ = __repr__


def _safe_origin(url: str) -> str:
    """Scheme and host of ``url`` only: safe to log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def _short_error(exc: Any) -> tuple[str | None, str | None]:
    if exc is None:
        return None, None
    if isinstance(exc, BaseException):
        etype, message = type(exc).__name__, str(exc)
    else:
        etype, message = None, str(exc)
    first = message.strip().splitlines()[0] if message.strip() else ""
    first = redact(first)
    if len(first) > MAX_MESSAGE_CHARS:
        first = first[: MAX_MESSAGE_CHARS - 1] + "…"
    return etype, first or None


def is_permanent(exc: Any) -> bool:
    """True for Airflow's ``AirflowFailException`` (fail without retry), subclasses included.

    Matched by class name along the MRO, so this module needs no Airflow import (both
    ``airflow.sdk.exceptions`` and the older ``airflow.exceptions`` spell it the same).
    """
    return isinstance(exc, BaseException) and any(c.__name__ == "AirflowFailException" for c in type(exc).__mro__)


def build_alert(context: Mapping[str, Any]) -> FailureAlert:
    """Build the alert from an Airflow callback context (task-level or DAG-level)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    dag_id = (
        getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", None) or "unknown"
    )
    run_id = getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None) or context.get("run_id")
    logical: Any = context.get("logical_date") or getattr(dag_run, "logical_date", None)
    exc = context.get("exception")
    if exc is None and context.get("reason"):
        exc = str(context["reason"])  # DAG-level callbacks carry a reason, not an exception
    etype, message = _short_error(exc)
    try:
        log_url = getattr(ti, "log_url", None) if ti is not None else None
    except Exception:  # noqa: BLE001 - log_url needs configuration that a callback may lack
        log_url = None
    return FailureAlert(
        dag_id=str(dag_id),
        run_id=str(run_id) if run_id else None,
        task_id=getattr(ti, "task_id", None),
        try_number=_int_or_none(getattr(ti, "try_number", None)),
        max_tries=_int_or_none(getattr(ti, "max_tries", None)),
        logical_date=logical.isoformat() if hasattr(logical, "isoformat") else (str(logical) if logical else None),
        error_type=etype,
        error=message,
        log_url=log_url if isinstance(log_url, str) else None,
        permanent=is_permanent(exc),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def webhook_from_env(environ: Mapping[str, str] | None = None) -> WebhookTarget | None:
    """The webhook from ``SEGMENTATION_ALERT_WEBHOOK_URL`` (+ ``..._TOKEN``), if set."""
    env = os.environ if environ is None else environ
    url = (env.get(WEBHOOK_URL_ENV) or "").strip()
    if not url:
        return None
    return WebhookTarget(url=url, token=(env.get(WEBHOOK_TOKEN_ENV) or "").strip() or None)


def webhook_from_connection_fields(
    host: str | None, schema: str | None = None, port: int | None = None, password: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> WebhookTarget | None:
    """The webhook described by an Airflow connection's fields.

    ``extra.url`` or a ``host`` that already is a full URL wins; otherwise ``schema`` (http/https,
    default https), ``host`` and ``port`` make the URL. ``password`` becomes a bearer token.
    """
    extra = extra or {}
    url = str(extra.get("url") or "").strip()
    if not url and host:
        host = host.strip()
        if host.startswith(("http://", "https://")):
            url = host
        else:
            scheme = schema if schema in {"http", "https"} else "https"
            url = f"{scheme}://{host}" + (f":{port}" if port else "")
    if not url:
        return None
    timeout = float(extra.get("timeout", 10.0))
    return WebhookTarget(url=url, token=password or None, timeout=timeout)


def webhook_from_airflow(conn_id: str = ALERT_CONN_ID) -> WebhookTarget | None:
    """Thin Airflow adapter: the webhook from connection ``conn_id``, or None when it does not exist."""
    from include.segmentation.orchestration.connection import connection_fields

    try:
        conn = connection_fields(conn_id)
    except LookupError:  # no such connection: alerts go to the log only
        return None
    return webhook_from_connection_fields(conn["host"], conn["schema"], conn["port"], conn["password"], conn["extra"])


def resolve_webhook(conn_id: str = ALERT_CONN_ID) -> WebhookTarget | None:
    """Environment first (``SEGMENTATION_ALERT_WEBHOOK_URL``), then the Airflow connection ``conn_id``."""
    return webhook_from_env() or webhook_from_airflow(conn_id)


def send_webhook(alert: FailureAlert, target: WebhookTarget) -> bool:
    """POST the alert as JSON; True on a 2xx answer. Logs failures without the URL or token."""
    import requests

    headers = {"Content-Type": "application/json"}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    try:
        resp = requests.post(target.url, json=alert.payload(), headers=headers, timeout=target.timeout)
    except requests.RequestException as exc:
        log.warning("failure alert not delivered to %s: %s", _safe_origin(target.url), type(exc).__name__)
        return False
    if not 200 <= resp.status_code < 300:
        log.warning("failure alert not delivered to %s: HTTP %s", _safe_origin(target.url), resp.status_code)
        return False
    return True


_AUTO = object()


def notify_failure(context: Mapping[str, Any], webhook: WebhookTarget | None | object = _AUTO) -> FailureAlert:
    """The ``on_failure_callback``: log the alert and, when a webhook is configured, send it.

    ``webhook`` defaults to :func:`resolve_webhook`; pass ``None`` to only log. Never raises.
    """
    try:
        alert = build_alert(context)
    except Exception as exc:  # noqa: BLE001 - a callback must not fail
        alert = FailureAlert("unknown", None, None, None, None, None, type(exc).__name__, "could not read context", None)
    log.error("%s", alert.text)
    try:
        target = resolve_webhook() if webhook is _AUTO else webhook
        if isinstance(target, WebhookTarget):
            if send_webhook(alert, target):
                log.info("failure alert delivered to %s", _safe_origin(target.url))
    except Exception as exc:  # noqa: BLE001 - a callback must not fail
        log.warning("failure alert not delivered: %s", type(exc).__name__)
    return alert


class SegmentationFailureNotifier(BaseNotifier):
    """The segmentation failure alert as an Airflow notifier (``airflow.sdk.BaseNotifier``).

    Logs the redacted alert and POSTs it to the configured webhook (see the module docstring).
    Use it as, or beside, any other notifier::

        on_failure_callback=[SegmentationFailureNotifier(), SlackNotifier(slack_conn_id="slack", text="...")]

    ``webhook``: a :class:`WebhookTarget`, ``None`` to only log, default: resolved at failure time.
    """

    template_fields = ()

    def __init__(self, webhook: WebhookTarget | None | object = _AUTO) -> None:
        super().__init__()
        self.webhook = webhook
        self.last_alert: FailureAlert | None = None

    def notify(self, context: Any) -> None:
        self.last_alert = notify_failure(context, self.webhook)
