"""Compare what two warehouses publish: every table of schema ``segmentation``, lineage columns left out.

    .venv/bin/python scripts/compare_published.py dump URL FOLDER      # one CSV per table + summary.json
    .venv/bin/python scripts/compare_published.py diff FOLDER_A FOLDER_B

Used to show that a refactoring changes nothing a consumer can see: run the same dates on the same
data with the old and the new code, dump both, diff. Lineage columns (run and validation ids,
timestamps, durations, Data Docs paths) differ by construction and are left out; rows are sorted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

LINEAGE = {"run_id", "validation_id", "data_docs", "message", "trigger"}


def dump(url: str, folder: Path) -> dict[str, list]:
    """Write every published table of ``url`` as sorted CSV; return {table: [rows, sha256 prefix]}."""
    import pandas as pd
    from sqlalchemy import create_engine, inspect, text

    folder.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    summary: dict[str, list] = {}
    for table in sorted(inspect(engine).get_table_names(schema="segmentation")):
        if table.startswith("stg_"):
            continue
        with engine.connect() as conn:
            df = pd.read_sql(text(f"SELECT * FROM segmentation.{table}"), conn)
        keep = [c for c in df.columns if c not in LINEAGE and not c.endswith(("_at", "_seconds"))]
        df = df[keep].astype(str).sort_values(keep).reset_index(drop=True)
        csv = df.to_csv(index=False)
        (folder / f"{table}.csv").write_text(csv)
        summary[table] = [len(df), hashlib.sha256(csv.encode()).hexdigest()[:16]]
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def diff(a: Path, b: Path) -> int:
    """Print one line per table (same / DIFF / missing); exit code 1 when anything differs."""
    names = sorted({p.name for p in a.glob("*.csv")} | {p.name for p in b.glob("*.csv")})
    bad = 0
    for name in names:
        pa, pb = a / name, b / name
        if not pa.exists() or not pb.exists():
            print(f"missing  {name} ({'A' if not pa.exists() else 'B'})")
            bad += 1
        elif pa.read_bytes() == pb.read_bytes():
            print(f"same     {name} ({len(pa.read_text().splitlines()) - 1} rows)")
        else:
            print(f"DIFF     {name}")
            bad += 1
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("url")
    d.add_argument("folder", type=Path)
    c = sub.add_parser("diff")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "dump":
        print(json.dumps(dump(args.url, args.folder), indent=1))
        return 0
    return diff(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
