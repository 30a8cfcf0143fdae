"""The Airflow UI plugin: registration shape, and the routes it serves (auth checked separately)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "plugins"))

import segment_report_plugin as plugin  # noqa: E402


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEGMENTATION_ARTIFACTS_DIR", str(tmp_path))
    folder = tmp_path / "reports"
    folder.mkdir()
    return folder


@pytest.fixture
def client() -> TestClient:
    app = plugin.create_app()
    app.dependency_overrides[plugin.require_dag_read] = lambda: None  # Airflow's auth is tested in integration
    return TestClient(app)


def test_plugin_registers_a_nav_view_and_a_fastapi_app() -> None:
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES

    p = plugin.SegmentReportPlugin
    assert p.name == "segment_report"
    [app] = p.fastapi_apps
    assert app["url_prefix"] == "/segment-report" and app["name"]
    assert not any(app["url_prefix"].startswith(r) for r in RESERVED_URL_PREFIXES)
    [view] = p.external_views
    assert view["destination"] == "nav" and view["category"] == "browse" and view["url_route"] == "segment-report"
    assert view["href"] == "segment-report/", "relative to the UI base URL (works behind a proxy)"


def test_every_route_requires_airflow_auth(reports: Path) -> None:
    raw = TestClient(plugin.create_app())
    for path in ("/", "/reports", "/reports/2024-06-01"):
        assert raw.get(path).status_code == 401, path


def test_latest_report_is_served(client: TestClient, reports: Path) -> None:
    r = client.get("/")
    assert r.status_code == 404 and "No report yet" in r.text
    (reports / "latest.html").write_text("<html>latest S2</html>", encoding="utf-8")
    r = client.get("/")
    assert r.status_code == 200 and r.text == "<html>latest S2</html>"
    assert r.headers["content-type"].startswith("text/html") and r.headers["cache-control"] == "no-store"


def test_reports_by_date_and_index(client: TestClient, reports: Path) -> None:
    (reports / "report_2024-06-01.html").write_text("<html>S2</html>", encoding="utf-8")
    (reports / "report_2024-05-31.html").write_text("<html>S1</html>", encoding="utf-8")
    assert client.get("/reports/2024-05-31").text == "<html>S1</html>"
    assert client.get("/reports/2024-07-01").status_code == 404
    assert client.get("/reports/not-a-date").status_code == 400
    assert client.get("/reports/..%2F..%2Fetc%2Fpasswd").status_code in (400, 404)
    index = client.get("/reports").text
    assert index.index("2024-06-01") < index.index("2024-05-31")
    assert "href='reports/2024-06-01'" in index and "href='/" not in index, "links stay relative"
