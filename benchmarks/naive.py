"""The naive, notebook-style segmentation: the reference the pipeline is compared with.

    WAREHOUSE_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/custseg_scale_100k \
        .venv/bin/python benchmarks/naive.py --date 2026-11-26

What a typical notebook does, step by step and timed:

1. ``pull``: ``pandas.read_sql`` of the window's raw rows (every transaction line and browsing
   event of the window, and the customers table) into DataFrames;
2. ``features``: the per-customer aggregates with pandas ``groupby`` (the same quantities the
   pipeline's SQL computes), then the same feature formulas (``features.build_features``), so
   both approaches cluster the same features;
3. ``kmeans``: ``KMeans`` for every k in the range on all customers (scikit-learn defaults);
4. ``silhouette``: the exact silhouette (``sklearn.metrics.silhouette_score``) over all customers
   for every k, the best k wins;
5. ``write``: the chosen segmentation written back with ``DataFrame.to_sql`` (row inserts) into
   a scratch table ``segmentation.naive_segments``, dropped again afterwards.

Prints one JSON object with the seconds of each step, the chosen k, its silhouette and the peak
RSS of the process. The warehouse URL comes from ``WAREHOUSE_URL`` (never the command line, so
a password does not show in the process list).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.metrics import silhouette_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

from include.segmentation.model import build_features, model_weights, transform_for_model  # noqa: E402
from include.segmentation.store import get_engine, ts_param  # noqa: E402

SCRATCH_TABLE = "naive_segments"


def pull_window(engine: Engine, snapshot_date: date, window_days: int) -> dict[str, pd.DataFrame]:
    """Every raw row of the window (and all customers) as DataFrames, as a notebook would load them."""
    start = snapshot_date - timedelta(days=window_days)
    with engine.connect() as conn:
        params = {"start": ts_param(conn, start), "cutoff": ts_param(conn, snapshot_date)}
        tx = pd.read_sql(
            text(
                "SELECT order_id, customer_id, ordered_at, category, quantity, unit_price, discount "
                "FROM raw.transactions WHERE ordered_at >= :start AND ordered_at < :cutoff"
            ),
            conn,
            params=params,
        )
        ev = pd.read_sql(
            text(
                "SELECT session_id, customer_id, occurred_at, event_type, dwell_seconds "
                "FROM raw.browsing_events WHERE occurred_at >= :start AND occurred_at < :cutoff"
            ),
            conn,
            params=params,
        )
        customers = pd.read_sql(text("SELECT customer_id, created_at, birth_year, gender, country FROM raw.customers"), conn)
    return {"transactions": tx, "browsing_events": ev, "customers": customers}


def aggregates_in_pandas(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The extract's per-customer aggregates, computed with pandas from the raw rows."""
    tx = raw["transactions"].dropna(subset=["customer_id"]).copy()
    tx["quantity"] = pd.to_numeric(tx["quantity"]).astype("float64")
    tx["unit_price"] = pd.to_numeric(tx["unit_price"]).astype("float64")
    tx["discount"] = pd.to_numeric(tx["discount"]).astype("float64")
    tx["ordered_at"] = pd.to_datetime(tx["ordered_at"], utc=True)
    buy = tx["quantity"] > 0
    ret = tx["quantity"] < 0
    tx["purchase_line"] = buy.astype(int)
    tx["return_line"] = ret.astype(int)
    tx["items"] = tx["quantity"].where(buy, 0.0)
    tx["gross"] = (tx["quantity"] * tx["unit_price"]).where(buy, 0.0)
    tx["returned"] = (-tx["quantity"] * tx["unit_price"]).where(ret, 0.0)
    tx["disc"] = tx["discount"].where(buy, 0.0)
    tx["discounted"] = (buy & (tx["discount"] > 0)).astype(int)
    tx["buy_order"] = tx["order_id"].where(buy)
    tx["buy_category"] = tx["category"].where(buy)
    tx["buy_at"] = tx["ordered_at"].where(buy)
    g = tx.groupby("customer_id")
    t = pd.DataFrame(
        {
            "orders": g["buy_order"].nunique(),
            "purchase_lines": g["purchase_line"].sum(),
            "return_lines": g["return_line"].sum(),
            "items": g["items"].sum(),
            "gross_revenue": g["gross"].sum(),
            "returned_value": g["returned"].sum(),
            "discount_total": g["disc"].sum(),
            "discounted_lines": g["discounted"].sum(),
            "categories": g["buy_category"].nunique(),
            "first_order_at": g["buy_at"].min(),
            "last_order_at": g["buy_at"].max(),
            "last_tx_at": g["ordered_at"].max(),
        }
    )
    ev = raw["browsing_events"].dropna(subset=["customer_id"]).copy()
    ev["occurred_at"] = pd.to_datetime(ev["occurred_at"], utc=True)
    counts = pd.crosstab(ev["customer_id"], ev["event_type"])
    h = ev.groupby("customer_id")
    e = pd.DataFrame(
        {
            "sessions": h["session_id"].nunique(),
            "events": h.size(),
            "dwell_seconds_total": h["dwell_seconds"].sum(min_count=1),
            "dwell_events": h["dwell_seconds"].count(),
            "last_event_at": h["occurred_at"].max(),
        }
    )
    for event_type, column in (
        ("page_view", "page_views"),
        ("product_view", "product_views"),
        ("search", "searches"),
        ("add_to_cart", "add_to_carts"),
        ("remove_from_cart", "remove_from_carts"),
        ("checkout", "checkouts"),
    ):
        e[column] = counts[event_type] if event_type in counts else 0
    agg = t.join(e, how="outer")
    agg.index.name = "customer_id"
    customers = raw["customers"].set_index("customer_id")[["created_at", "birth_year", "gender", "country"]]
    agg = agg.join(customers, how="left")
    return agg.reset_index()


def run_naive(
    engine: Engine, snapshot_date: date, window_days: int = 365, k_min: int = 3, k_max: int = 10, seed: int = 42
) -> dict[str, Any]:
    """The whole notebook, timed step by step; returns the timings, the chosen k and its silhouette."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    raw = pull_window(engine, snapshot_date, window_days)
    timings["pull"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    features = build_features(aggregates_in_pandas(raw), snapshot_date, window_days)
    X = StandardScaler().fit_transform(transform_for_model(features).to_numpy()) * model_weights()
    timings["features"] = time.perf_counter() - t0
    rows = {name: len(frame) for name, frame in raw.items()}
    del raw

    timings["kmeans"] = 0.0
    timings["silhouette"] = 0.0
    per_k = []
    best: tuple[float, int, np.ndarray] | None = None
    for k in range(k_min, k_max + 1):
        t0 = time.perf_counter()
        labels = KMeans(n_clusters=k, random_state=seed).fit_predict(X)
        fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        sil = float(silhouette_score(X, labels))
        score = time.perf_counter() - t0
        timings["kmeans"] += fit
        timings["silhouette"] += score
        per_k.append({"k": k, "silhouette": round(sil, 4), "kmeans_seconds": round(fit, 2), "silhouette_seconds": round(score, 2)})
        if best is None or sil > best[0]:
            best = (sil, k, labels)
    assert best is not None

    t0 = time.perf_counter()
    out = pd.DataFrame({"customer_id": features.index, "segment": best[2], "snapshot_date": snapshot_date})
    try:
        with engine.begin() as conn:
            out.to_sql(SCRATCH_TABLE, conn, schema="segmentation", if_exists="replace", index=False)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS segmentation.{SCRATCH_TABLE}")
    timings["write"] = time.perf_counter() - t0
    return {
        "customers": len(features),
        "raw_rows": rows,
        "k": best[1],
        "silhouette": round(best[0], 4),
        "per_k": per_k,
        "seconds": {k: round(v, 2) for k, v in timings.items()},
        "total_seconds": round(sum(timings.values()), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--date", type=date.fromisoformat, required=True, help="snapshot date S")
    p.add_argument("--window-days", type=int, default=365)
    p.add_argument("--k-min", type=int, default=3)
    p.add_argument("--k-max", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    started = time.perf_counter()
    engine = get_engine()  # WAREHOUSE_URL from the environment
    try:
        result = run_naive(engine, args.date, args.window_days, args.k_min, args.k_max, args.seed)
    finally:
        engine.dispose()
    result["process_seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
