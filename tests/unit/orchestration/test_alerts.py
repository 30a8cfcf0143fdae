"""The failure-alert callback (include/segmentation/orchestration/alerts.py): what it logs and sends,
what it redacts, where its webhook comes from, and that a broken webhook never raises.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest


class _FakeTI:
    dag_id = "customer_segmentation"
    task_id = "cluster"
    run_id = "backfill__2024-06-30T02:00:00+00:00"
    try_number = 3
    max_tries = 2
    log_url = "http://localhost:8080/dags/customer_segmentation/runs/x/tasks/cluster?try_number=3"


def _context(exc: BaseException | None) -> dict[str, Any]:
    from datetime import datetime, timezone

    return {"ti": _FakeTI(), "exception": exc, "logical_date": datetime(2024, 6, 30, 2, tzinfo=timezone.utc)}


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"path": self.path, "auth": self.headers.get("Authorization"), "json": json.loads(body)})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_server():
    """A local stand-in for the alerting SaaS (Slack/Teams-style incoming webhook)."""
    _Receiver.received = []
    _Receiver.status = 200
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, _Receiver
    server.shutdown()
    server.server_close()


def test_redact_masks_personal_data_and_credentials() -> None:
    from include.segmentation.orchestration.alerts import redact

    text = (
        "duplicate key (email)=(jane.doe@example.com) phone +44 20 7946 0958 url "
        "postgresql://writer:hunter2@db:5432/wh password=hunter2 token: abc123 on 2024-06-30 10:00:00, k=7"
    )
    out = redact(text)
    for secret in ("jane.doe@example.com", "7946 0958", "hunter2", "abc123"):
        assert secret not in out
    assert "<email>" in out and "<phone>" in out and "postgresql://***@db:5432/wh" in out
    assert "2024-06-30 10:00:00" in out and "k=7" in out, "dates and small numbers stay readable"


def test_notify_failure_logs_and_posts_a_redacted_alert(webhook_server, caplog, monkeypatch) -> None:
    from include.segmentation.orchestration.alerts import WebhookTarget, notify_failure

    server, receiver = webhook_server
    url = f"http://127.0.0.1:{server.server_port}/services/T000/SECRETPATH"
    exc = ValueError("insert failed for bob@example.org\nsecond line with detail")
    with caplog.at_level(logging.INFO, logger="include.segmentation.orchestration.alerts"):
        alert = notify_failure(_context(exc), webhook=WebhookTarget(url, token="tok-123"))
    assert alert.task_id == "cluster" and alert.try_number == 3 and alert.error_type == "ValueError"
    assert alert.error == "insert failed for <email>"
    assert alert.logical_date == "2024-06-30T02:00:00+00:00"
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got["path"] == "/services/T000/SECRETPATH" and got["auth"] == "Bearer tok-123"
    assert got["json"]["dag_id"] == "customer_segmentation" and got["json"]["task_id"] == "cluster"
    assert "task cluster failed" in got["json"]["text"] and "not retried: no retries left (try 3/3)" in got["json"]["text"]
    assert got["json"]["retried"] is False and got["json"]["permanent"] is False
    assert "bob@example.org" not in json.dumps(got["json"])
    logged = caplog.text
    assert "task cluster failed in customer_segmentation" in logged
    assert "SECRETPATH" not in logged and "tok-123" not in logged and "bob@example.org" not in logged


def test_webhook_problems_never_raise_nor_leak_the_url(webhook_server, caplog) -> None:
    from include.segmentation.orchestration.alerts import WebhookTarget, notify_failure

    server, receiver = webhook_server
    receiver.status = 500
    url = f"http://127.0.0.1:{server.server_port}/hook/SECRETPATH"
    with caplog.at_level(logging.WARNING, logger="include.segmentation.orchestration.alerts"):
        notify_failure(_context(RuntimeError("boom")), webhook=WebhookTarget(url))
        # Nothing listens on port 9 (discard): connection refused, still no exception.
        notify_failure(_context(RuntimeError("boom")), webhook=WebhookTarget("http://127.0.0.1:9/x/SECRETPATH", timeout=2))
    assert len(receiver.received) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("HTTP 500" in w for w in warnings) and any("ConnectionError" in w for w in warnings)
    assert "SECRETPATH" not in caplog.text
    assert "SECRETPATH" not in repr(WebhookTarget(url, token="t")) and "'t'" not in repr(WebhookTarget(url, token="t"))


def test_webhook_configuration_sources(webhook_server, monkeypatch) -> None:
    from include.segmentation.orchestration.alerts import (
        WEBHOOK_TOKEN_ENV,
        WEBHOOK_URL_ENV,
        notify_failure,
        resolve_webhook,
        webhook_from_connection_fields,
    )

    server, receiver = webhook_server
    monkeypatch.delenv(WEBHOOK_URL_ENV, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_SEGMENTATION_ALERTS", raising=False)
    assert resolve_webhook() is None  # default: log only
    notify_failure(_context(RuntimeError("x")))
    assert receiver.received == []
    # From the environment.
    monkeypatch.setenv(WEBHOOK_URL_ENV, f"http://127.0.0.1:{server.server_port}/env")
    monkeypatch.setenv(WEBHOOK_TOKEN_ENV, "envtok")
    notify_failure(_context(RuntimeError("x")))
    assert [(r["path"], r["auth"]) for r in receiver.received] == [("/env", "Bearer envtok")]
    # From Airflow connection fields: full URL in host, or scheme/host/port parts.
    t = webhook_from_connection_fields("https://hooks.example.com/a/b", password="p")
    assert (t.url, t.token) == ("https://hooks.example.com/a/b", "p")
    t = webhook_from_connection_fields("alerts.internal", schema="http", port=8081)
    assert t.url == "http://alerts.internal:8081"
    assert webhook_from_connection_fields(None) is None


def test_alert_for_a_dag_level_failure() -> None:
    from include.segmentation.orchestration.alerts import build_alert

    class _Run:
        dag_id = "customer_segmentation"
        run_id = "scheduled__2024-07-01T02:00:00+00:00"
        logical_date = None

    alert = build_alert({"dag_run": _Run(), "reason": "task_failure"})
    assert alert.task_id is None and alert.run_id == _Run.run_id and alert.error == "task_failure"
    assert alert.text.startswith("[segmentation] DAG run failed in customer_segmentation")


class _FirstTry(_FakeTI):
    try_number = 1
    max_tries = 2


def test_permanent_errors_and_last_tries_say_not_retried() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from include.segmentation.orchestration.alerts import build_alert

    # What orchestration/tasks.py raises for a PermanentError: failed on try 1, never retried.
    permanent = build_alert({**_context(AirflowFailException("data quality (features) failed")), "ti": _FirstTry()})
    assert permanent.permanent and permanent.retried is False
    assert "not retried: permanent error" in permanent.text and "try 1/3" not in permanent.text
    assert permanent.payload()["retried"] is False

    # A transient error with retries left keeps the try count.
    transient = build_alert({**_context(ConnectionError("server closed the connection")), "ti": _FirstTry()})
    assert not transient.permanent and transient.retried is True
    assert "(try 1/3)" in transient.text and "not retried" not in transient.text

    # The last try of a transient error: no retries left.
    last = build_alert(_context(ConnectionError("server closed the connection")))
    assert last.retried is False and "not retried: no retries left (try 3/3)" in last.text

    # A subclass of AirflowFailException is permanent too; an unknown try count says nothing about tries.
    class _Sub(AirflowFailException):
        pass

    class _NoTries(_FakeTI):
        try_number = None

    assert build_alert({**_context(_Sub("x")), "ti": _NoTries()}).permanent
    unknown = build_alert({**_context(ValueError("x")), "ti": _NoTries()})
    assert unknown.retried is None and "(try" not in unknown.text and "retried" not in unknown.text


def test_the_alert_is_an_airflow_notifier(caplog) -> None:
    from airflow.sdk import BaseNotifier

    from include.segmentation.orchestration.alerts import SegmentationFailureNotifier

    notifier = SegmentationFailureNotifier(webhook=None)
    assert isinstance(notifier, BaseNotifier)
    exc = ValueError("login failed: password=hunter2 for +44 20 7946 0958")
    with caplog.at_level(logging.ERROR, logger="include.segmentation.orchestration.alerts"):
        notifier(_context(exc))  # how Airflow calls a notifier in on_failure_callback
    assert notifier.last_alert is not None and notifier.last_alert.task_id == "cluster"
    assert "hunter2" not in caplog.text and "7946" not in caplog.text and "password=***" in caplog.text
    assert "task cluster failed in customer_segmentation" in caplog.text


def test_the_dag_uses_the_notifier(monkeypatch) -> None:
    """customer_segmentation's on_failure_callback goes through SegmentationFailureNotifier."""
    import importlib.util
    from pathlib import Path

    from include.segmentation.orchestration import alerts

    calls: list[object] = []
    monkeypatch.setattr(alerts.SegmentationFailureNotifier, "notify", lambda self, ctx: calls.append(ctx))
    path = Path(__file__).resolve().parents[3] / "dags" / "customer_segmentation.py"
    spec = importlib.util.spec_from_file_location("_custseg_dag_for_alerts", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    callbacks = module.customer_segmentation().default_args["on_failure_callback"]
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    ctx = _context(ValueError("boom"))
    for cb in callbacks:
        cb(ctx)
    assert calls == [ctx]
