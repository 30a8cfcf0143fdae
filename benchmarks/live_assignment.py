"""Benchmark: live assignment of ~10,000 changed customers against a model published on a large warehouse.

    .venv/bin/python benchmarks/live_assignment.py --customers 1000000
    .venv/bin/python benchmarks/live_assignment.py --customers 200000 --changed 10000

1. Warehouse: database ``custseg_live_<size>`` (``--db``) on the PostgreSQL server of ``--url``,
   loaded with the synthetic generator (``--days 730 --end-date 2026-11-25 --seed 42``) when it does
   not hold that data set yet (the same reuse rule as ``pipeline_scale.py``); its own database, so
   the daily snapshot it publishes never lands in another benchmark's warehouse.
2. Daily snapshot: one ``run_pipeline`` at S = end date - ``--days-before`` (default 3), so the
   generated activity after S's cut-off plays the role of the day's new orders, browsing and
   sign-ups; skipped when S is already the published snapshot with a stored model.
3. ``now``: the instant by which exactly ``--changed`` distinct customers had activity since S 00:00
   UTC (orders, identified events, sign-ups), found with one query.
4. Live assignment: ``live_assign(engine, now)`` ``--repeat`` times (idempotent: each run rewrites
   the same rows), each timed end to end and per phase (find the customers, their features from
   the warehouse, assign, write).

Prints every figure (and ``--json PATH`` writes them). Measures only; no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline_scale import ensure_warehouse  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from include.segmentation.store import get_engine, validate_identifier  # noqa: E402

_CHANGED_SQL = """
SELECT ts FROM (
  SELECT customer_id, MIN(ts) AS ts FROM (
    SELECT customer_id, ordered_at AS ts FROM raw.transactions WHERE customer_id IS NOT NULL AND ordered_at >= :cutoff
    UNION ALL SELECT customer_id, occurred_at FROM raw.browsing_events WHERE customer_id IS NOT NULL AND occurred_at >= :cutoff
    UNION ALL SELECT customer_id, created_at FROM raw.customers WHERE created_at >= :cutoff
  ) a GROUP BY customer_id
) f ORDER BY ts LIMIT 1 OFFSET :n
"""


def published_snapshot(engine: Any) -> date | None:
    """The snapshot customer_segments shows, if it has a stored model; else None."""
    with engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass('segmentation.segment_models') IS NULL")).scalar_one():
            return None
        row = conn.execute(text(
            "SELECT m.snapshot_date FROM segmentation.segment_models m "
            "WHERE m.snapshot_date = (SELECT MAX(snapshot_date) FROM segmentation.customer_segments)"
        )).first()
    return row[0] if row else None


def now_for(engine: Any, snapshot: date, changed: int) -> datetime:
    """The instant just after the ``changed``-th distinct customer's first activity since S 00:00 UTC."""
    cutoff = datetime(snapshot.year, snapshot.month, snapshot.day, tzinfo=timezone.utc)
    with engine.connect() as conn:
        ts = conn.execute(text(_CHANGED_SQL), {"cutoff": cutoff, "n": changed - 1}).scalar()
    if ts is None:
        raise SystemExit(f"fewer than {changed} customers have activity after {snapshot}; lower --changed")
    return (ts + timedelta(seconds=1)).replace(microsecond=0)


def counts(engine: Any) -> dict[str, int]:
    """Rows of the raw tables and of the published snapshot (estimates from the planner for raw)."""
    with engine.connect() as conn:
        raw = {
            t: int(conn.execute(text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:t)"), {"t": f"raw.{t}"}).scalar() or 0)
            for t in ("customers", "transactions", "browsing_events")
        }
        raw["customer_segments"] = int(conn.execute(text("SELECT COUNT(*) FROM segmentation.customer_segments")).scalar_one())
    return raw


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", default=os.environ.get("BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"),
                   help="PostgreSQL server (its admin database); the benchmark database is created on it")
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--changed", type=int, default=10_000)
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--end-date", type=date.fromisoformat, default=date(2026, 11, 25))
    p.add_argument("--days-before", type=int, default=3, help="S = end date - this many days")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--db", help="benchmark database (default custseg_live_<customers>)")
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    import logging
    import tempfile

    # The daily run's Data Docs and reports go to a temporary folder, not the checkout's artifacts/.
    os.environ.setdefault("SEGMENTATION_ARTIFACTS_DIR", tempfile.mkdtemp(prefix="live-bench-"))

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    from include.segmentation.pipeline import run_pipeline
    from include.segmentation.pipeline.live import live_assign

    db = validate_identifier(args.db or f"custseg_live_{args.customers}", "database name")
    admin = make_url(args.url)
    t0 = time.perf_counter()
    warehouse = ensure_warehouse(admin, db, args.customers, args.days, args.end_date, args.seed, args.rebuild)
    warehouse["seconds"] = round(time.perf_counter() - t0, 1)
    engine = get_engine(admin.set(database=db))
    snapshot = args.end_date - timedelta(days=args.days_before)
    daily: dict[str, Any] = {"snapshot_date": snapshot.isoformat()}
    if published_snapshot(engine) != snapshot:
        t0 = time.perf_counter()
        out = run_pipeline(engine, snapshot, {"k_min": 3, "k_max": 10}, validate=False)
        daily.update(seconds=round(time.perf_counter() - t0, 1), k=out["scores"]["k"], cached=False)
    else:
        daily["cached"] = True
    now = now_for(engine, snapshot, args.changed)
    sizes = counts(engine)
    runs = []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        result = live_assign(engine, now)
        wall = time.perf_counter() - t0
        runs.append({"run": i + 1, "wall_seconds": round(wall, 2), **{k: result[k] for k in (  # type: ignore[literal-required]
            "status", "customers", "new_customers", "changed_segment", "changed_membership", "outliers", "pruned",
            "seconds")}})
    engine.dispose()
    report = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "warehouse": warehouse, "sizes": sizes, "daily": daily, "now": now.isoformat(), "runs": runs,
    }
    ran = "" if daily.get("cached") else f", daily run {daily['seconds']} s"
    print(f"warehouse {db}: {sizes['customers']:,} customers, ~{sizes['transactions']:,} order lines, "
          f"~{sizes['browsing_events']:,} browsing events; published snapshot {snapshot} "
          f"({sizes['customer_segments']:,} customers segmented){ran}")
    print(f"live assignment at now = {now.isoformat()} (activity since {snapshot} 00:00 UTC):")
    for r in runs:
        print(f"  run {r['run']}: {r['status']}, {r['customers']:,} customers ({r['new_customers']:,} new, "
              f"{r['changed_segment']:,} changed segment, {r['changed_membership']:,} changed audience membership, "
              f"{r['outliers']:,} outliers) in {r['wall_seconds']} s wall; "
              f"phases {r['seconds']}")
    print(f"load average at the end: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
