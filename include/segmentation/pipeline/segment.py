"""The cluster stage: choose k and fit, keep segment ids stable, name the segments, stage assignments."""

from __future__ import annotations

import json
import logging
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from include.segmentation.model import (
    MODEL_FEATURES,
    NUMERIC_FEATURES,
    ClusterConfig,
    fit_segments,
    match_ids,
    model_weights,
    name_segments,
    transform_for_model,
)
from include.segmentation.pipeline.run import guard, snapshot_of
from include.segmentation.pipeline.types import ClusterResult, FeaturesResult, RunContext
from include.segmentation.store import customer_segments_history, mark_run, read_sql, read_staging, write_staging

log = logging.getLogger("include.segmentation")


def load_features(engine: Engine, features_table: str) -> pd.DataFrame:
    """The staged feature table indexed by customer id (sorted), numeric features as float64."""
    frame = read_staging(engine, features_table).sort_values("customer_id")
    features = frame.set_index("customer_id")
    for col in NUMERIC_FEATURES:
        features[col] = pd.to_numeric(features[col], errors="coerce").astype("float64")
    return features


def previous_segments(engine: Engine, s: date) -> tuple[dict[int, np.ndarray], int]:
    """Centroids of the latest published snapshot before ``s``, and the next unused id."""
    with engine.connect() as conn:
        prev = read_sql(
            conn,
            "SELECT p.segment_id, p.centroid FROM segmentation.segment_profiles p "
            "WHERE p.snapshot_date = (SELECT MAX(r.snapshot_date) FROM segmentation.segment_runs r "
            "WHERE r.status = 'published' AND r.snapshot_date < :s)",
            {"s": s},
        )
        max_id = read_sql(
            conn,
            "SELECT MAX(segment_id) AS m FROM segmentation.segment_profiles WHERE snapshot_date < :s",
            {"s": s},
        )["m"].iloc[0]
    previous: dict[int, np.ndarray] = {}
    for row in prev.itertuples(index=False):
        centroid = json.loads(str(row.centroid))
        if set(centroid) == set(MODEL_FEATURES):
            previous[int(str(row.segment_id))] = np.array([centroid[f] for f in MODEL_FEATURES], dtype="float64")
    next_id = int(max_id) + 1 if max_id is not None and not pd.isna(max_id) else 1
    return previous, next_id


def cluster_stage(engine: Engine, run: RunContext, featured: FeaturesResult) -> ClusterResult:
    """Choose k, fit, give segments their stable ids and names, and stage every customer's segment."""

    def go() -> ClusterResult:
        p = run["params"]
        s = snapshot_of(run)
        features = load_features(engine, featured["features_table"])
        cfg = ClusterConfig(
            k_min=p["k_min"], k_max=p["k_max"], algorithm=p["algorithm"], seed=p["random_seed"],
            outlier_method=p["outlier_method"], min_share=p["min_segment_share"],
        )
        result = fit_segments(transform_for_model(features), cfg, model_weights())
        previous, next_id = previous_segments(engine, s)
        medians_by_label = features.groupby(result.labels)["monetary"].median()
        first_order = np.argsort(-medians_by_label.reindex(range(result.k)).to_numpy(), kind="stable")
        ids = match_ids(
            result.centers_raw, previous, result.scaler_scale / result.weights, next_id, p["max_match_distance"],
            first_order,
        )
        segment_of = np.asarray(ids)[result.labels]
        names = name_segments(features[list(NUMERIC_FEATURES)].groupby(segment_of).median(), features)
        assignments = pd.DataFrame(
            {
                "snapshot_date": s.isoformat(),
                "customer_id": features.index.astype(str),
                "segment_id": segment_of.astype(int),
                "segment_name": [names[i] for i in segment_of],
                "distance": result.distance,
                "confidence": result.confidence,
                "is_outlier": result.is_outlier,
                "run_id": run["run_id"],
            }
        )
        table = write_staging(engine, "assignments", s, customer_segments_history, assignments)
        shares = {int(k): float(v) for k, v in pd.Series(segment_of).value_counts(normalize=True).sort_index().items()}
        outliers = int(result.is_outlier.sum())
        mark_run(
            engine, run["run_id"], "running",
            algorithm=result.algorithm, k=result.k, silhouette=result.scores["silhouette"],
            davies_bouldin=result.scores["davies_bouldin"], calinski_harabasz=result.scores["calinski_harabasz"],
            silhouette_sample_size=result.scores["silhouette_sample_size"], outliers=outliers, k_scores=result.k_scores,
        )
        log.info(
            "cluster: k=%s (%s), silhouette %.4f on %s customers, segments %s",
            result.k, result.algorithm, result.scores["silhouette"], result.scores["silhouette_sample_size"],
            {names[i]: round(sh, 4) for i, sh in shares.items()},
        )
        return {
            "assignments_table": table,
            "features_table": featured["features_table"],
            "scores": {**result.scores, "k": result.k, "algorithm": result.algorithm, "outliers": outliers},
            "shares": {str(k): v for k, v in shares.items()},
            "names": {str(k): v for k, v in names.items()},
            "centroids": {
                str(ids[c]): dict(zip(MODEL_FEATURES, map(float, result.centers_raw[c]), strict=True))
                for c in range(result.k)
            },
            "notes": list(result.notes),
        }

    return guard(engine, run, "cluster", go)
