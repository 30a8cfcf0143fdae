"""Benchmark: the pipeline's stages on the embedded SQLite warehouse beside PostgreSQL, on the same data, by size.

    .venv/bin/python benchmarks/sqlite_scale.py --sizes 10000 100000 300000
    .venv/bin/python benchmarks/sqlite_scale.py --sizes 10000 100000 --json /tmp/sqlite_scale.json

For each size N, two warehouses hold the synthetic generator's data for the same arguments
(``--customers N --days 730 --end-date 2024-06-30 --seed 42``): the SQLite file
``<dir>/<N>/warehouse.db`` and the PostgreSQL database ``<pg-prefix><N>`` on the server of
``--pg-url``. Each is created and generated when missing and reused when it already holds N
customers (``--rebuild`` regenerates). On each, one full run for ``--date`` (start_run,
validate_stage, extract_stage, features_stage, cluster_stage, explain_stage, gate_stage,
publish_stage, as ``include.segmentation.pipeline.run_pipeline`` calls them) runs in a fresh Python
process, which times every stage call (wall seconds, and CPU seconds of that process: all of SQLite's
work, but not the PostgreSQL server's). The report gives the per-stage seconds of
both paths by size, SQLite / PostgreSQL ratios, and each path's scaling exponent between
consecutive sizes: the log-log slope ``log(t2 / t1) / log(N2 / N1)`` (1 = linear, 2 = quadratic),
and the 1-minute load average before and after each run (other work on the machine inflates the
figures). ``--json PATH`` also writes every figure.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES: tuple[str, ...] = (
    "start_run", "validate_stage", "extract_stage", "features_stage", "cluster_stage", "explain_stage", "gate_stage",
    "publish_stage",
)
GENERATOR = {"days": 730, "end_date": "2024-06-30", "seed": 42}


def _run_one(url: str, snapshot: date) -> dict[str, Any]:
    """One full run on ``url`` in this process; seconds per stage (the child side)."""
    from include.segmentation import pipeline
    from include.segmentation.store import get_engine

    engine = get_engine(url)
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def timed(stage: str, fn: Any, *args: Any) -> Any:
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(engine, *args)
        seconds[stage] = round(time.perf_counter() - t0, 2)
        cpu[stage] = round(time.process_time() - c0, 2)
        return out

    run = timed("start_run", pipeline.start_run, snapshot, None)
    timed("validate_stage", pipeline.validate_stage, run)
    extracted = timed("extract_stage", pipeline.extract_stage, run)
    featured = timed("features_stage", pipeline.features_stage, run, extracted)
    clustered = timed("cluster_stage", pipeline.cluster_stage, run, featured)
    explained = timed("explain_stage", pipeline.explain_stage, run, clustered)
    gate = timed("gate_stage", pipeline.gate_stage, run, clustered)
    timed("publish_stage", pipeline.publish_stage, run, clustered, explained, gate)
    engine.dispose()
    return {
        "seconds": seconds,
        "total": round(sum(seconds.values()), 2),
        "cpu_seconds": cpu,
        "cpu_total": round(sum(cpu.values()), 2),
        "population": extracted["population"],
        "extract_detail": extracted.get("seconds"),
    }


def _customers(url: str) -> int | None:
    from sqlalchemy import text

    from include.segmentation.store import get_engine, table_exists

    engine = get_engine(url)
    try:
        if not table_exists(engine, "raw", "customers"):
            return None
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM raw.customers")).scalar_one())
    finally:
        engine.dispose()


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "include.segmentation.cli", *args], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def ensure_warehouse(url: str, customers: int, rebuild: bool) -> float | None:
    """Generate the data into ``url`` unless it already holds ``customers`` customers; generation seconds or None."""
    if not rebuild and _customers(url) == customers:
        return None
    t0 = time.perf_counter()
    _cli("--warehouse", url, "init-warehouse")
    _cli("--warehouse", url, "generate", "--customers", str(customers), "--days", str(GENERATOR["days"]),
         "--end-date", str(GENERATOR["end_date"]), "--seed", str(GENERATOR["seed"]))
    return round(time.perf_counter() - t0, 1)


def ensure_pg_database(server_url: str, name: str) -> str:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from include.segmentation.store import get_engine, validate_identifier

    server = make_url(server_url)
    admin = get_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(text(f"CREATE DATABASE {validate_identifier(name)}"))
    admin.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def run_child(url: str, snapshot: date) -> dict[str, Any]:
    env = {**os.environ, "BENCH_WAREHOUSE_URL": url}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "--date", snapshot.isoformat()],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def slope(n1: int, t1: float, n2: int, t2: float) -> float | None:
    """Log-log slope between two sizes (None when a time is too small to mean anything)."""
    if t1 < 0.05 or t2 < 0.05:
        return None
    return round(math.log(t2 / t1) / math.log(n2 / n1), 2)


def report(results: dict[int, dict[str, dict[str, Any]]]) -> str:
    sizes = sorted(results)
    lines = []
    head = "| stage | " + " | ".join(f"SQLite {n:,} | PG {n:,} | ratio" for n in sizes) + " |"
    lines += [head, "|" + " --- |" * (1 + 3 * len(sizes))]
    for stage in (*STAGES, "total"):
        row = [stage]
        for n in sizes:
            s = results[n]["sqlite"]["total"] if stage == "total" else results[n]["sqlite"]["seconds"][stage]
            p = results[n]["postgresql"]["total"] if stage == "total" else results[n]["postgresql"]["seconds"][stage]
            row += [f"{s:.2f}", f"{p:.2f}", f"{s / p:.1f}×" if p >= 0.05 else "–"]
        lines.append("| " + " | ".join(row) + " |")
    if len(sizes) > 1:
        lines += ["", "Scaling exponent (log-log slope between consecutive sizes; 1 = linear):", ""]
        pairs = list(itertools.pairwise(sizes))
        lines += ["| stage | " + " | ".join(f"SQLite {a:,}→{b:,} | PG {a:,}→{b:,}" for a, b in pairs) + " |",
                  "|" + " --- |" * (1 + 2 * len(pairs))]
        for stage in (*STAGES, "total"):
            row = [stage]
            for a, b in pairs:
                for kind in ("sqlite", "postgresql"):
                    ra, rb = results[a][kind], results[b][kind]
                    ta = ra["total"] if stage == "total" else ra["seconds"][stage]
                    tb = rb["total"] if stage == "total" else rb["seconds"][stage]
                    k = slope(a, ta, b, tb)
                    row.append("–" if k is None else f"{k:.2f}")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/custseg_sqlite_scale"), help="SQLite warehouses")
    ap.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--pg-prefix", default="custseg_sqlite_scale_")
    ap.add_argument("--date", type=date.fromisoformat, default=date(2024, 7, 1))
    ap.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_run_one(os.environ["BENCH_WAREHOUSE_URL"], args.date)))
        return 0

    results: dict[int, dict[str, dict[str, Any]]] = {}
    for n in args.sizes:
        results[n] = {}
        for kind in args.engines:
            if kind == "sqlite":
                (args.dir / str(n)).mkdir(parents=True, exist_ok=True)
                url = f"sqlite:///{(args.dir / str(n) / 'warehouse.db').resolve()}"
            else:
                url = ensure_pg_database(args.pg_url, f"{args.pg_prefix}{n}")
            generated = ensure_warehouse(url, n, args.rebuild)
            if generated is not None:
                print(f"{kind} {n:,}: generated in {generated} s", flush=True)
            load_before = os.getloadavg()[0]
            res = run_child(url, args.date)
            res["load_avg"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
            results[n][kind] = res
            print(f"{kind} {n:,}: total {res['total']} s, CPU {res['cpu_total']} s (load {res['load_avg']}) "
                  f"{res['seconds']} CPU {res['cpu_seconds']} "
                  f"extract detail {res['extract_detail']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({str(n): r for n, r in results.items()}, indent=2))
    if set(args.engines) == {"sqlite", "postgresql"}:
        print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
