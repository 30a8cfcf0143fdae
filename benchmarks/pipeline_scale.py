"""Benchmark: one full segmentation run on a PostgreSQL warehouse at scale, against the floor and the naive way.

    .venv/bin/python benchmarks/pipeline_scale.py --customers 1000000
    .venv/bin/python benchmarks/pipeline_scale.py --customers 100000      # quick run, with the naive reference

1. Warehouse: database ``custseg_scale_<size>`` (``--db``) on the server of ``--url``. Reused when
   it already holds the generator's data for these arguments (customer and planted-type counts,
   date range); created and loaded with the synthetic generator when missing. A database that
   exists with other contents is never replaced unless ``--rebuild`` is given.
2. Pipeline: the DAG's tasks in order (start_run, validate_raw, extract, build_features, cluster,
   explain, quality_gate, publish), each in a fresh Python process as Airflow runs each task, passing the
   same small dicts the DAG passes through XCom. Per task: wall time of the process, time inside
   the stage function, CPU time and peak RSS (``ru_maxrss``) of the process, and the load average.
   Inside ``cluster`` the k search, the final fit and the scoring (silhouette, Davies-Bouldin,
   Calinski-Harabasz) are timed separately, and inside ``explain`` the insight stage. Before the run the snapshot's
   previously published rows are deleted (untimed), so every run publishes a new snapshot, as the
   daily refresh does.
3. Floor: one bare ``GROUP BY customer_id`` per source table over the window, with the server's
   settings and with the extract's session settings; the faster of the two per table.
4. Naive (default: up to 200,000 customers): ``benchmarks/naive.py`` in a fresh process.
5. Silhouette (default: up to 200,000 customers): on the run's final segmentation, the exact
   silhouette over every customer (scikit-learn, and the project's exact implementation) against
   the sampled estimate the pipeline records.

Prints a report; ``--json PATH`` also writes every figure as JSON. The warehouse URL reaches the
task processes through ``WAREHOUSE_URL`` in their environment, never their command line, and is
printed without its password.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import URL, make_url  # noqa: E402

from include.segmentation.store import describe, get_engine, validate_identifier  # noqa: E402

STAGES: tuple[str, ...] = (
    "start_run", "validate_raw", "extract", "build_features", "cluster", "explain", "quality_gate", "publish"
)
NAIVE_MAX_CUSTOMERS = 200_000
# Published tables keyed by snapshot: the benchmark removes its snapshot from them before a run.
SNAPSHOT_TABLES: tuple[str, ...] = (
    "customer_segments_history", "segment_profiles", "customer_features", "segment_rules", "segment_transitions",
    "segment_drift", "segment_top_products", "quality_results", "segment_runs",
)


# ---------------------------------------------------------------------------------------------
# Task processes
# ---------------------------------------------------------------------------------------------


class _Timer:
    """Accumulates the seconds and calls of wrapped functions, by label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, list[dict[str, Any]]] = {}

    def wrap(self, module: Any, name: str, label: str, info: Any = None) -> None:
        original = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self.seconds[label] = self.seconds.get(label, 0.0) + dt
                extra = info(*args, **kwargs) if info else {}
                self.calls.setdefault(label, []).append({"seconds": round(dt, 3), **extra})

        setattr(module, name, timed)


def _child(stage: str) -> int:
    """Run one stage in this process (a 'task'); inputs as JSON on stdin, result as JSON on stdout."""
    started = time.perf_counter()
    started_epoch = time.time()
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    inputs = json.loads(sys.stdin.read())
    from include.segmentation import pipeline
    from include.segmentation.model import clustering
    from include.segmentation.pipeline import explain, ingest, segment
    from include.segmentation.pipeline import publish as publish_stage

    timer = _Timer()
    for module in (ingest, segment, explain):
        timer.wrap(module, "write_staging", "write_staging", lambda *a, **k: {"kind": a[1], "rows": len(a[4])})
        timer.wrap(module, "read_staging", "read_staging")
    timer.wrap(ingest, "build_features", "build_features")
    timer.wrap(ingest, "validate_features", "validate_features")
    timer.wrap(ingest, "extract_aggregates", "extract_sql")
    timer.wrap(clustering, "_fit_k", "fit_k", lambda *a, **k: {"rows": len(a[0]), "k": a[1]})
    timer.wrap(clustering, "score_labels", "scoring", lambda *a, **k: {"rows": len(a[0])})
    timer.wrap(publish_stage, "publish_snapshot", "publish_snapshot")
    timer.wrap(explain, "build_insights", "insight")
    from include.segmentation.store import get_engine as engine_for

    engine = engine_for()  # WAREHOUSE_URL
    imported = time.perf_counter() - started
    t0 = time.perf_counter()
    run = inputs.get("run")
    if stage == "start_run":
        out = pipeline.start_run(engine, date.fromisoformat(inputs["snapshot_date"]), inputs.get("params"))
    elif stage == "validate_raw":
        out = pipeline.validate_stage(engine, run)
    elif stage == "extract":
        out = pipeline.extract_stage(engine, run)
    elif stage == "build_features":
        out = pipeline.features_stage(engine, run, inputs["extract"])
    elif stage == "cluster":
        out = pipeline.cluster_stage(engine, run, inputs["build_features"])
    elif stage == "explain":
        out = pipeline.explain_stage(engine, run, inputs["cluster"])
    elif stage == "quality_gate":
        out = pipeline.gate_stage(engine, run, inputs["cluster"])
    elif stage == "publish":
        out = pipeline.publish_stage(engine, run, inputs["cluster"], inputs["explain"], inputs["quality_gate"])
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    seconds = time.perf_counter() - t0
    engine.dispose()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "out": out,
        "started_epoch": started_epoch,
        "finished_epoch": time.time(),
        "stage_seconds": seconds,
        "import_seconds": imported,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "detail": {k: round(v, 3) for k, v in timer.seconds.items()},
        "calls": timer.calls,
    }, default=str))
    return 0


def _run_task(stage: str, inputs: dict[str, Any], env: dict[str, str], log_dir: Path) -> dict[str, Any]:
    """Run ``stage`` in a fresh interpreter and return its measurements (raises with the log tail on failure)."""
    log_path = log_dir / f"{stage}.log"
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    epoch0 = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--task", stage],
            input=json.dumps(inputs, default=str), stdout=subprocess.PIPE, stderr=log, text=True, env=env, check=False,
        )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"task {stage} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update({"stage": stage, "wall_seconds": wall, "load_before": load_before, "load_after": os.getloadavg()[0],
                   "startup_seconds": result["started_epoch"] - epoch0,
                   "exit_seconds": epoch0 + wall - result["finished_epoch"]})
    return result


def run_pipeline_tasks(url: URL, snapshot: date, params: dict[str, Any], log_dir: Path) -> list[dict[str, Any]]:
    """One DAG run: every task in its own process, in dependency order, passing the XCom dicts along."""
    env = {**os.environ, "WAREHOUSE_URL": url.render_as_string(hide_password=False), "PYTHONPATH": str(ROOT)}
    env.pop("AIRFLOW_CONN_WAREHOUSE", None)
    env.setdefault("SEGMENTATION_ARTIFACTS_DIR", str(log_dir / "artifacts"))  # Data Docs next to the task logs
    xcom: dict[str, Any] = {"snapshot_date": snapshot.isoformat(), "params": params}
    results = []
    for stage in STAGES:
        res = _run_task(stage, xcom, env, log_dir)
        xcom["run" if stage == "start_run" else stage] = res["out"]
        results.append(res)
        print(f"  {stage:<15} {res['wall_seconds']:7.1f} s  peak RSS {res['peak_rss_mib']:6.0f} MiB  "
              f"(load {res['load_before']:.1f})", file=sys.stderr, flush=True)
    return results


# ---------------------------------------------------------------------------------------------
# Warehouse
# ---------------------------------------------------------------------------------------------


def warehouse_contents(url: URL) -> dict[str, Any] | None:
    """Row counts and date range of the raw data, or None if the database or its tables are missing."""
    engine = get_engine(url)
    try:
        with engine.connect() as conn:
            if conn.execute(text("SELECT to_regclass('raw.customers') IS NULL OR to_regclass('evaluation.planted_types') IS NULL "
                                 "OR to_regclass('raw.browsing_events') IS NULL")).scalar_one():
                return None
            row = conn.execute(text(
                "SELECT (SELECT COUNT(*) FROM raw.customers), (SELECT COUNT(*) FROM evaluation.planted_types), "
                "(SELECT MIN(occurred_at) FROM raw.browsing_events), (SELECT MAX(occurred_at) FROM raw.browsing_events), "
                "(SELECT MIN(ordered_at) FROM raw.transactions), (SELECT MAX(ordered_at) FROM raw.transactions)"
            )).one()
    finally:
        engine.dispose()
    first = min(v for v in (row[2], row[4]) if v is not None) if (row[2] or row[4]) else None
    last = max(v for v in (row[3], row[5]) if v is not None) if (row[3] or row[5]) else None
    return {"customers": int(row[0]), "planted_types": int(row[1]),
            "first_day": first.date() if first else None, "last_day": last.date() if last else None}


def _matches(contents: dict[str, Any] | None, customers: int, days: int, end_date: date) -> bool:
    if not contents or contents["first_day"] is None:
        return False
    first_allowed = end_date - timedelta(days=days - 1)
    return (contents["customers"] == customers and contents["planted_types"] == customers
            and first_allowed <= contents["first_day"] and end_date - timedelta(days=3) <= contents["last_day"] <= end_date)


def ensure_warehouse(admin_url: URL, db: str, customers: int, days: int, end_date: date, seed: int,
                     rebuild: bool) -> dict[str, Any]:
    """Reuse ``db`` if it holds this data set, else create and load it with the generator; returns what was done."""
    from include.segmentation.sources import generate_to_warehouse

    validate_identifier(db, "database name")
    url = admin_url.set(database=db)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": db}).first() is not None
        contents = warehouse_contents(url) if exists else None
        if exists and _matches(contents, customers, days, end_date):
            return {"database": db, "cached": True, **_jsonable(contents)}
        if exists and not rebuild:
            raise SystemExit(
                f"database {db} exists but does not hold {customers:,} generated customers ending {end_date} "
                f"(found {contents}); pass --rebuild to replace it, or --db to use another database"
            )
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {db}")
    finally:
        admin.dispose()
    engine = get_engine(url)
    try:
        print(f"generating {customers:,} customers into {db} (one-off; reused by later runs)", file=sys.stderr, flush=True)
        stats = generate_to_warehouse(engine, customers=customers, days=days, end_date=end_date, seed=seed,
                                      progress=lambda m: print("  " + m, file=sys.stderr, flush=True))
    finally:
        engine.dispose()
    return {"database": db, "cached": False, "generate_seconds": stats["seconds"],
            **_jsonable(warehouse_contents(url))}


def reset_snapshot(url: URL, snapshot: date) -> None:
    """Delete the snapshot's published rows (and leftover staging tables) so the run publishes a new snapshot."""
    engine = get_engine(url)
    try:
        with engine.begin() as conn:
            existing = set(conn.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'segmentation'")).scalars())
            for table in SNAPSHOT_TABLES:
                if table in existing:
                    conn.execute(text(f"DELETE FROM segmentation.{validate_identifier(table)} WHERE snapshot_date = :s"),
                                 {"s": snapshot})
            for table in sorted(existing):
                if table.startswith("stg_"):
                    conn.exec_driver_sql(f"DROP TABLE segmentation.{validate_identifier(table)}")
        with engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("customer_segments", *SNAPSHOT_TABLES):
                if table in existing:
                    auto.exec_driver_sql(f"VACUUM ANALYZE segmentation.{validate_identifier(table)}")
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# Reference figures
# ---------------------------------------------------------------------------------------------

_FLOOR_GROUPS = {
    "transactions": "SELECT customer_id, COUNT(*) AS n FROM raw.transactions "
                    "WHERE ordered_at >= :start AND ordered_at < :cutoff GROUP BY customer_id",
    "browsing_events": "SELECT customer_id, COUNT(*) AS n FROM raw.browsing_events "
                       "WHERE occurred_at >= :start AND occurred_at < :cutoff GROUP BY customer_id",
}
_FLOOR = {
    "transactions": "SELECT COUNT(*) FROM (SELECT customer_id, COUNT(*) FROM raw.transactions "
                    "WHERE ordered_at >= :start AND ordered_at < :cutoff GROUP BY customer_id) g",
    "browsing_events": "SELECT COUNT(*) FROM (SELECT customer_id, COUNT(*) FROM raw.browsing_events "
                       "WHERE occurred_at >= :start AND occurred_at < :cutoff GROUP BY customer_id) g",
}


def measure_floor(url: URL, snapshot: date, window_days: int) -> dict[str, Any]:
    """Seconds of one bare GROUP BY per source table over the window: the best of the server's settings,
    the extract's ``work_mem``, and that without JIT (the floor is what no extraction can beat)."""
    from include.segmentation.sources import Window, pg_extract_settings

    window = Window(snapshot, window_days)
    work_mem = pg_extract_settings()["work_mem"]
    variants = (("server_settings", {}), ("work_mem", {"work_mem": work_mem}),
                ("work_mem_no_jit", {"work_mem": work_mem, "jit": "off"}))
    engine = get_engine(url)
    out: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    try:
        for table, sql in _FLOOR.items():
            times = {}
            for label, settings in variants:
                with engine.begin() as conn:
                    for name, value in settings.items():
                        conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
                    t0 = time.perf_counter()
                    groups = conn.execute(text(sql), window.params(conn)).scalar_one()
                    times[label] = time.perf_counter() - t0
            out[table] = {**{k: round(v, 2) for k, v in times.items()}, "best": round(min(times.values()), 2), "groups": groups}
    finally:
        engine.dispose()
    out["seconds"] = round(sum(out[t]["best"] for t in _FLOOR), 2)
    out["server_settings_seconds"] = round(sum(out[t]["server_settings"] for t in _FLOOR), 2)
    out["load_after"] = os.getloadavg()[0]
    return out


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds used so far by a PostgreSQL backend (only when the server runs on this machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile_extract(url: URL, snapshot: date, window_days: int) -> dict[str, Any]:
    """Each extract statement and the floor's GROUP BYs alone, serially: wall and backend CPU seconds.

    Independent of the machine's load (CPU time), this shows where the extract spends its work
    compared with the floor. Everything runs in one rolled-back transaction on temporary tables.
    """
    from include.segmentation.sources import extract as ex

    window = ex.Window(snapshot, window_days)
    settings = {**ex.pg_extract_settings(), "max_parallel_workers_per_gather": "0"}
    steps = [("floor transactions", f"CREATE TEMP TABLE p_floor_tx AS {_FLOOR_GROUPS['transactions']}"),
             ("floor browsing_events", f"CREATE TEMP TABLE p_floor_ev AS {_FLOOR_GROUPS['browsing_events']}"),
             ("extract transactions", f"CREATE TEMP TABLE p_tx AS {ex._PG_TX}"),
             ("extract events", f"CREATE TEMP TABLE p_ev AS {ex._PG_EV}"),
             ("extract sessions", f"CREATE TEMP TABLE p_sessions AS {ex._PG_SESSIONS}")]
    engine = get_engine(url)
    out: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    try:
        with engine.connect() as conn:
            with conn.begin() as tx:
                ex._set_local(conn, settings)
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                params = window.params(conn)
                for label, sql in [*steps, ("extract combine", None)]:
                    if sql is None:
                        names = {"tx": "pg_temp.p_tx", "ev": "pg_temp.p_ev", "sessions": "pg_temp.p_sessions"}
                        sql = f"CREATE TEMP TABLE p_all AS {ex._pg_combine_sql(conn, names)}"
                    cpu0, t0 = _backend_cpu(pid), time.perf_counter()
                    conn.execute(text(sql), params)
                    wall, cpu1 = time.perf_counter() - t0, _backend_cpu(pid)
                    out[label] = {"seconds": round(wall, 2),
                                  "cpu_seconds": round(cpu1 - cpu0, 2) if cpu0 is not None and cpu1 is not None else None}
                tx.rollback()
    finally:
        engine.dispose()
    out["load_after"] = os.getloadavg()[0]
    return out


def best_floor(*runs: dict[str, Any]) -> dict[str, Any]:
    """The fastest of several floor measurements, per table (all runs kept under ``runs``)."""
    out: dict[str, Any] = {"runs": list(runs)}
    for table in _FLOOR:
        out[table] = min((r[table] for r in runs), key=lambda t: t["best"])
    out["seconds"] = round(sum(out[t]["best"] for t in _FLOOR), 2)
    out["server_settings_seconds"] = round(min(r["server_settings_seconds"] for r in runs), 2)
    out["load"] = [r["load_before"] for r in runs]
    return out


def run_naive(url: URL, snapshot: date, params: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """``benchmarks/naive.py`` in a fresh process; returns its JSON plus the process wall time."""
    env = {**os.environ, "WAREHOUSE_URL": url.render_as_string(hide_password=False), "PYTHONPATH": str(ROOT)}
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(log_dir / "naive.log", "w") as log:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "naive.py"), "--date", snapshot.isoformat(),
             "--window-days", str(params["window_days"]), "--k-min", str(params["k_min"]),
             "--k-max", str(params["k_max"]), "--seed", str(params["random_seed"])],
            stdout=subprocess.PIPE, stderr=log, text=True, env=env, check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"naive run failed; see {log_dir / 'naive.log'}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update({"wall_seconds": round(time.perf_counter() - t0, 2), "load_before": load_before,
                   "load_after": os.getloadavg()[0]})
    return result


def compare_silhouette(url: URL, snapshot: date, run_id: str, sample_sizes: tuple[int, ...], seed: int) -> dict[str, Any]:
    """Exact vs sampled silhouette on the published segmentation of ``snapshot`` (same space as the model)."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    from include.segmentation.model import (
        NUMERIC_FEATURES,
        ClusterConfig,
        model_weights,
        sampled_silhouette,
        silhouette,
        transform_for_model,
    )
    from include.segmentation.store import read_sql

    engine = get_engine(url)
    try:
        with engine.connect() as conn:
            feats = read_sql(conn, "SELECT * FROM segmentation.customer_features WHERE snapshot_date = :s", {"s": snapshot})
            segs = read_sql(conn, "SELECT customer_id, segment_id FROM segmentation.customer_segments_history "
                                  "WHERE snapshot_date = :s", {"s": snapshot})
            recorded = conn.execute(text("SELECT silhouette, silhouette_sample_size FROM segmentation.segment_runs "
                                         "WHERE run_id = :r"), {"r": run_id}).one()
    finally:
        engine.dispose()
    feats = feats.sort_values("customer_id").set_index("customer_id")
    for col in NUMERIC_FEATURES:
        feats[col] = pd.to_numeric(feats[col], errors="coerce").astype("float64")
    labels = segs.set_index("customer_id")["segment_id"].reindex(feats.index).to_numpy()
    values = transform_for_model(feats).to_numpy(dtype="float64")
    scaler = StandardScaler().fit(values)
    Z = (values - scaler.mean_) / np.where(scaler.scale_ > 0, scaler.scale_, 1.0) * model_weights()

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    exact = float(silhouette_score(Z, labels))
    exact_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact_fast = silhouette(Z, labels)
    exact_fast_seconds = time.perf_counter() - t0
    default_sample = ClusterConfig().silhouette_sample
    samples = []
    for size in sorted({*sample_sizes, default_sample}):
        t0 = time.perf_counter()
        est, used = sampled_silhouette(Z, labels, size, seed)
        dt = time.perf_counter() - t0
        samples.append({"sample_size": used, "silhouette": round(est, 5), "difference": round(est - exact, 5),
                        "seconds": round(dt, 3), "speedup_vs_sklearn_exact": round(exact_seconds / dt, 1)})
    return {
        "customers": len(Z),
        "exact_sklearn": round(exact, 5),
        "exact_sklearn_seconds": round(exact_seconds, 2),
        "exact_project": round(exact_fast, 5),
        "exact_project_seconds": round(exact_fast_seconds, 2),
        "recorded_by_pipeline": round(float(recorded[0]), 5),
        "recorded_sample_size": int(recorded[1]),
        "default_sample_size": default_sample,
        "samples": samples,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU, cores, memory, OS and PostgreSQL version of the benchmark machine."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1),
            "os": platform.platform(), "python": platform.python_version()}


def summarize(tasks: list[dict[str, Any]], floor: dict[str, Any] | None, naive: dict[str, Any] | None,
              sil: dict[str, Any] | None) -> dict[str, Any]:
    """The figures the issue's targets are about."""
    by = {t["stage"]: t for t in tasks}
    total = sum(t["wall_seconds"] for t in tasks)
    in_stage = sum(t["stage_seconds"] for t in tasks)
    ext_feat = by["extract"]["stage_seconds"] + by["build_features"]["stage_seconds"]
    published = by["publish"]["out"]["rows"]
    publish_seconds = by["publish"]["detail"].get("publish_snapshot", by["publish"]["stage_seconds"])
    staged = [c for c in by["cluster"]["calls"].get("write_staging", []) if c.get("kind") == "assignments"]
    cluster_calls = by["cluster"]["calls"].get("fit_k", [])
    out: dict[str, Any] = {
        "end_to_end_seconds": round(total, 1),
        "end_to_end_in_stage_seconds": round(in_stage, 1),
        "peak_rss_mib": round(max(t["peak_rss_mib"] for t in tasks)),
        "peak_rss_task": max(tasks, key=lambda t: t["peak_rss_mib"])["stage"],
        "extract_plus_features_seconds": round(ext_feat, 1),
        "publish_rows": int(sum(published.values())),
        "publish_seconds": round(publish_seconds, 2),
        "publish_rows_per_second": round(sum(published.values()) / publish_seconds),
        "population": by["extract"]["out"]["population"],
        "k": by["cluster"]["out"]["scores"]["k"],
        "silhouette": by["cluster"]["out"]["scores"]["silhouette"],
        "k_search_seconds": round(sum(c["seconds"] for c in cluster_calls[:-1]), 2),
        "final_fit_seconds": round(cluster_calls[-1]["seconds"], 2) if cluster_calls else None,
        "scoring_seconds": by["cluster"]["detail"].get("scoring"),
        "insight_seconds": by["explain"]["detail"].get("insight"),
    }
    if staged:
        out["staging_copy_rows_per_second"] = round(staged[0]["rows"] / staged[0]["seconds"])
    if floor:
        out["floor_seconds"] = floor["seconds"]
        out["extract_plus_features_over_floor"] = round(ext_feat / max(floor["seconds"], 0.01), 2)
        out["extract_plus_features_over_server_settings_floor"] = round(
            ext_feat / max(floor["server_settings_seconds"], 0.01), 2)
    if naive:
        out["naive_seconds"] = naive["wall_seconds"]
        out["naive_over_pipeline"] = round(naive["wall_seconds"] / total, 1)
        out["naive_without_write_over_pipeline"] = round((naive["wall_seconds"] - naive["seconds"]["write"]) / total, 1)
    if sil:
        default = next(s for s in sil["samples"] if s["sample_size"] == min(sil["default_sample_size"], sil["customers"]))
        out["silhouette_difference"] = default["difference"]
        out["silhouette_speedup"] = default["speedup_vs_sklearn_exact"]
    return out


def print_report(result: dict[str, Any]) -> None:
    """Human-readable tables of the run (also the source of the README figures)."""
    s = result["summary"]
    print(f"\nwarehouse {result['warehouse_url']}  ({result['warehouse']['customers']:,} customers, "
          f"{'cached' if result['warehouse']['cached'] else 'generated'})")
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; PostgreSQL {result['postgres']}")
    print(f"snapshot {result['snapshot_date']}, window {result['params']['window_days']} days, "
          f"population {s['population']:,}, k={s['k']}, silhouette {s['silhouette']:.4f}\n")
    print(f"{'task':<15}{'wall s':>8}{'in-stage s':>12}{'cpu s':>8}{'peak RSS MiB':>14}{'load':>6}")
    for t in result["tasks"]:
        print(f"{t['stage']:<15}{t['wall_seconds']:8.1f}{t['stage_seconds']:12.1f}{t['cpu_seconds']:8.1f}"
              f"{t['peak_rss_mib']:14.0f}{t['load_before']:6.1f}")
    print(f"{'end to end':<15}{s['end_to_end_seconds']:8.1f}{s['end_to_end_in_stage_seconds']:12.1f}"
          f"{'':8}{s['peak_rss_mib']:14.0f}  (max: {s['peak_rss_task']})")
    ext = next(t for t in result["tasks"] if t["stage"] == "extract")["out"].get("seconds")
    if ext:
        print("  inside extract: " + ", ".join(f"{k} {v} s" for k, v in ext.items())
              + " (transactions, events and sessions run concurrently)")
    print(f"  inside cluster: k search {s['k_search_seconds']} s, final fit {s['final_fit_seconds']} s, "
          f"scoring {s['scoring_seconds']} s; inside explain: insight {s['insight_seconds']} s")
    print(f"  publish: {s['publish_rows']:,} rows in {s['publish_seconds']} s = {s['publish_rows_per_second']:,} rows/s"
          + (f"; staging COPY {s['staging_copy_rows_per_second']:,} rows/s" if "staging_copy_rows_per_second" in s else ""))
    if result.get("floor"):
        f = result["floor"]
        print(f"\nfloor (bare GROUP BY per table, best of before/after the run): {f['seconds']} s "
              f"(transactions {f['transactions']['best']} s, browsing_events {f['browsing_events']['best']} s); "
              f"with the server's settings {f['server_settings_seconds']} s; load {f['load']}")
        print(f"extract + features (in-stage): {s['extract_plus_features_seconds']} s = "
              f"{s['extract_plus_features_over_floor']}x the floor "
              f"({s['extract_plus_features_over_server_settings_floor']}x the server-settings floor)")
    if result.get("extract_profile"):
        p = result["extract_profile"]
        print("statements alone, one at a time (wall s / backend CPU s):")
        for label, v in p.items():
            if isinstance(v, dict):
                print(f"  {label:<24}{v['seconds']:7.2f}{v['cpu_seconds'] if v['cpu_seconds'] is not None else '-':>8}")
    if result.get("naive"):
        n = result["naive"]
        print(f"\nnaive: {n['wall_seconds']} s ({n['seconds']}), k={n['k']}, silhouette {n['silhouette']}, "
              f"peak RSS {n['peak_rss_mib']} MiB")
        print(f"pipeline is {s['naive_over_pipeline']}x faster end to end "
              f"({s['naive_without_write_over_pipeline']}x without the naive write-back)")
    if result.get("silhouette"):
        v = result["silhouette"]
        print(f"\nsilhouette on {v['customers']:,} customers: exact {v['exact_sklearn']} in {v['exact_sklearn_seconds']} s "
              f"(scikit-learn), {v['exact_project']} in {v['exact_project_seconds']} s (project); "
              f"pipeline recorded {v['recorded_by_pipeline']} (sample {v['recorded_sample_size']:,})")
        for row in v["samples"]:
            print(f"  sample {row['sample_size']:>7,}: {row['silhouette']:.5f}  diff {row['difference']:+.5f}  "
                  f"{row['seconds']:.3f} s  {row['speedup_vs_sklearn_exact']}x faster than exact")


def _command_line(argv: list[str]) -> str:
    """The command as run, with any password in a URL argument masked."""
    shown = []
    for arg in argv:
        head, sep, value = arg.partition("=")
        target = value if sep and head.startswith("--") else arg
        if "://" in target:
            masked = make_url(target).render_as_string(hide_password=True)
            arg = f"{head}={masked}" if target is value else masked
        shown.append(arg)
    return " ".join([".venv/bin/python", *shown])


def _jsonable(d: dict[str, Any] | None) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in (d or {}).items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
                   help="SQLAlchemy URL of any database on the server (used to find, create or drop the benchmark one)")
    p.add_argument("--db", help="benchmark database (default custseg_scale_<size>, e.g. custseg_scale_1m)")
    p.add_argument("--days", type=int, default=730, help="days of generated history")
    p.add_argument("--end-date", type=date.fromisoformat, default=date(2026, 11, 25), help="last generated day")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--window-days", type=int, default=365)
    p.add_argument("--params", default="{}", help="JSON object of further run parameters (e.g. min_population)")
    p.add_argument("--rebuild", action="store_true", help="replace --db if it holds other data")
    p.add_argument("--naive", choices=("auto", "yes", "no"), default="auto",
                   help=f"run the naive reference (auto: up to {NAIVE_MAX_CUSTOMERS:,} customers)")
    p.add_argument("--silhouette", choices=("auto", "yes", "no"), default="auto",
                   help=f"exact vs sampled silhouette (auto: up to {NAIVE_MAX_CUSTOMERS:,} customers)")
    p.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    p.add_argument("--task", choices=STAGES, help=argparse.SUPPRESS)  # internal: run one task in this process
    args = p.parse_args(argv)
    if args.task:
        return _child(args.task)

    size = f"{args.customers // 1_000_000}m" if args.customers % 1_000_000 == 0 else (
        f"{args.customers // 1000}k" if args.customers % 1000 == 0 else str(args.customers))
    db = validate_identifier(args.db or f"custseg_scale_{size}", "database name")
    admin_url = make_url(args.url)
    url = admin_url.set(database=db)
    snapshot = args.end_date + timedelta(days=1)
    from include.segmentation.params import resolve_params

    run_params = {**json.loads(args.params), "window_days": args.window_days}
    params = resolve_params(run_params)
    log_dir = Path(tempfile.mkdtemp(prefix=f"pipeline_scale_{size}_"))
    print(f"logs of the task processes: {log_dir}", file=sys.stderr)

    t0 = time.perf_counter()
    warehouse = ensure_warehouse(admin_url, db, args.customers, args.days, args.end_date, args.seed, args.rebuild)
    warehouse["check_seconds"] = round(time.perf_counter() - t0, 1)
    engine = get_engine(url)
    with engine.connect() as conn:
        pg_version = conn.exec_driver_sql("SHOW server_version").scalar_one()
    engine.dispose()
    reset_snapshot(url, snapshot)

    print("floor (before the run) ...", file=sys.stderr, flush=True)
    floor_before = measure_floor(url, snapshot, args.window_days)
    print(f"pipeline run on {describe(get_engine(url))}, snapshot {snapshot}", file=sys.stderr, flush=True)
    tasks = run_pipeline_tasks(url, snapshot, run_params, log_dir)
    print("floor (after the run) ...", file=sys.stderr, flush=True)
    floor = best_floor(floor_before, measure_floor(url, snapshot, args.window_days))
    print("extract statements one by one (CPU time) ...", file=sys.stderr, flush=True)
    extract_profile = profile_extract(url, snapshot, args.window_days)
    small = args.customers <= NAIVE_MAX_CUSTOMERS
    naive = None
    if args.naive == "yes" or (args.naive == "auto" and small):
        print("naive reference (exact silhouette for every k: minutes) ...", file=sys.stderr, flush=True)
        naive = run_naive(url, snapshot, params, log_dir)
    sil = None
    if args.silhouette == "yes" or (args.silhouette == "auto" and small):
        print("exact vs sampled silhouette ...", file=sys.stderr, flush=True)
        sil = compare_silhouette(url, snapshot, tasks[0]["out"]["run_id"], (2_000, 5_000, 20_000), params["random_seed"])

    result = {
        "command": _command_line(sys.argv),
        "warehouse_url": url.render_as_string(hide_password=True),
        "warehouse": warehouse,
        "machine": machine(),
        "postgres": pg_version,
        "snapshot_date": snapshot.isoformat(),
        "params": params,
        "tasks": tasks,
        "floor": floor,
        "extract_profile": extract_profile,
        "naive": naive,
        "silhouette": sil,
        "log_dir": str(log_dir),
    }
    result["summary"] = summarize(tasks, floor, naive, sil)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
        print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
