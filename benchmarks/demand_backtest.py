"""Backtest of the inventory feed (segment_demand_forecast) on the UCI Online Retail data.

Loads the file with the CLI (``load-online-retail``) into a warehouse (default: a new SQLite file in
a temporary folder), runs the pipeline at each snapshot date S, and compares the published 4-week
forecast with what identified customers actually bought in [S, S + 28 days), against the naive
forecast "the same as the 4 weeks before S". The data set has no categories, so the backtest gives
every line a pseudo-category, the first two characters of its StockCode (the retailer's product
families: ``22``, ``84``, ``85``, ...), in its own warehouse only.

Figures printed (units and revenue, net of discounts, purchase lines with quantity > 0):

- ``total err``: (forecast - actual) / actual over all categories;
- ``WAPE``: sum over categories of |forecast - actual| / sum of actual (weighted absolute % error);
- for the model and for naive; "existing" compares the model with the purchases of the snapshot's
  own buyers only (the feed does not forecast customers who have not bought yet), "all" with every
  identified customer's purchases.

The quality gate is relaxed (``min_silhouette`` -1, ``min_segment_share`` 0) so that every date
publishes a forecast: the gate judges the segmentation, not the forecast.

    .venv/bin/python benchmarks/demand_backtest.py [--warehouse URL] [--dates 2011-06-01,2011-07-01,...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.segmentation import cli  # noqa: E402
from include.segmentation.pipeline import run_pipeline  # noqa: E402
from include.segmentation.store import get_engine, read_sql, ts_param  # noqa: E402

DATES = "2011-06-01,2011-07-01,2011-08-01,2011-09-01,2011-10-01,2011-11-01"
HORIZON = 28
PARAMS = {"min_silhouette": -1.0, "min_segment_share": 0.0}

_ACTUAL = """
SELECT COALESCE(category, '(none)') AS category, SUM(quantity) AS units, SUM(quantity * unit_price - discount) AS revenue
FROM raw.transactions
WHERE ordered_at >= :start AND ordered_at < :end AND quantity > 0 AND customer_id IS NOT NULL {only}
GROUP BY 1
"""
_EXISTING = "AND customer_id IN (SELECT customer_id FROM segmentation.customer_segments_history WHERE snapshot_date = :s)"


def _actual(conn, start: date, end: date, s: date | None = None) -> pd.DataFrame:
    params = {"start": ts_param(conn, start), "end": ts_param(conn, end)}
    sql = _ACTUAL.format(only=_EXISTING if s is not None else "")
    if s is not None:
        params["s"] = s
    df = read_sql(conn, sql, params).set_index("category")
    return df.astype("float64")


def _errors(forecast: pd.DataFrame, actual: pd.DataFrame, col: str) -> tuple[float, float]:
    """(total error, WAPE over categories) of ``forecast[col]`` against ``actual[col]``."""
    cats = forecast.index.union(actual.index)
    f = forecast[col].reindex(cats).fillna(0.0)
    a = actual[col].reindex(cats).fillna(0.0)
    return float((f.sum() - a.sum()) / a.sum()), float((f - a).abs().sum() / a.sum())


def backtest(url: str, dates: list[date]) -> pd.DataFrame:
    """Run the pipeline at each date and return one row of errors per date."""
    engine = get_engine(url)
    with engine.begin() as conn:  # pseudo-categories: StockCode families (this warehouse only)
        conn.exec_driver_sql("UPDATE raw.transactions SET category = 'SC' || SUBSTR(product_id, 1, 2)")
    rows = []
    for s in dates:
        t0 = time.perf_counter()
        run_pipeline(engine, s, PARAMS, validate=False)
        with engine.connect() as conn:
            fc = read_sql(conn, "SELECT category, SUM(expected_units) AS units, SUM(expected_revenue) AS revenue "
                                "FROM segmentation.segment_demand_forecast WHERE snapshot_date = :s GROUP BY category",
                          {"s": s}).set_index("category").astype("float64")
            end = s + timedelta(days=HORIZON)
            actual_all = _actual(conn, s, end)
            actual_existing = _actual(conn, s, end, s)
            naive = _actual(conn, s - timedelta(days=HORIZON), s)
        row: dict[str, object] = {"snapshot": s.isoformat(), "actual units": actual_all["units"].sum(),
                                  "actual revenue": actual_all["revenue"].sum(),
                                  "existing share": actual_existing["revenue"].sum() / actual_all["revenue"].sum()}
        for col in ("units", "revenue"):
            row[f"model {col} err (all)"], row[f"model {col} WAPE (all)"] = _errors(fc, actual_all, col)
            row[f"model {col} err (existing)"], row[f"model {col} WAPE (existing)"] = _errors(fc, actual_existing, col)
            row[f"naive {col} err"], row[f"naive {col} WAPE"] = _errors(naive, actual_all, col)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"{s}: done in {row['seconds']} s", file=sys.stderr)
    engine.dispose()
    return pd.DataFrame(rows)


def _markdown(df: pd.DataFrame, col: str) -> str:
    """One markdown table for ``col`` (units or revenue): a row per date and the mean WAPE."""
    keys = (f"model {col} err (all)", f"model {col} WAPE (all)", f"model {col} err (existing)",
            f"model {col} WAPE (existing)", f"naive {col} err", f"naive {col} WAPE")
    lines = ["| snapshot S | actual | model err (all) | model WAPE (all) | model err (existing) "
             "| model WAPE (existing) | naive err | naive WAPE |", "|" + " --- |" * 8]
    for _, r in df.iterrows():
        cells = [f"{r[k]:+.1%}" if " err" in k else f"{r[k]:.1%}" for k in keys]
        lines.append(f"| {r['snapshot']} | {r[f'actual {col}']:,.0f} | " + " | ".join(cells) + " |")
    means = [df[k].mean() for k in keys[1::2]]
    lines.append(f"| mean WAPE | | | {means[0]:.1%} | | {means[1]:.1%} | | {means[2]:.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Load Online Retail, backtest the dates, print markdown tables for units and revenue."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warehouse", default=None, help="SQLAlchemy URL (default: a new SQLite file)")
    parser.add_argument("--dates", default=DATES, help="comma-separated snapshot dates")
    parser.add_argument("--path", default=None, help="Online Retail file (default: the configured one)")
    args = parser.parse_args(argv)
    url = args.warehouse or f"sqlite:///{Path(tempfile.mkdtemp(prefix='demand_backtest_')) / 'warehouse.db'}"
    load = ["--warehouse", url, "load-online-retail", "--replace"] + ([args.path] if args.path else [])
    if cli.main(["--warehouse", url, "init-warehouse"]) != 0 or cli.main(load) != 0:
        return 1
    df = backtest(url, [date.fromisoformat(d) for d in args.dates.split(",")])
    print(f"warehouse: {url.split('@')[-1]}; horizon {HORIZON} days; pseudo-category = first 2 characters of StockCode")
    for col in ("units", "revenue"):
        print(f"\n{col}\n")
        print(_markdown(df, col))
    print("\nshare of actual revenue bought by the snapshot's existing buyers:",
          ", ".join(f"{r['snapshot']} {r['existing share']:.0%}" for _, r in df.iterrows()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
