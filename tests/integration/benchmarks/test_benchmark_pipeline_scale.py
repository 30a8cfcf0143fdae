"""The benchmark command end to end at a tiny scale: builds (then reuses) a warehouse, runs every task in its
own process, measures the floor, the naive way and the silhouette, and writes a complete JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from include.segmentation.store import get_engine, read_sql

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _run(pg_url: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    admin, db = pg_url.rsplit("/", 1)
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pipeline_scale.py"), "--customers", "400", "--days", "120",
         "--params", '{"min_population": 100, "min_segment_size": 5}',
         "--window-days", "90", "--url", f"{admin}/postgres", "--db", db, "--json", str(out), *extra],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False,
    )


def test_benchmark_command_end_to_end(pg_url: str, tmp_path: Path) -> None:
    refused = _run(pg_url, tmp_path / "refused.json")  # the fixture's empty database is not the data set
    assert refused.returncode != 0 and "--rebuild" in refused.stderr

    first = _run(pg_url, tmp_path / "first.json", "--rebuild", "--naive", "yes", "--silhouette", "yes")
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((tmp_path / "first.json").read_text())
    assert report["warehouse"]["cached"] is False and report["warehouse"]["customers"] == 400
    assert [t["stage"] for t in report["tasks"]] == [
        "start_run", "validate_raw", "extract", "build_features", "cluster", "explain", "quality_gate", "publish"]
    for task in report["tasks"]:
        assert task["wall_seconds"] >= task["stage_seconds"] > 0 and task["peak_rss_mib"] > 50
    s = report["summary"]
    with get_engine(pg_url).connect() as conn:
        published = read_sql(conn, "SELECT COUNT(*) AS n FROM segmentation.customer_segments")["n"].iloc[0]
        staging = read_sql(conn, "SELECT COUNT(*) AS n FROM information_schema.tables "
                                 "WHERE table_schema = 'segmentation' AND table_name LIKE 'stg%'")["n"].iloc[0]
    assert s["population"] == published > 100 and staging == 0
    assert s["publish_rows"] >= 2 * published and s["publish_rows_per_second"] > 0
    assert report["floor"]["seconds"] >= 0 and len(report["floor"]["runs"]) == 2
    assert report["naive"]["customers"] == published and report["naive"]["total_seconds"] > 0
    sil = report["silhouette"]
    assert sil["recorded_by_pipeline"] == pytest.approx(sil["exact_sklearn"], abs=1e-4)  # everyone fits the sample
    assert sil["exact_project"] == pytest.approx(sil["exact_sklearn"], abs=1e-4)
    assert "end to end" in first.stdout and "floor" in first.stdout and "naive" in first.stdout
    assert "postgres@" in report["warehouse_url"]

    again = _run(pg_url, tmp_path / "again.json", "--naive", "no", "--silhouette", "no")  # reuses the warehouse
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads((tmp_path / "again.json").read_text())
    assert second["warehouse"]["cached"] is True and second["naive"] is None
    assert second["summary"]["population"] == s["population"]
