"""Data Docs offline: the tables GX fills with bootstrap-table (from a CDN) are written out as static rows.

The page below has the shape GX's ``bootstrap_table.j2`` renders (an empty ``<table>``, a script that
defines helpers, a script passing Python-repr columns and rows to ``bootstrapTable``); the real GX
site is checked end to end in tests/integration/orchestration/test_data_docs_offline.py and, in a
browser with no network, in tests/integration/stack/test_ui_backfill.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from include.segmentation.quality.docs_offline import make_offline, static_tables

_COLUMNS = [
    {"field": "validation_success", "title": "Status", "sortable": "true"},
    {"field": "run_name", "title": "Run Name", "sortable": "true"},
    {"field": "expectation_suite_name", "title": "Expectation Suite", "sortable": "true"},
]
_ROWS = [
    {
        "validation_success": '\n <span><i class="fas fa-times text-danger"></i></span>\n ',
        "_validation_success_text": "Failed",
        "run_name": "seg_20240601_a",
        "expectation_suite_name": '<a href="expectations/raw_customers.html">raw_customers</a>',
        "_table_row_link_path": "validations/raw_customers/seg_20240601_a/x.html",
    },
    {
        "validation_success": '<span><i class="fas fa-check-circle"></i></span>',
        "_validation_success_text": "Success",
        "run_name": "seg_20240601_a",
        "expectation_suite_name": '<a href="expectations/raw_transactions.html">raw_transactions</a>',
        "_table_row_link_path": "validations/raw_transactions/seg_20240601_a/y.html",
    },
]


def _page(table_id: str = "section-1-content-block-2-1-body-table", data: str | None = None) -> str:
    data = repr(_ROWS) if data is None else data
    return f"""<html><head><title>Data Docs</title></head><body>
<table id="{table_id}" class="table-sm ge-index-page-validation-results-table" data-toggle="table" >
</table>
<script>
function clearTableFilters(tableId) {{ $(`#${{tableId}}`).bootstrapTable('resetSearch'); }}
</script>
<script>
  $('#{table_id}').bootstrapTable(
    Object.assign(
      {{
        columns: {_COLUMNS!r},
        data: {data},
        toolbar: '#{table_id}-toolbar'
      }},
      {{'search': 'true', 'sortOrder': 'desc'}}
    )
  );
</script>
</body></html>"""


def _rows(html: str) -> list[str]:
    body = re.search(r"<tbody>(.*)</tbody>", html, re.DOTALL)
    assert body, "no static rows"
    return re.findall(r"<tr>(.*?)</tr>", body.group(1), re.DOTALL)


def test_rows_are_written_out_and_the_script_dropped() -> None:
    html = static_tables(_page())
    assert "Object.assign" not in html  # the script that needed bootstrap-table is gone ...
    assert "function clearTableFilters" in html  # ... GX's other scripts are left alone
    assert re.search(r"<thead><tr><th>Status</th><th>Run Name</th><th>Expectation Suite</th></tr></thead>", html)
    rows = _rows(html)
    assert len(rows) == 2
    first = rows[0]
    # Icon-only status cell: its text is added (Font Awesome is a CDN asset); the cell links to the row's page.
    assert re.search(r'<td><a href="validations/raw_customers/seg_20240601_a/x.html">.*Failed</a></td>', first, re.DOTALL)
    assert '<a href="validations/raw_customers/seg_20240601_a/x.html">seg_20240601_a</a>' in first
    # A cell holding its own link keeps it and is not wrapped in another.
    assert '<td><a href="expectations/raw_customers.html">raw_customers</a></td>' in first
    assert "Success" in rows[1] and "validations/raw_transactions/seg_20240601_a/y.html" in rows[1]


def test_values_that_are_not_strings_are_escaped_text() -> None:
    data = repr([{"run_name": "<b>x</b>", "validation_success": 3, "expectation_suite_name": None}])
    rows = _rows(static_tables(_page(data=data)))
    assert rows == ["<td>3</td><td><b>x</b></td><td></td>"]


def test_an_unreadable_table_is_left_as_it_is() -> None:
    page = _page(data="[{'run_name': undefined_js_name}]")
    assert static_tables(page) == page
    other_table = _page(table_id="other").replace('id="other"', 'id="renamed"')
    assert static_tables(other_table) == other_table  # no table of that id: rows and script stay


def test_make_offline_fills_the_index_once(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(_page(), encoding="utf-8")
    assert make_offline(site) == 1
    once = (site / "index.html").read_text(encoding="utf-8")
    assert len(_rows(once)) == 2 and "offline.css" in once
    make_offline(site)
    assert (site / "index.html").read_text(encoding="utf-8") == once  # idempotent
