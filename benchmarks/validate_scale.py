"""Benchmark of the raw-window data-quality validation (Great Expectations) on a large warehouse.

    .venv/bin/python benchmarks/validate_scale.py \
        --url postgresql+psycopg2://postgres@127.0.0.1:5432/custseg_bench_1m --date 2026-11-26 --window-days 365

The warehouse must already hold data (e.g. the 1M-customer database left by
``benchmarks/generate_scale.py --customers 1000000 --db custseg_bench_1m --keep``). The script
runs ``validate_raw_window`` ``--runs`` times, each in a fresh Python process so that every
measurement includes importing Great Expectations (as an Airflow task does), and prints one JSON
object: window sizes (from the validation's own results), seconds per run, and the failed checks.

It leaves the warehouse as it found it: its rows in ``segmentation.quality_results`` are deleted
afterwards, and the table (and the ``segmentation`` schema) are dropped again if this script
created them. Data Docs go to ``$SEGMENTATION_ARTIFACTS_DIR`` (default ``<project>/artifacts``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from include.segmentation.store import describe, get_engine, is_sqlite, table_exists  # noqa: E402

_CHILD = """
import json, logging, sys, time
from datetime import date
t0 = time.perf_counter()
from include.segmentation.quality import DataQualityError, validate_raw_window
from include.segmentation.store import get_engine
logging.basicConfig(level=logging.WARNING)
engine = get_engine()  # WAREHOUSE_URL, passed in the environment (not on the command line)
try:
    results = validate_raw_window(engine, date.fromisoformat(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
    error = None
except DataQualityError as exc:
    results, error = exc.results, str(exc)
seconds = time.perf_counter() - t0
print(json.dumps({
    "seconds": round(seconds, 2),
    "checks": len(results),
    "failed": [f"{r.check} [{r.severity}]: {r.observed}" for r in results if r.failed],
    "observed": {r.check: r.observed for r in results
                 if r.check.endswith(("window_not_empty", "not_empty", "last_day_not_empty", "guest_line_share",
                                      "anonymous_event_share", "last_day_volume"))},
    "error": error,
}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/custseg_bench_1m",
                   help="SQLAlchemy URL of the warehouse to validate")
    p.add_argument("--date", type=date.fromisoformat, default=date(2026, 11, 26), help="snapshot date S")
    p.add_argument("--window-days", type=int, default=365)
    p.add_argument("--runs", type=int, default=1, help="repetitions (each in a fresh process)")
    args = p.parse_args(argv)

    engine = get_engine(args.url)
    with engine.connect() as conn:
        had_schema = is_sqlite(conn) or bool(conn.execute(
            sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = 'segmentation'")).first())
        had_table = had_schema and table_exists(conn, "segmentation", "quality_results")
    run_id = f"bench_{uuid.uuid4().hex[:8]}"
    runs = []
    try:
        for i in range(args.runs):
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, args.date.isoformat(), str(args.window_days), f"{run_id}_{i}"],
                cwd=ROOT, capture_output=True, text=True, check=False,
                env={**os.environ, "WAREHOUSE_URL": engine.url.render_as_string(hide_password=False),
                     "PYTHONPATH": str(ROOT)},
            )
            wall = time.perf_counter() - started
            if out.returncode != 0:
                print(out.stderr[-4000:], file=sys.stderr)
                return out.returncode
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["process_seconds"] = round(wall, 2)
            runs.append(result)
            print(f"run {i + 1}: {result['seconds']} s in validate (incl. GX import), {wall:.1f} s process",
                  file=sys.stderr, flush=True)
    finally:
        with engine.begin() as conn:
            if table_exists(conn, "segmentation", "quality_results"):
                conn.execute(sa.text("DELETE FROM segmentation.quality_results WHERE run_id LIKE :r"),
                             {"r": f"{run_id}_%"})
                if not had_table:
                    conn.exec_driver_sql("DROP TABLE segmentation.quality_results")
            if not had_schema:
                conn.exec_driver_sql("DROP SCHEMA IF EXISTS segmentation")
        engine.dispose()
    print(json.dumps({
        "warehouse": describe(engine),
        "snapshot_date": args.date.isoformat(),
        "window_days": args.window_days,
        "seconds": [r["seconds"] for r in runs],
        "best_seconds": min(r["seconds"] for r in runs),
        "runs": runs,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
