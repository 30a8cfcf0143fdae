"""The segmentation report: one self-contained HTML file per published snapshot.

``render_report`` reads the published tables of snapshot S (``report_data``), builds the page
(``report_html``) and writes ``<reports>/report_<S>.html``; ``latest.html`` is replaced too when S
is the newest published snapshot (a backfill never hides newer segments). ``<reports>`` is
``settings.reports_dir()``: ``$SEGMENTATION_ARTIFACTS_DIR/reports`` or ``<project>/artifacts/reports``.
The file holds aggregates and an anonymous 2-D projection of a sample of customers: no customer id,
e-mail or phone ever reaches it.
"""

from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path

from sqlalchemy import Engine

from include.segmentation.explain.report_data import ReportError, load_report_data
from include.segmentation.explain.report_html import build_html
from include.segmentation.settings import reports_dir


def report_filename(snapshot_date: date) -> str:
    """``report_YYYY-MM-DD.html``."""
    return f"report_{snapshot_date.isoformat()}.html"


def _write_atomic(path: Path, content: str) -> None:
    """Write ``content`` to a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_report(engine: Engine, snapshot_date: date, out_dir: Path | None = None) -> Path:
    """Render the published snapshot ``snapshot_date`` to ``report_<S>.html`` and return its path.

    ``latest.html`` next to it is replaced when S is the newest published snapshot. Files are
    written atomically (temporary file + rename), so a reader never sees half a report.
    """
    data = load_report_data(engine, snapshot_date)
    folder = Path(out_dir) if out_dir is not None else reports_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the report folder {folder}: {exc.strerror}") from exc
    content = build_html(data)
    path = folder / report_filename(snapshot_date)
    _write_atomic(path, content)
    if data.newest:
        _write_atomic(folder / "latest.html", content)
    return path


def list_reports(folder: Path | None = None) -> list[date]:
    """Snapshot dates with a report in ``folder`` (newest first)."""
    folder = Path(folder) if folder is not None else reports_dir()
    out = []
    for p in folder.glob("report_*.html"):
        try:
            out.append(date.fromisoformat(p.stem.removeprefix("report_")))
        except ValueError:
            continue
    return sorted(out, reverse=True)
