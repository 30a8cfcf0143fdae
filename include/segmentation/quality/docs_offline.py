"""Make a Great Expectations Data Docs site work offline.

GX's pages load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from CDNs and its logo from
S3, so on a machine without internet (or behind the Airflow UI of a closed network) the pages come out
unstyled and with broken images. GX ships its own styles, fonts and images in the site's ``static/``
folder; this module rewrites every page of a site to use only local files:

* every ``<script src="http(s)://...">`` and ``<link href="http(s)://...">`` (CDN JavaScript and CSS) is
  removed; the pages are plain HTML tables and text, readable without JavaScript;
* the S3 logo images point at GX's own copy in ``static/images/``;
* a small local stylesheet, ``static/styles/offline.css``, replaces the layout Bootstrap gave;
* ``url(http(s)://...)`` in the site's stylesheets points at the local logo;
* references to the site's ``static/`` folder are made right at every page depth.

Navigation links (``<a href="https://greatexpectations.io">``) are left as they are: they are links a
reader may follow, not assets a page loads.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

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

# What Bootstrap did for GX's layout, in a few lines: readable tables, spacing, a sticky-free nav.
_CSS = """/* Local replacement for the CDN stylesheets of Great Expectations' Data Docs (offline). */
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0; padding: 0 1rem 2rem; color: #212529; background: #fff; line-height: 1.45; }
a { color: #0b5cad; }
img { max-width: 100%; }
nav, .navbar { display: flex; flex-wrap: wrap; align-items: center; gap: 1rem; padding: .5rem 0;
               border-bottom: 1px solid #dee2e6; margin-bottom: 1rem; }
.container, .container-fluid { max-width: 1400px; margin: 0 auto; }
.row { display: flex; flex-wrap: wrap; gap: 1rem; }
.col, [class^="col-"], [class*=" col-"] { flex: 1 1 300px; min-width: 0; }
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


def _relative(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def offline_html(html: str, site: Path, page: Path) -> str:
    """``html`` of ``page`` (inside ``site``) with every remote asset removed or made local."""
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
