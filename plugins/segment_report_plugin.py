"""Airflow UI plugin: the latest segmentation report under Browse -> "Segment report".

Airflow 3 plugins (3.1+) add UI pages as ``external_views`` and serve content from ``fastapi_apps``
mounted in the API server. This plugin mounts a small FastAPI app at ``/segment-report``:

- ``/segment-report/``                     the latest report (``latest.html``)
- ``/segment-report/reports``              every rendered report, newest first
- ``/segment-report/reports/YYYY-MM-DD``   the report of one snapshot

and registers an external view in the ``browse`` menu that shows ``/segment-report/`` in an iframe.
Reports are the self-contained files ``render_report`` writes to ``<artifacts>/reports``
(``SEGMENTATION_ARTIFACTS_DIR`` or ``<project>/artifacts``). Plugin endpoints are not protected
by Airflow on their own: every route requires a logged-in user allowed to read the
``customer_segmentation`` DAG (the UI's session cookie or a bearer token, via Airflow's own
security dependencies).

Kept light at import time (FastAPI only): Airflow imports plugins in several processes.
"""

from __future__ import annotations

import html
from datetime import date
from pathlib import Path
from typing import Annotated

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
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


def _html_file(path: Path) -> FileResponse:
    return FileResponse(
        path,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


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
        return _html_file(path)

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
            "<h1 style='font-size:1.3rem'>Segment reports</h1><p><a href='./'>Latest report</a></p>"
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
        return _html_file(path)

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
