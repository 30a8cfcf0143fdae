"""Command line: ``python -m include.segmentation.cli COMMAND`` (run ``--help`` for each command).

Every command takes ``--warehouse URL`` (SQLAlchemy URL; default ``WAREHOUSE_URL``, then
``AIRFLOW_CONN_WAREHOUSE``, then the embedded SQLite file ``data/warehouse.db``).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from exc


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from exc
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (exposed for tests)."""
    parser = argparse.ArgumentParser(prog="python -m include.segmentation.cli", description=__doc__)
    parser.add_argument("--warehouse", default=None, help="SQLAlchemy URL of the warehouse")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("init-warehouse", help="create the schemas and the raw source contract (idempotent)")

    gen = sub.add_parser("generate", help="fill raw.* with deterministic synthetic data")
    gen.add_argument("--customers", type=_positive_int, default=5000)
    gen.add_argument("--days", type=_positive_int, default=730, help="days of history before --end-date")
    gen.add_argument("--end-date", type=_date, default=None, help="last day with data (default: yesterday, UTC)")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--chunk-customers", type=_positive_int, default=50_000)
    gen.add_argument("--replace", action="store_true", help="empty the raw tables first")
    gen.add_argument("--price-response", action="store_true",
                     help="plant price-responsive quantities by customer type (off by default; docs/feeds.md)")

    load = sub.add_parser("load-online-retail", help="load a UCI Online Retail file into raw.*")
    load.add_argument("path", type=Path, nargs="?", default=None)
    load.add_argument("--replace", action="store_true", help="empty the raw tables first")

    cdnow = sub.add_parser(
        "load-cdnow", help="load the CDNOW purchases file (a purchases-only source) into raw.customers and raw.transactions"
    )
    cdnow.add_argument("path", type=Path, help="CDNOW_sample.txt or the full CDNOW master file (same layout)")
    cdnow.add_argument("--replace", action="store_true", help="empty the raw tables first")

    run = sub.add_parser("run", help="run the segmentation pipeline for one snapshot date, without Airflow")
    run.add_argument("--date", type=_date, required=True, help="snapshot date S (data before S 00:00 UTC)")
    run.add_argument("--params", default="{}", help="JSON object of run parameters")

    sub.add_parser("summary", help="print the currently published segments")

    aud = sub.add_parser("sync-audiences", help="sync file audiences from the published segments (no account needed)")
    aud.add_argument("--audiences", default="", help="comma-separated audience names (default: all enabled)")
    aud.add_argument("--full-resend", action="store_true")
    aud.add_argument("--dry-run", action="store_true")

    rep = sub.add_parser("report", help="render the HTML report of a published snapshot")
    rep.add_argument("--date", type=_date, required=True)
    rep.add_argument("--out", type=Path, default=None, help="folder (default: artifacts/reports)")

    status = sub.add_parser("run-status", help="print the latest run of a snapshot date; exit 1 unless published")
    status.add_argument("--date", type=_date, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    run_params: dict | None = None
    if args.command == "run":
        # The DAG's spec, checked before anything touches the warehouse: a bad parameter exits 2 at
        # once, naming it, and leaves no segment_runs row.
        from include.segmentation.params import resolve_params

        try:
            given = json.loads(args.params)
            if not isinstance(given, dict):
                raise ValueError(f"--params must be a JSON object, got {args.params!r}")
            run_params = resolve_params(given)
        except ValueError as exc:  # ParamsError and JSONDecodeError are ValueErrors
            print(f"error: {exc}", file=sys.stderr)
            return 2
    from include.segmentation.store import WarehouseError, describe, get_engine

    try:
        engine = get_engine(args.warehouse)
        if args.command == "init-warehouse":
            from include.segmentation.sources import create_source_contract
            from include.segmentation.store import ensure_segmentation_tables

            create_source_contract(engine)
            ensure_segmentation_tables(engine)
            print(f"source contract ready in {describe(engine)}")
        elif args.command == "generate":
            from datetime import datetime, timedelta, timezone

            from include.segmentation.sources import generate_to_warehouse

            end = args.end_date or (datetime.now(timezone.utc).date() - timedelta(days=1))
            stats = generate_to_warehouse(
                engine,
                customers=args.customers,
                days=args.days,
                end_date=end,
                seed=args.seed,
                chunk_customers=args.chunk_customers,
                replace=args.replace,
                price_response=args.price_response,
            )
            print(json.dumps(stats, default=str, indent=2))
        elif args.command == "load-online-retail":
            from include.segmentation.sources import DEFAULT_PATH, load_online_retail

            stats = load_online_retail(engine, args.path or DEFAULT_PATH, replace=args.replace)
            print(json.dumps(stats, default=str, indent=2))
        elif args.command == "load-cdnow":
            from include.segmentation.sources.cdnow import load_cdnow

            stats = load_cdnow(engine, args.path, replace=args.replace)
            print(json.dumps(stats, default=str, indent=2))
        elif args.command == "run":
            from include.segmentation.pipeline import run_pipeline

            result = run_pipeline(engine, args.date, run_params)
            print(json.dumps(result, default=str, indent=2))
        elif args.command == "summary":
            from include.segmentation.explain import segments_summary

            print(segments_summary(engine))
        elif args.command == "sync-audiences":
            from include.segmentation.audiences import load_audiences, select_audiences, sync_audience

            results = [
                sync_audience(engine, a, full_resend=args.full_resend, dry_run=args.dry_run)
                for a in select_audiences(load_audiences(), args.audiences or None)
                if a.destination == "file"
            ]
            print(json.dumps(results, default=str, indent=2))
        elif args.command == "report":
            from include.segmentation.explain import render_report

            print(render_report(engine, args.date, args.out))
        elif args.command == "run-status":
            from include.segmentation.store import read_sql, table_exists

            if not table_exists(engine, "segmentation", "segment_runs"):
                print(f"no run for {args.date}")
                return 1
            with engine.connect() as conn:
                runs = read_sql(
                    conn,
                    "SELECT run_id, status, message FROM segmentation.segment_runs WHERE snapshot_date = :s "
                    "ORDER BY started_at DESC",
                    {"s": args.date},
                )
            if runs.empty:
                print(f"no run for {args.date}")
                return 1
            latest = runs.iloc[0]
            print(f"{args.date}: {latest['run_id']} {latest['status']}" + (f" - {latest['message']}" if latest["message"] else ""))
            return 0 if latest["status"] == "published" else 1
    except (WarehouseError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
