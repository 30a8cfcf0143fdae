"""Great Expectations Data Docs work offline and are served by the UI plugin.

A real GX site is built (a pandas suite with a failing expectation, so validation pages have tables),
through ``quality.gx.build_docs``, which makes the site offline: no page or stylesheet loads anything
from ``http(s)://`` any more, and every local asset a page names exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from include.segmentation.quality.gx import build_docs, ephemeral_context, gx_module, run_identifier, run_suite

ROOT = Path(__file__).resolve().parents[3]
ASSET_REF = re.compile(r"""<(?:script|img|link|iframe|source)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)""", re.I)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEGMENTATION_ARTIFACTS_DIR", str(tmp_path))
    docs = tmp_path / "data_docs" / "2024-06-01" / "seg_20240601_test" / "features"
    gx = gx_module()
    context = ephemeral_context(docs)
    ds = context.data_sources.add_pandas(name="frame_source")
    batch = ds.add_dataframe_asset(name="frame").add_batch_definition_whole_dataframe("frame")
    frame = pd.DataFrame({"customer_id": ["C1", "C2", "C3"], "recency_days": [3.0, -1.0, 40.0]})
    expectations = [
        gx.expectations.ExpectColumnValuesToNotBeNull(column="customer_id"),
        gx.expectations.ExpectColumnValuesToBeBetween(column="recency_days", min_value=0),
    ]
    run_suite(gx, context, "features", batch, expectations, run_identifier("seg_20240601_test"),
              "SUMMARY", {"dataframe": frame})
    index = build_docs(context, docs)
    assert index is not None and index.is_file()
    return docs


def test_pages_load_no_remote_assets(site: Path) -> None:
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 3  # index, the suite, the validation result
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for ref in ASSET_REF.findall(text):
            assert not re.match(r"(?:https?:)?//", ref), f"{page.relative_to(site)} loads {ref}"
            local = (page.parent / ref.split("?")[0]).resolve()
            assert local.is_file(), f"{page.relative_to(site)} names a missing asset {ref}"
        assert "offline.css" in text
    for sheet in site.rglob("*.css"):
        for ref in CSS_URL.findall(sheet.read_text(encoding="utf-8")):
            assert not re.match(r"(?:https?:)?//", ref), f"{sheet.name} loads {ref}"
    # The validation result is still readable as plain HTML: the failed expectation is in it.
    validation = next(p for p in pages if "validations" in p.parts)
    assert "recency_days" in validation.read_text(encoding="utf-8")


def test_plugin_serves_the_runs_data_docs(site: Path) -> None:
    sys.path.insert(0, str(ROOT / "plugins"))
    import segment_report_plugin as plugin

    app = plugin.create_app()
    app.dependency_overrides[plugin.require_dag_read] = lambda: None
    client = TestClient(app)
    listing = client.get("/data-docs/2024-06-01/").text
    assert "href='seg_20240601_test/features/index.html'" in listing
    index = client.get("/data-docs/2024-06-01/seg_20240601_test/features/index.html")
    assert index.status_code == 200 and "offline.css" in index.text
    for ref in ASSET_REF.findall(index.text):
        if not ref.startswith("#"):
            assert client.get(f"/data-docs/2024-06-01/seg_20240601_test/features/{ref}").status_code == 200, ref
