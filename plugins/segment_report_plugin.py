"""Airflow UI plugin: the latest segmentation report under Browse -> "Segment report".

Airflow 3 plugins (3.1+) add UI pages as ``external_views`` and serve content from ``fastapi_apps``
mounted in the API server. This plugin mounts a small FastAPI app at ``/segment-report``:

- ``/segment-report/``                     the latest report (``latest.html``)
- ``/segment-report/reports``              every rendered report, newest first
- ``/segment-report/reports/YYYY-MM-DD``   the report of one snapshot
- ``/segment-report/data-docs/``           every run's Great Expectations Data Docs (by date, run, stage)
- ``/segment-report/data-docs/<path>``      a Data Docs page or asset (``settings.data_docs_root()``)

and registers an external view in the ``browse`` menu that shows ``/segment-report/`` in an iframe.
Every served report gets a small navigation bar (latest report, all reports, Data Docs), so older
snapshots are one click away. Data Docs are made offline by ``quality.docs_offline`` (no CDN assets).
Reports are the self-contained files ``render_report`` writes to ``<artifacts>/reports``
(``SEGMENTATION_ARTIFACTS_DIR`` or ``<project>/artifacts``). Plugin endpoints are not protected
by Airflow on their own: every route requires a logged-in user allowed to read the
``customer_segmentation`` DAG (the UI's session cookie or a bearer token, via Airflow's own
security dependencies).

Kept light at import time (FastAPI only): Airflow imports plugins in several processes.
"""

from __future__ import annotations

import html
import re
from datetime import date
from pathlib import Path
from typing import Annotated

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

URL_PREFIX = "/segment-report"
DAG_ID = "customer_segmentation"


_bearer = HTTPBearer(auto_error=False)


async def require_dag_read(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Dependency: a logged-in user allowed to read the segmentation DAG, checked by Airflow's auth manager.

    The same checks as Airflow's own API routes (``get_user`` then ``requires_access_dag``): 401
    without a valid token or session cookie, 403 without read access to the DAG. Imported lazily so
    that loading the plugin stays cheap.
    """
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag

    user = await get_user(request, None, bearer)
    await run_in_threadpool(requires_access_dag("GET", param_dag_id=DAG_ID), request, user)


def _reports_dir() -> Path:
    """``settings.reports_dir()``, read on every request (the settings module imports nothing heavy)."""
    from include.segmentation.settings import reports_dir

    return reports_dir()


def _data_docs_root() -> Path:
    """``settings.data_docs_root()``, read on every request."""
    from include.segmentation.settings import data_docs_root

    return data_docs_root()


_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_NAV_STYLE = (
    "font:14px system-ui,sans-serif;padding:.45rem .9rem;background:#f1f3f5;border-bottom:1px solid #d5dbe1;"
    "display:flex;gap:1.2rem;align-items:center"
)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
# What the Data Docs route serves: GX's pages and the local assets docs_offline leaves them.
_DOCS_TYPES = {
    ".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript",
    ".json": "application/json", ".png": "image/png", ".gif": "image/gif", ".svg": "image/svg+xml",
    ".ico": "image/x-icon", ".otf": "font/otf", ".woff": "font/woff", ".woff2": "font/woff2",
}


def _nav(up: str, day: date | None) -> str:
    """The navigation bar injected into a served report; ``up`` leads back to ``/segment-report/``."""
    docs = f"{up}data-docs/{day.isoformat()}/" if day else f"{up}data-docs/"
    label = f"Data Docs of {day.isoformat()}" if day else "Data Docs"
    return (
        f"<nav class='segment-report-nav' style='{_NAV_STYLE}'>"
        f"<a href='{up or './'}'>Latest report</a>"
        f"<a href='{up}reports'>All reports (older snapshots)</a>"
        f"<a href='{docs}'>{label}</a></nav>"
    )


def _report_page(path: Path, up: str, day: date | None) -> HTMLResponse:
    """The report file with the navigation bar right after ``<body>`` (or first, without one)."""
    text = path.read_text(encoding="utf-8")
    nav = _nav(up, day)
    m = _BODY_OPEN.search(text)
    text = text[: m.end()] + nav + text[m.end():] if m else nav + text
    return HTMLResponse(text, headers=_HEADERS)


def _html_file(path: Path) -> FileResponse:
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=_HEADERS)


def _docs_listing(root: Path, folder: Path) -> HTMLResponse:
    """Every Data Docs site (a folder with ``index.html``) under ``folder``, newest date first."""
    rel = folder.relative_to(root)
    depth = len(rel.parts)
    up = "../" * (depth + 1)
    sites = sorted((p.parent for p in folder.rglob("index.html")), key=lambda p: p.relative_to(root).parts)
    sites.sort(key=lambda p: p.relative_to(root).parts[0] if p != root else "", reverse=True)
    items = "".join(
        f"<li><a href='{html.escape(site.relative_to(folder).as_posix())}/index.html'>"
        f"{html.escape(' / '.join(site.relative_to(root).parts))}</a></li>"
        for site in sites
        if site != folder
    ) or "<li>No Data Docs yet: each run's validate_raw, build_features and quality_gate write them.</li>"
    title = "Data Docs" + (f" of {html.escape(rel.as_posix())}" if depth else "")
    body = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head>"
        "<body style='font-family:system-ui,sans-serif;margin:2rem;color:#1f2933'>"
        f"<h1 style='font-size:1.3rem'>{title}</h1>"
        f"<p><a href='{up}'>Latest report</a> · <a href='{up}reports'>All reports</a>"
        + (f" · <a href='{'../' * depth}'>All Data Docs</a>" if depth else "")
        + "</p><p>Great Expectations validation results, by snapshot date / run / stage.</p>"
        f"<ul>{items}</ul></body></html>"
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


def _not_found(message: str, index_href: str) -> HTMLResponse:
    body = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Segment report</title></head>"
        "<body style='font-family:system-ui,sans-serif;margin:2rem;color:#1f2933'>"
        f"<h1 style='font-size:1.3rem'>Segment report</h1><p>{html.escape(message)}</p>"
        f"<p><a href='{index_href}'>All reports</a></p></body></html>"
    )
    return HTMLResponse(body, status_code=404)


def create_app() -> FastAPI:
    """The FastAPI app the plugin mounts at ``/segment-report``."""
    app = FastAPI(title="Segment report", docs_url=None, redoc_url=None, openapi_url=None)
    guard = [Depends(require_dag_read)]

    @app.get("/", response_class=HTMLResponse, dependencies=guard)
    def latest() -> Response:
        path = _reports_dir() / "latest.html"
        if not path.is_file():
            return _not_found(
                "No report yet: the customer_segmentation DAG writes one after each published snapshot.",
                "reports",
            )
        return _report_page(path, "", None)

    @app.get("/reports", response_class=HTMLResponse, dependencies=guard)
    def index() -> HTMLResponse:
        from include.segmentation.explain import list_reports, report_filename

        dates = list_reports(_reports_dir())
        items = "".join(
            f"<li><a href='reports/{d.isoformat()}'>{d.isoformat()}</a> "
            f"<span style='color:#6b7785'>({html.escape(report_filename(d))})</span></li>"
            for d in dates
        ) or "<li>No report yet.</li>"
        body = (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Segment reports</title></head>"
            "<body style='font-family:system-ui,sans-serif;margin:2rem;color:#1f2933'>"
            "<h1 style='font-size:1.3rem'>Segment reports</h1>"
            "<p><a href='./'>Latest report</a> · <a href='data-docs/'>Data Docs</a></p>"
            f"<ul>{items}</ul></body></html>"
        )
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    @app.get("/reports/{snapshot_date}", response_class=HTMLResponse, dependencies=guard)
    def one(snapshot_date: str) -> Response:
        from include.segmentation.explain import report_filename

        try:
            day = date.fromisoformat(snapshot_date)
        except ValueError:
            raise HTTPException(status_code=400, detail="snapshot date must be YYYY-MM-DD") from None
        path = _reports_dir() / report_filename(day)
        if not path.is_file():
            return _not_found(f"No report for snapshot {day.isoformat()}.", "../reports")
        return _report_page(path, "../", day)

    @app.get("/data-docs", dependencies=guard)
    def data_docs_root(request: Request) -> Response:
        return RedirectResponse(str(request.url.path) + "/", status_code=307)

    @app.get("/data-docs/{doc_path:path}", dependencies=guard)
    def data_docs(doc_path: str, request: Request) -> Response:
        root = _data_docs_root().resolve()
        target = (root / doc_path).resolve()
        if target != root and not target.is_relative_to(root):
            raise HTTPException(status_code=404, detail="not found")
        if target.is_dir():
            if not request.url.path.endswith("/"):
                return RedirectResponse(str(request.url.path) + "/", status_code=307)
            return _docs_listing(root, target)
        if not root.is_dir() and not doc_path:
            return _docs_listing(root, root)
        media = _DOCS_TYPES.get(target.suffix.lower())
        if media is None or not target.is_file():
            raise HTTPException(status_code=404, detail="not found")
        return FileResponse(target, media_type=media, headers=_HEADERS)

    return app


class SegmentReportPlugin(AirflowPlugin):
    """Makes the latest segmentation report reachable from the Airflow UI (Browse -> Segment report)."""

    name = "segment_report"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Segment report"}]
    external_views = [
        {
            "name": "Segment report",
            # Relative (no leading slash): resolved against the UI's base URL, so it works behind a proxy.
            "href": URL_PREFIX.lstrip("/") + "/",
            "destination": "nav",
            "category": "browse",
            "url_route": "segment-report",
        }
    ]
