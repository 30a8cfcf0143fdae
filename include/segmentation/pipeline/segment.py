"""The cluster stage: choose k and fit, keep segment ids stable, name the segments, stage assignments."""

from __future__ import annotations

import json
import logging
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from include.segmentation.errors import TooSmallToSegmentError
from include.segmentation.model import (
    MODEL_FEATURES,
    NUMERIC_FEATURES,
    ClusterConfig,
    fit_segments,
    match_ids,
    name_segments,
    transform_for_model,
)
from include.segmentation.model.features import effective_weights, weights_array
from include.segmentation.pipeline.run import ModelRejectedError, guard, snapshot_of, staging_key
from include.segmentation.pipeline.types import ClusterResult, FeaturesResult, RunContext
from include.segmentation.store import customer_segments_history, mark_run, read_sql, read_staging, write_staging

log = logging.getLogger("include.segmentation")


class PopulationTooSmallError(TooSmallToSegmentError, ModelRejectedError):
    """Too few customers to segment: the run is recorded as rejected (not failed)."""


def size_limits(population: int, k_min: int, k_max: int, min_population: int, min_segment_size: int) -> tuple[int, str | None]:
    """The largest k allowed by ``min_segment_size`` (and a note when k_max is capped); raises when too small."""
    if population < min_population:
        raise PopulationTooSmallError(
            f"too small to segment: {population} customers in the window, fewer than min_population={min_population}"
        )
    cap = population // max(min_segment_size, 1)
    if cap < k_min and population >= 2 * k_min:  # below 2 x k_min the clustering's own check reports it
        raise PopulationTooSmallError(
            f"too small to segment: {population} customers cannot make k_min={k_min} segments of at least "
            f"min_segment_size={min_segment_size} customers"
        )
    if k_min <= cap < k_max:
        return cap, (f"k range capped at {cap} so that segments can hold at least {min_segment_size} customers "
                     f"(population {population})")
    return k_max, None


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
        notes: list[str] = list(featured.get("notes", []))
        try:
            k_max, cap_note = size_limits(
                len(features), p["k_min"], p["k_max"], p.get("min_population", 500), p.get("min_segment_size", 50)
            )
        except PopulationTooSmallError as exc:
            mark_run(engine, run["run_id"], "rejected", f"cluster: {exc}"[:4000])
            raise
        if cap_note:
            notes.append(cap_note)
        cfg = ClusterConfig(
            k_min=p["k_min"], k_max=k_max, algorithm=p["algorithm"], seed=p["random_seed"],
            outlier_method=p["outlier_method"], min_share=p["min_segment_share"],
        )
        X = transform_for_model(features)
        weights, dropped = effective_weights(X)
        for what, why in dropped.items():
            log.info("cluster: weight 0 for %s: %s", what, why)
        families = [k.split(":", 1)[1] for k in dropped if k.startswith("family:")]
        if families:
            notes.append(f"feature families dropped (nothing varies in this population): {', '.join(families)}")
        result = fit_segments(X, cfg, weights_array(weights))
        previous, next_id = previous_segments(engine, s)
        medians_by_label = features.groupby(result.labels)["monetary"].median()
        first_order = np.argsort(-medians_by_label.reindex(range(result.k)).to_numpy(), kind="stable")
        ids = match_ids(
            result.centers_raw, previous, result.scaler_scale / result.weights, next_id, p["max_match_distance"],
            first_order,
        )
        segment_of = np.asarray(ids)[result.labels]
        names, fidelity = name_segments(features, segment_of)
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
        table = write_staging(engine, "assignments", s, customer_segments_history, assignments, staging_key(run))
        shares = {int(k): float(v) for k, v in pd.Series(segment_of).value_counts(normalize=True).sort_index().items()}
        outliers = int(result.is_outlier.sum())
        mark_run(
            engine, run["run_id"], "running",
            algorithm=result.algorithm, k=result.k, silhouette=result.scores["silhouette"],
            davies_bouldin=result.scores["davies_bouldin"], calinski_harabasz=result.scores["calinski_harabasz"],
            silhouette_sample_size=result.scores["silhouette_sample_size"], outliers=outliers, k_scores=result.k_scores,
            effective_weights={k: round(v, 6) for k, v in weights.items()},
            min_name_fidelity=min(fidelity.values()),
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
            "name_fidelity": {str(k): float(v) for k, v in fidelity.items()},
            "notes": [*notes, *result.notes],
        }

    return guard(engine, run, "cluster", go)
