"""What bootstrap stability adds to the clustering: fit_segments timed with and without it (issue 18).

    .venv/bin/python -m include.segmentation.cli --warehouse sqlite:////tmp/stab100k/w.db generate \\
        --customers 100000 --days 400 --end-date 2024-06-30
    .venv/bin/python benchmarks/stability_cost.py --warehouse sqlite:////tmp/stab100k/w.db --date 2024-07-01

Runs the pipeline for ``--date`` once if that snapshot is not published yet (to have its features),
then reads the published features and times, on the same input, ``fit_segments`` (the heart of
the cluster stage): without stability (``stability_resamples=0``, the clustering before issue 18),
with the default stability (every k of the search and the final model), and with the default plus
the previous model's centroids (the daily case: the keep-or-change check and the warm start).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from include.segmentation.model import MODEL_FEATURES, ClusterConfig, fit_segments, transform_for_model  # noqa: E402
from include.segmentation.model.features import effective_weights, weights_array  # noqa: E402
from include.segmentation.pipeline import run_pipeline  # noqa: E402
from include.segmentation.store import get_engine, read_sql  # noqa: E402


def main() -> None:
    """Time the three variants and print them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    engine = get_engine(args.warehouse)
    query = f"SELECT {', '.join(MODEL_FEATURES)} FROM segmentation.customer_features WHERE snapshot_date = :d"
    try:
        with engine.connect() as conn:
            features = read_sql(conn, query, {"d": args.date})
    except Exception:  # noqa: BLE001 - no segmentation tables yet
        features = pd.DataFrame()
    if features.empty:
        started = time.perf_counter()
        run_pipeline(engine, args.date, validate=False)
        print(f"pipeline run for {args.date}: {time.perf_counter() - started:.1f} s")
        with engine.connect() as conn:
            features = read_sql(conn, query, {"d": args.date})
    features = features.apply(pd.to_numeric, errors="coerce").astype("float64")
    X = transform_for_model(features)
    weights, _ = effective_weights(X)
    w = weights_array(weights)
    base = ClusterConfig(min_share=0.02)
    print(f"customers {len(X):,}, model features {X.shape[1]}, k {base.k_min}..{base.k_max}, "
          f"stability sample {base.stability_sample:,} x {base.stability_resamples} half-sample refits")
    previous = fit_segments(X, base, w).centers_raw
    variants = {
        "no stability (before)": (replace(base, stability_resamples=0), None),
        "with stability": (base, None),
        "with stability + previous model": (base, previous),
    }
    for name, (cfg, prev) in variants.items():
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            res = fit_segments(X, cfg, w, prev)
            times.append(time.perf_counter() - started)
        print(f"{name:<34} best of {args.repeat}: {min(times):6.2f} s   k={res.k}  "
              f"stability {res.scores.get('stability', float('nan')):.2f}")
    engine.dispose()


if __name__ == "__main__":
    main()
