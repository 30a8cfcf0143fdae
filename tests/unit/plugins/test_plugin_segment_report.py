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
    assert r.status_code == 200 and r.text.startswith("<nav") and r.text.endswith("<html>latest S2</html>")
    assert r.headers["content-type"].startswith("text/html") and r.headers["cache-control"] == "no-store"


def test_reports_by_date_and_index(client: TestClient, reports: Path) -> None:
    (reports / "report_2024-06-01.html").write_text("<html>S2</html>", encoding="utf-8")
    (reports / "report_2024-05-31.html").write_text("<html>S1</html>", encoding="utf-8")
    assert client.get("/reports/2024-05-31").text.endswith("<html>S1</html>")
    assert client.get("/reports/2024-07-01").status_code == 404
    assert client.get("/reports/not-a-date").status_code == 400
    assert client.get("/reports/..%2F..%2Fetc%2Fpasswd").status_code in (400, 404)
    index = client.get("/reports").text
    assert index.index("2024-06-01") < index.index("2024-05-31")
    assert "href='reports/2024-06-01'" in index and "href='/" not in index, "links stay relative"


def test_served_reports_link_back_to_older_reports_and_data_docs(client: TestClient, reports: Path) -> None:
    page = "<!DOCTYPE html><html><head><title>r</title></head><body class='x'><h1>Segments</h1></body></html>"
    (reports / "latest.html").write_text(page, encoding="utf-8")
    (reports / "report_2024-06-01.html").write_text(page, encoding="utf-8")
    latest = client.get("/").text
    # The bar sits right after <body>, the report itself is unchanged.
    assert "<body class='x'><nav class='segment-report-nav'" in latest and "<h1>Segments</h1>" in latest
    assert "href='reports'" in latest and "href='data-docs/'" in latest
    dated = client.get("/reports/2024-06-01").text
    assert "href='../reports'" in dated and "href='../data-docs/2024-06-01/'" in dated and "href='../'" in dated
    assert "href='/" not in latest + dated, "links stay relative (the UI may sit behind a proxy)"


@pytest.fixture
def data_docs(tmp_path: Path, reports: Path) -> Path:
    site = tmp_path / "data_docs" / "2024-06-01" / "seg_20240601_abc" / "raw_window"
    (site / "static" / "styles").mkdir(parents=True)
    (site / "index.html").write_text("<html><body>GX index</body></html>", encoding="utf-8")
    (site / "static" / "styles" / "offline.css").write_text("body{}", encoding="utf-8")
    older = tmp_path / "data_docs" / "2024-05-31" / "seg_20240531_def" / "features"
    older.mkdir(parents=True)
    (older / "index.html").write_text("<html>older</html>", encoding="utf-8")
    return tmp_path / "data_docs"


def test_data_docs_are_listed_and_served(client: TestClient, data_docs: Path) -> None:
    listing = client.get("/data-docs/").text
    assert listing.index("2024-06-01") < listing.index("2024-05-31"), "newest first"
    assert "href='2024-06-01/seg_20240601_abc/raw_window/index.html'" in listing
    one_day = client.get("/data-docs/2024-06-01/").text
    assert "href='seg_20240601_abc/raw_window/index.html'" in one_day and "2024-05-31" not in one_day
    page = client.get("/data-docs/2024-06-01/seg_20240601_abc/raw_window/index.html")
    assert page.status_code == 200 and page.text == "<html><body>GX index</body></html>"
    assert page.headers["content-type"].startswith("text/html")
    css = client.get("/data-docs/2024-06-01/seg_20240601_abc/raw_window/static/styles/offline.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/data-docs", follow_redirects=False).status_code == 307
    assert client.get("/data-docs/2024-06-01", follow_redirects=False).status_code == 307
    assert client.get("/data-docs/2024-06-01/nope.html").status_code == 404
    assert client.get("/data-docs/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert client.get("/data-docs/../reports/x.html").status_code in (400, 404)


def test_data_docs_require_airflow_auth(data_docs: Path) -> None:
    raw = TestClient(plugin.create_app())
    for path in ("/data-docs/", "/data-docs/2024-06-01/seg_20240601_abc/raw_window/index.html"):
        assert raw.get(path).status_code == 401, path


def test_data_docs_listing_without_any_docs(client: TestClient, reports: Path) -> None:
    r = client.get("/data-docs/")
    assert r.status_code == 200 and "No Data Docs yet" in r.text
