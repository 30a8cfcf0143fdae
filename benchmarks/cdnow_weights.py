"""CDNOW at S (default 1997-10-01): segments with effective weights (today) against the old fixed weights.

    .venv/bin/python benchmarks/cdnow_weights.py [--date 1997-10-01] [--path ../shared/data/cdnow_sample/CDNOW_sample.txt]

CDNOW is purchases only: categories, discounts, returns and browsing are constant. Before issue 13
every model feature kept its family's share whatever the source (``model_weights()``: each value
feature 1/sqrt(7), so the 4 varying value features carried 4/7 of the value family while the 3 timing
features carried all of theirs). Today ``effective_weights`` gives constant features 0 and spreads
the family's weight over its varying features. The script loads the file into a temporary SQLite
warehouse (``load_cdnow``), runs the pipeline's own stages up to the features, clusters the same
features both ways with the run's default parameters, and prints for each: the family weights, per
segment size, tenure (median and quartiles), median orders, recency and spend, the name it would get,
the share of each feature's variance explained by the segments (eta squared), and the pairs of
segments that differ mainly by tenure (same median orders, median recency within 30 days, median
tenure 14 or more days apart: one acquisition cohort split by weeks of tenure).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from include.segmentation.explain.report_format import markdown_table  # noqa: E402
from include.segmentation.model import ClusterConfig, fit_segments, name_segments, transform_for_model  # noqa: E402
from include.segmentation.model.features import (  # noqa: E402
    FEATURES,
    MODEL_FEATURES,
    effective_weights,
    model_weights,
    weights_array,
)
from include.segmentation.params import resolve_params  # noqa: E402
from include.segmentation.pipeline import extract_stage, features_stage, start_run  # noqa: E402
from include.segmentation.pipeline.segment import load_features, size_limits  # noqa: E402
from include.segmentation.settings import SHARED_DATA_DIR  # noqa: E402
from include.segmentation.sources.cdnow import load_cdnow  # noqa: E402
from include.segmentation.store import get_engine  # noqa: E402

S = date(1997, 10, 1)
FAMILY = {f.name: f.family for f in FEATURES if f.model}


def cdnow_features(path: Path, workdir: Path, s: date = S) -> pd.DataFrame:
    """The pipeline's feature table of CDNOW at ``s`` (default parameters), from a temporary SQLite warehouse."""
    engine = get_engine(f"sqlite:///{workdir / 'warehouse.db'}")
    try:
        load_cdnow(engine, path)
        run = start_run(engine, s, {})
        featured = features_stage(engine, run, extract_stage(engine, run))
        return load_features(engine, featured["features_table"])
    finally:
        engine.dispose()


def segment_table(features: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """Per segment: name, size, tenure median and quartiles, median orders, recency, spend (largest first)."""
    names, fidelity = name_segments(features, labels)
    g = features.groupby(labels)
    out = pd.DataFrame({
        "segment": [names[i] for i in g.size().index],
        "size": g.size(),
        "fidelity": [fidelity[i] for i in g.size().index],
        "tenure_median": g["tenure_days"].median(),
        "tenure_p25": g["tenure_days"].quantile(0.25),
        "tenure_p75": g["tenure_days"].quantile(0.75),
        "orders_median": g["frequency"].median(),
        "recency_median": g["recency_days"].median(),
        "spend_median": g["monetary"].median(),
    })
    return out.sort_values("size", ascending=False)


def eta_squared(X: pd.DataFrame, labels: np.ndarray, columns: list[str]) -> dict[str, float]:
    """Share of each (transformed) feature's variance explained by the segments."""
    out = {}
    for col in columns:
        x = X[col].to_numpy("float64")
        total = float(((x - x.mean()) ** 2).sum())
        between = sum(float((labels == c).sum()) * (x[labels == c].mean() - x.mean()) ** 2 for c in np.unique(labels))
        out[col] = between / total if total > 0 else 0.0
    return out


def tenure_pairs(table: pd.DataFrame) -> list[str]:
    """Pairs of segments that differ mainly by tenure (see the module docstring)."""
    found = []
    for (_, a), (_, b) in itertools.combinations(table.iterrows(), 2):
        if (a["orders_median"] == b["orders_median"] and abs(a["recency_median"] - b["recency_median"]) <= 30
                and abs(a["tenure_median"] - b["tenure_median"]) >= 14):
            found.append(f"{a['segment']} ({a['size']:,}) / {b['segment']} ({b['size']:,}): median tenure "
                         f"{a['tenure_median']:.0f} vs {b['tenure_median']:.0f} days, orders {a['orders_median']:.0f}, "
                         f"recency {a['recency_median']:.0f} vs {b['recency_median']:.0f} days")
    return found


def markdown(table: pd.DataFrame) -> str:
    return markdown_table(table, [
        ("segment", "{segment}"), ("size", "{size:,}"), ("name fidelity", "{fidelity:.2f}"),
        ("median tenure (days)", "{tenure_median:.0f}"), ("tenure p25-p75", "{tenure_p25:.0f}-{tenure_p75:.0f}"),
        ("median orders", "{orders_median:.0f}"), ("median recency (days)", "{recency_median:.0f}"),
        ("median spend", "{spend_median:,.0f}"),
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--date", type=date.fromisoformat, default=S, help="snapshot date S (default 1997-10-01)")
    p.add_argument("--path", type=Path, default=SHARED_DATA_DIR / "cdnow_sample" / "CDNOW_sample.txt")
    args = p.parse_args(argv)
    params = resolve_params({})
    with tempfile.TemporaryDirectory(prefix="cdnow-weights-") as tmp:
        features = cdnow_features(args.path, Path(tmp), args.date)
    k_max, _note = size_limits(len(features), params["k_min"], params["k_max"], params.get("min_population", 500),
                               params.get("min_segment_size", 50))
    cfg = ClusterConfig(k_min=params["k_min"], k_max=k_max, algorithm=params["algorithm"], seed=params["random_seed"],
                        outlier_method=params["outlier_method"], min_share=params["min_segment_share"])
    X = transform_for_model(features)
    effective, dropped = effective_weights(X)
    variants = {
        "effective weights (today)": weights_array(effective),
        "old fixed weights (constant features keep their family's share)": model_weights(),
    }
    print(f"CDNOW sample, S = {args.date}, {len(features):,} customers, default parameters (k {cfg.k_min}..{cfg.k_max})")
    print(f"weight 0 under effective weights: {', '.join(sorted(dropped))}\n")
    for title, w in variants.items():
        result = fit_segments(X, cfg, w)
        live = dict(zip(MODEL_FEATURES, w, strict=True))
        fam = {f: sum(v * v for n, v in live.items() if FAMILY[n] == f and X[n].std() > 0) for f in ("value", "timing")}
        table = segment_table(features, result.labels)
        eta = eta_squared(X, result.labels, ["tenure_days", "recency_days", "frequency", "monetary"])
        print(f"## {title}: k = {result.k}, silhouette {result.scores['silhouette']:.3f}")
        print("variance weight of the varying features per family: "
              + ", ".join(f"{f} {v:.2f}" for f, v in fam.items()))
        print(markdown(table))
        print("share of variance explained by the segments (eta squared, transformed features): "
              + ", ".join(f"{c} {v:.2f}" for c, v in eta.items()))
        pairs = tenure_pairs(table)
        print("segments split mainly by tenure: " + ("; ".join(pairs) if pairs else "none") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
