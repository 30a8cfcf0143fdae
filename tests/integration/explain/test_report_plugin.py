"""The report plugin inside a real Airflow API server app: Airflow's login guards it, the UI lists it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def api(airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Airflow's API server app (core part) with the project's plugins and one simple-auth viewer."""
    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER",
                       "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "report_viewer:viewer")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(tmp_path / "passwords.json"))
    monkeypatch.setenv("SEGMENTATION_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    from airflow.api_fastapi.app import create_app, purge_cached_app

    purge_cached_app()
    app = create_app(apps="core")
    client = TestClient(app)
    password = json.loads((tmp_path / "passwords.json").read_text())["report_viewer"]
    token = client.post("/auth/token", json={"username": "report_viewer", "password": password}).json()["access_token"]
    yield client, token, tmp_path / "artifacts" / "reports"
    purge_cached_app()


def test_report_is_served_to_logged_in_users_only(api) -> None:
    client, token, reports = api
    reports.mkdir(parents=True)
    (reports / "latest.html").write_text("<!DOCTYPE html><title>latest</title>", encoding="utf-8")
    (reports / "report_2024-06-01.html").write_text("<!DOCTYPE html><title>S</title>", encoding="utf-8")
    assert client.get("/segment-report/").status_code == 401
    assert client.get("/segment-report/reports/2024-06-01").status_code == 401
    bad = client.get("/segment-report/", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code in (401, 403)
    ok = client.get("/segment-report/", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and "<title>latest</title>" in ok.text
    # The UI's iframe sends the session cookie, not a header.
    client.cookies.set("_token", token)
    assert client.get("/segment-report/reports/2024-06-01").text.endswith("<title>S</title>")
    assert "2024-06-01" in client.get("/segment-report/reports").text


def test_ui_lists_the_external_view(api) -> None:
    client, token, _ = api
    plugins = client.get("/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}).json()["plugins"]
    [mine] = [p for p in plugins if p["name"] == "segment_report"]
    assert mine["fastapi_apps"][0]["url_prefix"] == "/segment-report"
    [view] = mine["external_views"]
    assert view["href"] == "segment-report/" and view["url_route"] == "segment-report" and view["destination"] == "nav"
    errors = client.get("/api/v2/plugins/importErrors", headers={"Authorization": f"Bearer {token}"}).json()
    assert not [e for e in errors["import_errors"] if "segment_report" in e["source"]]
