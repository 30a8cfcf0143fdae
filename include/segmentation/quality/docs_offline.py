"""Make a Great Expectations Data Docs site work offline.

GX's pages load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from CDNs and its logo from
S3, so on a machine without internet (or behind the Airflow UI of a closed network) the pages come out
unstyled and with broken images. GX ships its own styles, fonts and images in the site's ``static/``
folder; this module rewrites every page of a site to use only local files:

* every ``<script src="http(s)://...">`` and ``<link href="http(s)://...">`` (CDN JavaScript and CSS) is
  removed; the pages are plain HTML tables and text, readable without JavaScript;
* the tables GX fills in the browser with bootstrap-table (the index page's lists of validation
  results and expectation suites: an empty ``<table>`` plus a script holding the rows) are written
  out as static HTML rows, each linking to its page, and their now-useless script is dropped;
* the S3 logo images point at GX's own copy in ``static/images/``;
* a small local stylesheet, ``static/styles/offline.css``, replaces the layout Bootstrap gave;
* ``url(http(s)://...)`` in the site's stylesheets points at the local logo;
* references to the site's ``static/`` folder are made right at every page depth.

Navigation links (``<a href="https://greatexpectations.io">``) are left as they are: they are links a
reader may follow, not assets a page loads.
"""

from __future__ import annotations

import ast
import html as html_lib
import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OFFLINE_CSS = "offline.css"
_LOCAL_LOGO = "static/images/logo-long.png"

_REMOTE = r"""(?:https?:)?//[^"'\s>]+"""
_SCRIPT_REMOTE = re.compile(rf"""<script\b[^>]*\bsrc\s*=\s*["']{_REMOTE}["'][^>]*>\s*</script>\s*""", re.IGNORECASE)
_LINK_REMOTE = re.compile(rf"""<link\b[^>]*\bhref\s*=\s*["']{_REMOTE}["'][^>]*/?>\s*""", re.IGNORECASE)
_IMG_SRC_REMOTE = re.compile(rf"""(<img\b[^>]*\bsrc\s*=\s*["']){_REMOTE}(["'])""", re.IGNORECASE)
_CSS_URL_REMOTE = re.compile(rf"""url\(\s*["']?{_REMOTE}["']?\s*\)""", re.IGNORECASE)
_HEAD_END = re.compile(r"</head>", re.IGNORECASE)
# GX names its static files relative to the page, not always at the right depth (validation pages'
# favicon): every ``[../]*static/...`` reference is pointed at the site's own static/ folder.
_LOCAL_STATIC = re.compile(r"""(\b(?:src|href)\s*=\s*["'])(?:\./|\.\./)*static/([^"'?#]+)""", re.IGNORECASE)

# GX's bootstrap_table.j2: an empty table, then a script passing the columns and rows (Python reprs of
# lists of dicts) to bootstrap-table, which builds the table in the browser (from a CDN).
_BOOTSTRAP_TABLE = re.compile(
    r"""<script>\s*\$\('#(?P<id>[\w-]+)'\)\.bootstrapTable\(\s*Object\.assign\(\s*\{\s*"""
    r"""columns:\s*(?P<columns>\[.*?\]),\s*data:\s*(?P<data>\[.*?\]),\s*toolbar:.*?</script>\s*""",
    re.DOTALL,
)
_TAG = re.compile(r"<[^>]*>")

# What Bootstrap did for GX's layout, in a few lines: readable tables, spacing, a sticky-free nav.
_CSS = """/* Local replacement for the CDN stylesheets of Great Expectations' Data Docs (offline). */
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0; padding: 0 1rem 2rem; color: #212529; background: #fff; line-height: 1.45; }
a { color: #0b5cad; }
img { max-width: 100%; }
nav, .navbar { display: flex; flex-wrap: wrap; align-items: center; gap: 1rem; padding: .5rem 0;
               border-bottom: 1px solid #dee2e6; margin-bottom: 1rem; }
.container, .container-fluid { max-width: 1400px; margin: 0 auto; }
.row { display: flex; flex-wrap: wrap; }
.row > * { box-sizing: border-box; min-width: 0; padding: 0 .5rem; }
.col { flex: 1 1 0; }
.nav-tabs { list-style: none; display: flex; gap: 1.2rem; padding-left: 0; }
button[onclick^="clearTableFilters"] { display: none; }  /* bootstrap-table's filters (not loaded) */
.card { border: 1px solid #dee2e6; border-radius: 4px; padding: .75rem; margin-bottom: 1rem; }
.card-header { font-weight: 600; border-bottom: 1px solid #dee2e6; margin-bottom: .5rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { border: 1px solid #dee2e6; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f1f3f5; }
tr:nth-child(even) td { background: #fafbfc; }
.text-danger, .fa-times { color: #b02a37; }
.text-success, .fa-check-circle { color: #146c43; }
.badge { display: inline-block; padding: .1em .45em; border-radius: 3px; background: #e9ecef; font-size: .85em; }
.d-none, .sr-only { display: none; }
code, pre { background: #f6f8fa; padding: .1em .3em; border-radius: 3px; }
"""
# Bootstrap's 12-column grid (col-N, col-xs-N ... col-xl-N), which GX's page layout is written in.
_GRID = [("", 0), ("xs-", 0), ("sm-", 576), ("md-", 768), ("lg-", 992), ("xl-", 1200)]
_CSS += "\n".join(
    (f"@media (min-width: {width}px) {{ " if width else "")
    + " ".join(f".col-{size}{n} {{ flex: 0 0 {n / 12:.4%}; max-width: {n / 12:.4%}; }}" for n in range(1, 13))
    + (" }" if width else "")
    for size, width in _GRID
) + "\n"


def _relative(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def _cell(row: dict[str, Any], field: str, link: str | None) -> str:
    """One table cell: GX's rendered HTML for ``field``, its text where GX shows only an icon (the
    status column's Font Awesome icon), linked to the row's page unless it holds a link itself."""
    value = row.get(field)
    content = "" if value is None else value if isinstance(value, str) else html_lib.escape(str(value))
    label = row.get(f"_{field}_text")
    if label is not None and not _TAG.sub("", content).strip():
        content += html_lib.escape(str(label))
    if link and "<a " not in content.lower():
        content = f'<a href="{html_lib.escape(link, quote=True)}">{content}</a>'
    return f"<td>{content}</td>"


def _static_rows(columns: list[dict[str, Any]], data: list[dict[str, Any]]) -> str:
    """``<thead>`` and ``<tbody>`` of a bootstrap-table's columns and rows."""
    head = "".join(f"<th>{html_lib.escape(str(c.get('title') or c.get('field') or ''))}</th>" for c in columns)
    body = []
    for row in data:
        link = row.get("_table_row_link_path")
        link = str(link) if link else None
        body.append("<tr>" + "".join(_cell(row, str(c.get("field")), link) for c in columns) + "</tr>")
    return f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"


def static_tables(html: str) -> str:
    """``html`` with every bootstrap-table filled in as static rows and its script removed.

    A table whose script cannot be read (another GX template) is left as it is.
    """
    for m in list(_BOOTSTRAP_TABLE.finditer(html)):
        try:
            columns, data = ast.literal_eval(m.group("columns")), ast.literal_eval(m.group("data"))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            log.debug("data quality: bootstrap-table %s left as it is (unreadable rows)", m.group("id"))
            continue
        if not isinstance(columns, list) or not isinstance(data, list):
            continue
        if not all(isinstance(x, dict) for x in (*columns, *data)):
            continue
        table = re.compile(rf"""(<table\b[^>]*\bid\s*=\s*["']{re.escape(m.group("id"))}["'][^>]*>)\s*(</table>)""")
        empty = table.search(html)
        if empty:
            html = html[: empty.end(1)] + _static_rows(columns, data) + html[empty.start(2):]
            html = html.replace(m.group(0), "", 1)
    return html


def offline_html(html: str, site: Path, page: Path) -> str:
    """``html`` of ``page`` (inside ``site``) with every remote asset removed or made local."""
    html = static_tables(html)
    html = _SCRIPT_REMOTE.sub("", html)
    html = _LINK_REMOTE.sub("", html)
    html = _LOCAL_STATIC.sub(lambda m: f"{m.group(1)}{_relative(site / 'static' / m.group(2), page)}", html)
    logo = _relative(site / _LOCAL_LOGO, page)
    html = _IMG_SRC_REMOTE.sub(lambda m: f"{m.group(1)}{logo}{m.group(2)}", html)
    css = _relative(site / "static" / "styles" / OFFLINE_CSS, page)
    link = f'<link rel="stylesheet" href="{css}">\n'
    if link not in html:
        html, n = _HEAD_END.subn(link + "</head>", html, count=1)
        if not n:
            html = link + html
    return html


def make_offline(site: Path) -> int:
    """Rewrite every page and stylesheet of the Data Docs ``site`` to load nothing from the internet.

    Returns the number of HTML pages rewritten. Never raises: Data Docs are a by-product of a run,
    so a failure is logged and the site is left as GX wrote it.
    """
    try:
        styles = site / "static" / "styles"
        styles.mkdir(parents=True, exist_ok=True)
        (styles / OFFLINE_CSS).write_text(_CSS, encoding="utf-8")
        logo = site / _LOCAL_LOGO
        for sheet in styles.glob("*.css"):
            text = sheet.read_text(encoding="utf-8")
            local = _CSS_URL_REMOTE.sub(f"url('{_relative(logo, sheet)}')", text)
            if local != text:
                sheet.write_text(local, encoding="utf-8")
        pages = 0
        for page in site.rglob("*.html"):
            text = page.read_text(encoding="utf-8")
            local = offline_html(text, site, page)
            if local != text:
                page.write_text(local, encoding="utf-8")
            pages += 1
        return pages
    except OSError as exc:
        log.error("data quality: Data Docs in %s could not be made offline: %s", site, exc)
        return 0
