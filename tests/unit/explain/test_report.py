"""The HTML report from hand-made published data: sections, escaping, offline-safety, files."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from include.segmentation.explain import list_reports, report_filename, reports_dir
from include.segmentation.explain.report import _write_atomic
from include.segmentation.explain.report_data import ReportData
from include.segmentation.explain.report_format import esc, fmt_int, fmt_num, fmt_pct
from include.segmentation.explain.report_html import build_html
from include.segmentation.explain.svg import diverging, nice_ticks, svg_line_chart
from include.segmentation.model import MODEL_FEATURES, NUMERIC_FEATURES

S = date(2024, 6, 1)
EVIL = '<script>alert("x")</script> & Co'


def _profiles() -> pd.DataFrame:
    means = dict.fromkeys(NUMERIC_FEATURES, 1.0)
    rows = []
    for seg, name, size in ((1, "Champions", 30), (2, EVIL, 70)):
        rows.append({
            "snapshot_date": S, "segment_id": seg, "segment_name": name, "size": size, "share": size / 100,
            "description": f"spend {seg}x the median", "centroid": json.dumps(dict.fromkeys(MODEL_FEATURES, 0.0)),
            "feature_means": json.dumps({**means, "monetary": 100.0 * seg}),
            "feature_medians": json.dumps({**means, "monetary": 90.0 * seg}),
            "top_categories": json.dumps(["Shoes", "Books"]), "run_id": "r",
        })
    return pd.DataFrame(rows)


def _data(first: bool = False) -> ReportData:
    run = {
        "run_id": "seg_20240601_x", "k": 2, "algorithm": "kmeans", "silhouette": 0.41, "davies_bouldin": 0.9,
        "outliers": 3, "rules_accuracy": 0.95, "rules_macro_recall": 0.9, "rules_macro_f1": 0.92, "message": None,
        "k_scores": json.dumps([
            {"k": 2, "silhouette": 0.41, "davies_bouldin": 0.9, "calinski_harabasz": 500.0},
            {"k": 3, "silhouette": 0.35, "davies_bouldin": 1.1, "calinski_harabasz": float("nan")},
        ]),
    }
    rules = pd.DataFrame({
        "segment_id": [1, 2], "segment_name": ["Champions", EVIL], "rule_rank": [1, 1],
        "rule": ["frequency >= 6 and recency_days <= 21", "frequency <= 5"], "support": [31, 69],
        "precision": [0.97, 1.0], "coverage": [1.0, 0.99],
    })
    drift = pd.DataFrame({
        "segment_id": [1, 2], "segment_name": ["Champions", EVIL], "status": ["drift", "stable"],
        "previous_size": pd.array([20, 70], dtype="Int64"), "size": [30, 70], "size_change": [0.5, 0.0],
        "previous_snapshot_date": [date(2024, 5, 31)] * 2, "centroid_shift": [0.2, 0.1],
        "top_shift_feature": ["monetary", None], "moved_in": [10, 0], "moved_out": [0, 0],
        "moved_out_share": [0.0, 0.0], "warning": ["size +50% (limit ±25%)", None],
    })
    transitions = pd.DataFrame({
        "previous_snapshot_date": [date(2024, 5, 31)] * 4,
        "from_segment_id": pd.array([1, 2, 2, None], dtype="Int64"), "from_segment_name": ["Champions", EVIL, EVIL, None],
        "to_segment_id": pd.array([1, 1, 2, 2], dtype="Int64"), "to_segment_name": ["Champions", "Champions", EVIL, EVIL],
        "customers": [20, 10, 60, 10],
    })
    top = pd.DataFrame({
        "segment_id": [1, 1], "item_type": ["category", "product"], "ranking": ["revenue", "lift"], "rank": [1, 1],
        "item_id": ["Shoes", "P00042"], "category": ["Shoes", "Books"], "lift": [1.8, 4.2],
    })
    projection = pd.DataFrame({"x": [0.0, 1.0, 2.0, 50.0], "y": [0.0, 1.0, 0.5, -40.0], "segment_id": [1, 1, 2, 2]})
    empty = pd.DataFrame()
    return ReportData(
        snapshot_date=S, run=run, profiles=_profiles(), rules=rules,
        drift=empty if first else drift, transitions=empty if first else transitions, top_products=top,
        population={f: (1.0, 0.5) for f in NUMERIC_FEATURES} | {"monetary": (150.0, 50.0)},
        projection=projection, explained=(0.4, 0.2), newest=True,
    )


def test_report_has_every_section_and_the_data() -> None:
    doc = build_html(_data())
    for heading in ("Segments", "Drift since 2024-05-31", "Transitions", "Why a customer is in a segment",
                    "Feature profile", "Customers in two dimensions", "Silhouette by k", "Davies-Bouldin by k",
                    "Recommendation feed"):
        assert heading in doc, heading
    assert "frequency &gt;= 6 and recency_days &lt;= 21" in doc
    assert "accuracy <b>95.0%</b>" in doc and "macro F1 <b>92.0%</b>" in doc
    assert "size +50% (limit ±25%)" in doc and "drift warnings" in doc
    assert "new in the population" in doc and ">60</td>" in doc
    assert doc.count('fill-opacity="0.7"') == 4  # one dot per projected customer
    assert doc.count('class="dot') == 4  # two k values in each of the two charts
    assert "P00042 (Books)" in doc and "Shoes, Books" in doc
    # the heat map colours the above-average segment red-ish and prints its mean
    assert ">100.0<" in doc or ">100<" in doc


def test_report_is_offline_safe_and_escapes_names() -> None:
    doc = build_html(_data())
    assert EVIL not in doc
    assert html_escaped(EVIL) in doc
    lowered = doc.lower()
    for forbidden in ("<script", "<link", "<img", "@import", "url(", "http://", "https://"):
        assert forbidden not in lowered, forbidden


def html_escaped(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def test_first_snapshot_says_there_is_nothing_to_compare() -> None:
    doc = build_html(_data(first=True))
    assert "First published snapshot" in doc and "Transitions" not in doc


def test_formatting_helpers() -> None:
    assert fmt_int(1234.0) == "1,234" and fmt_int(None) == "–" and fmt_int(pd.NA) == "–"
    assert fmt_pct(0.1234) == "12.3%" and fmt_pct(float("nan")) == "–"
    assert fmt_num(12345.6) == "12,346" and fmt_num(0.1234, 3) == "0.123" and fmt_num(float("inf")) == "–"
    assert esc(None) == "" and esc(float("nan")) == "" and esc("a<b") == "a&lt;b"
    assert diverging(0) == "#f7f7f7" and diverging(5) == "#b2182b" and diverging(-5) == "#2166ac"
    assert diverging(float("nan")) == "#eeeeee"
    ticks = nice_ticks(0.31, 0.47)
    assert ticks and all(0.31 <= t <= 0.47 for t in ticks) and len(ticks) <= 6
    assert "no scores recorded" in svg_line_chart([(2, float("nan"))], "Silhouette by k")
    assert svg_line_chart([(2, 0.3)], "one point").startswith("<svg")


def test_report_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENTATION_ARTIFACTS_DIR", str(tmp_path))
    assert reports_dir() == tmp_path / "reports"
    assert report_filename(S) == "report_2024-06-01.html"
    folder = reports_dir()
    folder.mkdir()
    _write_atomic(folder / report_filename(S), "<html>one</html>")
    _write_atomic(folder / report_filename(S), "<html>two</html>")
    (folder / "report_garbage.html").write_text("x")
    (folder / "notes.txt").write_text("x")
    _write_atomic(folder / report_filename(date(2024, 5, 1)), "<html>old</html>")
    assert (folder / report_filename(S)).read_text() == "<html>two</html>"
    assert list_reports(folder) == [S, date(2024, 5, 1)]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "no temporary file left behind"
