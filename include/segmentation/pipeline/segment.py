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
from include.segmentation.model.clustering import ClusterResult as FittedSegments
from include.segmentation.model.clustering import soft_membership
from include.segmentation.model.features import effective_weights, weights_array
from include.segmentation.model.stability import CARRY_OVER_MAX_GAP_DAYS, MATERIAL_SHIFT, hold_still, material_change
from include.segmentation.pipeline.publish import stage_model
from include.segmentation.pipeline.run import ModelRejectedError, guard, snapshot_of, staging_key
from include.segmentation.pipeline.types import ClusterResult, FeaturesResult, RunContext
from include.segmentation.store import (
    customer_segments_history,
    mark_run,
    qualified_staging,
    read_sql,
    read_staging,
    write_staging,
)

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


def previous_segments(engine: Engine, s: date) -> tuple[dict[int, np.ndarray], int, date | None]:
    """Centroids of the latest published snapshot before ``s``, the next unused id, and that snapshot's date."""
    with engine.connect() as conn:
        prev = read_sql(
            conn,
            "SELECT p.snapshot_date, p.segment_id, p.centroid FROM segmentation.segment_profiles p "
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
    previous_date = date.fromisoformat(str(prev["snapshot_date"].iloc[0])[:10]) if len(prev) else None
    return previous, next_id, previous_date


def moved_customers(
    engine: Engine, previous_date: date | None, assignments_table: str, X: pd.DataFrame, result: FittedSegments,
    ids: list[int], names: dict[int, str], hold: bool = True,
) -> tuple[int, int, pd.DataFrame] | None:
    """Customers (present in both) whose segment id changed since the previous published snapshot
    (``previous_date``, from ``previous_segments``), and how many of them moved materially in their own
    features (both snapshots in today's scaled space, ``stability.material_change``); None on the first
    snapshot. Customers who changed
    segment without a material change of their own, when yesterday's segment is still nearly as close
    (``stability.hold_still``), are held in it: the third value has their assignment rows (indexed by
    customer id: segment_id, segment_name, distance, confidence) and they are not counted as moved;
    with ``hold=False`` nobody is held."""
    cols = ", ".join(f"f.{c}" for c in MODEL_FEATURES)
    if previous_date is None:
        return None
    with engine.connect() as conn:
        rows = read_sql(
            conn,
            f"SELECT h.customer_id, h.segment_id AS prev_segment, {cols} FROM segmentation.customer_segments_history h "
            f"JOIN {qualified_staging(assignments_table)} a ON a.customer_id = h.customer_id "
            "LEFT JOIN segmentation.customer_features f ON f.snapshot_date = h.snapshot_date "
            "AND f.customer_id = h.customer_id "
            "WHERE h.snapshot_date = :p AND a.segment_id <> h.segment_id",
            {"p": previous_date},
        )
    if rows.empty:
        return 0, 0, {}
    before = rows.set_index(rows["customer_id"].astype(str))[list(MODEL_FEATURES)].apply(pd.to_numeric, errors="coerce")
    position = pd.Index(X.index.astype(str)).get_indexer(before.index)
    mean, scale, w = result.scaler_mean, result.scaler_scale, result.weights
    z_before = (transform_for_model(before).to_numpy(dtype="float64") - mean) / scale * w
    z_now = (X.to_numpy(dtype="float64")[position] - mean) / scale * w
    material = material_change(z_before, z_now)
    col_of = {int(i): c for c, i in enumerate(ids)}
    prev_col = np.array([col_of.get(int(v), -1) for v in rows["prev_segment"]], dtype=int)
    keep = (hold_still(z_before, z_now, result.centers_scaled, result.labels[position], prev_col) if hold
            else np.zeros(len(rows), dtype=bool))
    held = {str(c): int(ids[prev_col[i]]) for i, c in enumerate(before.index) if keep[i]}
    if held:
        return int(len(rows) - keep.sum()), int(material.sum()), _held_rows(z_now[keep], prev_col[keep], result, held, names)
    return int(len(rows) - keep.sum()), int(material.sum()), pd.DataFrame()


def _held_rows(
    z: np.ndarray, cols: np.ndarray, result: FittedSegments, held: dict[str, int], names: dict[int, str],
) -> pd.DataFrame:
    """Assignment rows of held customers in their previous segment, with the distance and confidence
    (the model's soft membership) of that segment; indexed by customer id."""
    sq = ((z[:, None, :] - result.centers_scaled[None, :, :]) ** 2).sum(axis=2)
    p = soft_membership(sq, float((result.distance**2).mean()))
    at = np.arange(len(cols))
    return pd.DataFrame(
        {"segment_id": list(held.values()), "segment_name": [names[v] for v in held.values()],
         "distance": np.sqrt(sq[at, cols]), "confidence": p[at, cols]},
        index=pd.Index(list(held), name="customer_id"),
    )


def _finite(value: object) -> float | None:
    """A float for the run log, None when missing or not finite."""
    return float(value) if isinstance(value, int | float) and np.isfinite(value) else None


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
            k_change_min_gain=p.get("k_change_min_gain", 0.02), k_stability_tolerance=p.get("k_stability_tolerance", 0.01),
        )
        X = transform_for_model(features)
        weights, dropped = effective_weights(X)
        for what, why in dropped.items():
            log.info("cluster: weight 0 for %s: %s", what, why)
        families = [k.split(":", 1)[1] for k in dropped if k.startswith("family:")]
        if families:
            notes.append(f"feature families dropped (nothing varies in this population): {', '.join(families)}")
        previous, next_id, previous_date = previous_segments(engine, s)
        gap = (s - previous_date).days if previous_date is not None else None
        carry_over = gap is not None and gap <= CARRY_OVER_MAX_GAP_DAYS
        prev_centers = np.vstack([previous[i] for i in sorted(previous)]) if previous and carry_over else None
        if previous and not carry_over:
            notes.append(
                f"fitted afresh: the previous snapshot ({previous_date}) is {gap} days older "
                f"than this one; the model is carried over only from a snapshot at most {CARRY_OVER_MAX_GAP_DAYS} "
                "days older (segment ids still follow it)"
            )
        result = fit_segments(X, cfg, weights_array(weights), prev_centers)
        medians_by_label = features.groupby(result.labels)["monetary"].median()
        first_order = np.argsort(-medians_by_label.reindex(range(result.k)).to_numpy(), kind="stable")
        ids = match_ids(
            result.centers_raw, previous, result.scaler_scale / result.weights, next_id, p["max_match_distance"],
            first_order,
        )
        segment_of = np.asarray(ids)[result.labels]
        names, fidelity = name_segments(features, segment_of)
        new, gone = sorted(set(ids) - set(previous)), sorted(set(previous) - set(ids))
        if previous and (new or gone):
            notes.append(
                "segments changed since the previous snapshot: "
                + "; ".join(
                    [*(f"new segment {i} ({names[i]})" for i in new), *(f"segment {i} no longer present" for i in gone)]
                )
                + f" (no match within max_match_distance {p['max_match_distance']:g})"
            )
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
        model_table = stage_model(engine, run, result, ids, names, weights)
        moved = moved_customers(engine, previous_date, table, X, result, ids, names, hold=carry_over)
        if moved is not None:
            notes.append(f"{moved[0]} customer(s) changed segment since the previous snapshot, {moved[1]} of them "
                         f"with a material change in their own features (scaled shift >= {MATERIAL_SHIFT:g})")
            held_rows = moved[2]
            if len(held_rows):
                notes.append(f"{len(held_rows)} customer(s) kept in their previous segment: the boundary moved, "
                             "their own features did not")
                position = pd.Index(features.index.astype(str)).get_indexer(held_rows.index)
                segment_of[position] = held_rows["segment_id"].to_numpy()
                for col in held_rows.columns:
                    assignments.loc[position, col] = held_rows[col].to_numpy()
                # one bulk rewrite, not an UPDATE per held customer (each a scan of the staged table)
                table = write_staging(engine, "assignments", s, customer_segments_history, assignments, staging_key(run))
        stability = {int(ids[c]): float(v) for c, v in enumerate(result.stability)} if result.stability is not None else {}
        shares = {int(k): float(v) for k, v in pd.Series(segment_of).value_counts(normalize=True).sort_index().items()}
        outliers = int(result.is_outlier.sum())
        mark_run(
            engine, run["run_id"], "running",
            algorithm=result.algorithm, k=result.k, silhouette=result.scores["silhouette"],
            davies_bouldin=result.scores["davies_bouldin"], calinski_harabasz=result.scores["calinski_harabasz"],
            silhouette_sample_size=result.scores["silhouette_sample_size"], outliers=outliers, k_scores=result.k_scores,
            effective_weights={k: round(v, 6) for k, v in weights.items()},
            min_name_fidelity=min(fidelity.values()), stability=_finite(result.scores.get("stability")),
            moved_customers=None if moved is None else moved[0],
            moved_with_feature_change=None if moved is None else moved[1],
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
            "model_table": model_table,
            "stability": {str(k): v for k, v in stability.items() if np.isfinite(v)},
            "notes": [*notes, *result.notes],
        }

    return guard(engine, run, "cluster", go)
