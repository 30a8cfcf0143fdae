"""Ten consecutive daily snapshots of the UCI Online Retail data: do the segments hold still? (issue 18)

    .venv/bin/python benchmarks/stability_online_retail.py [--warehouse sqlite:////tmp/or/w.db]
        [--first 2011-11-30] [--days 10] [--path ../shared/data/online_retail/online_retail.csv.gz]

Loads the file into a new embedded SQLite warehouse (``--warehouse``; default a temporary folder; an
existing warehouse with the data is reused and its segmentation tables are left as they are, so use
a fresh one for a clean sequence), then runs the pipeline (default parameters, without the Great
Expectations validation, which does not change the model) for each snapshot date in order and prints,
per day: k, the run's stability, customers who changed segment and how many of them had a material
change in their own features, each segment's id, name, share and stability, and the run's message
about k.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from include.segmentation.pipeline import run_pipeline  # noqa: E402
from include.segmentation.sources import load_online_retail  # noqa: E402
from include.segmentation.store import get_engine, read_sql, table_exists  # noqa: E402


def _has_data(engine) -> bool:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        if not table_exists(conn, "raw", "transactions"):
            return False
        return int(read_sql(conn, "SELECT COUNT(*) AS n FROM raw.transactions")["n"].iloc[0]) > 0


def _notes(message: str) -> list[str]:
    """The run message's notes: split on '; ' outside parentheses."""
    notes, depth, start = [], 0, 0
    for i, ch in enumerate(message):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and message.startswith("; ", i):
            notes.append(message[start:i])
            start = i + 2
    return [*notes, message[start:]]


def main() -> None:
    """Load, run the days in order, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", default=None)
    parser.add_argument("--first", type=date.fromisoformat, default=date(2011, 11, 30))
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--path", type=Path, default=None)
    args = parser.parse_args()
    url = args.warehouse or f"sqlite:///{tempfile.mkdtemp(prefix='stab-or-')}/warehouse.db"
    engine = get_engine(url)
    if not _has_data(engine):
        started = time.perf_counter()
        stats = load_online_retail(engine, args.path)
        print(f"loaded {stats.get('lines')} lines, {stats.get('customers')} customers "
              f"in {time.perf_counter() - started:.0f} s")
    print(f"warehouse {url}")
    for i in range(args.days):
        day = args.first + timedelta(days=i)
        started = time.perf_counter()
        run_pipeline(engine, day, validate=False)
        elapsed = time.perf_counter() - started
        with engine.connect() as conn:
            run = read_sql(
                conn, "SELECT k, stability, silhouette, moved_customers, moved_with_feature_change, message, population "
                "FROM segmentation.segment_runs WHERE snapshot_date = :d AND status = 'published'", {"d": day},
            ).iloc[0]
            prof = read_sql(
                conn, "SELECT segment_id, segment_name, share, stability FROM segmentation.segment_profiles "
                "WHERE snapshot_date = :d ORDER BY segment_id", {"d": day},
            )
        moved = "–" if run["moved_customers"] is None or str(run["moved_customers"]) in {"nan", "None"} else (
            f"{int(run['moved_customers'])} ({int(run['moved_with_feature_change'])} with material feature change)")
        print(f"\n{day}  customers {int(run['population']):,}  k={int(run['k'])}  silhouette {float(run['silhouette']):.3f}"
              f"  stability {float(run['stability']):.2f}  moved {moved}  ({elapsed:.0f} s)")
        for r in prof.itertuples(index=False):
            print(f"   {int(r.segment_id):>3}  {r.segment_name:<45} {float(r.share):6.1%}  stability {float(r.stability):.2f}")
        k_notes = [n for n in _notes(str(run["message"] or ""))
                   if n.startswith(("k kept", "k changed", "model refitted", "k=", "segments changed")) or "kept in their previous" in n]
        for note in k_notes:
            print(f"   note: {note}")
    engine.dispose()


if __name__ == "__main__":
    main()
