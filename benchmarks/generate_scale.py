"""Load benchmark of the synthetic generator into a fresh PostgreSQL database.

    .venv/bin/python benchmarks/generate_scale.py --customers 1000000 \
        --url postgresql+psycopg2://postgres@127.0.0.1:5432/postgres --db custseg_bench_1m --keep

``--url`` points at any database of the server (used to create and drop the benchmark database).
The database ``--db`` is dropped first if it exists, created empty, loaded with
``generate_to_warehouse`` and, unless ``--keep``, dropped afterwards. Prints one JSON object:
customers, lines, events, seconds, rows per second, peak RSS of this process, database size.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from include.segmentation.sources import generate_to_warehouse  # noqa: E402
from include.segmentation.store import get_engine, validate_identifier  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, required=True)
    p.add_argument("--url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
                   help="SQLAlchemy URL of an existing database on the server (admin connection)")
    p.add_argument("--db", default="custseg_bench", help="benchmark database name (dropped and created)")
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--end-date", type=date.fromisoformat, default=date(2026, 11, 25))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--chunk-customers", type=int, default=50_000)
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = p.parse_args(argv)

    name = validate_identifier(args.db, "database name")
    admin_url = make_url(args.url)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine = get_engine(admin_url.set(database=name))
    try:
        t0 = time.perf_counter()
        stats = generate_to_warehouse(
            engine,
            customers=args.customers,
            days=args.days,
            end_date=args.end_date,
            seed=args.seed,
            chunk_customers=args.chunk_customers,
            progress=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
        seconds = time.perf_counter() - t0
        with engine.connect() as conn:
            size = conn.exec_driver_sql("SELECT pg_size_pretty(pg_database_size(current_database()))").scalar_one()
        rows = stats["customers"] + stats["transactions"] + stats["browsing_events"] + stats["planted_types"]
        print(json.dumps({
            "database": name,
            "kept": bool(args.keep),
            "customers": stats["customers"],
            "lines": stats["transactions"],
            "events": stats["browsing_events"],
            "planted_type_counts": stats["planted_type_counts"],
            "days": args.days,
            "end_date": args.end_date.isoformat(),
            "seed": args.seed,
            "chunk_customers": args.chunk_customers,
            "seconds": round(seconds, 1),
            "rows_per_second": round(rows / seconds),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "database_size": size,
        }, indent=2))
    finally:
        engine.dispose()
        if not args.keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
