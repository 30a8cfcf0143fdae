"""The daily segmentation run as plain functions: one per Airflow task, and ``run_pipeline`` for all.

Stages hand each other only small dicts (run id, dates, staging table names, scores), so the
Airflow DAG passes them through XCom and the same code runs without Airflow (CLI, tests).
Each stage records failures in ``segmentation.segment_runs`` before re-raising, so a run that
stops is visible as failed_validation, rejected or failed, and nothing is published.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from include.segmentation.errors import PermanentError
from include.segmentation.model import (
    MODEL_FEATURES,
    NUMERIC_FEATURES,
    build_features,
    model_weights,
    transform_for_model,
)
from include.segmentation.sources import Window, extract_aggregates
from include.segmentation.store import (
    STAGING_SCHEMA,
    drop_staging,
    mark_run,
    read_sql,
    read_staging,
    staging_table,
    ts_param,
    upsert_run,
    write_staging,
)

log = logging.getLogger("include.segmentation")

DEFAULT_PARAMS: dict[str, Any] = {
    "window_days": 365,
    "k_min": 3,
    "k_max": 10,
    "algorithm": "auto",
    "min_silhouette": 0.2,
    "min_segment_share": 0.02,
    "random_seed": 42,
    "outlier_method": "distance",
    "max_match_distance": 1.5,
}


class EmptyWindowError(PermanentError, ValueError):
    """No customer activity in the run's window: there is nothing to segment."""


class ModelRejectedError(PermanentError, RuntimeError):
    """The quality gate refused the model; the run is recorded as rejected."""


def resolve_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with the run's parameters, checked for type and range."""
    merged = {**DEFAULT_PARAMS, **{k: v for k, v in (params or {}).items() if k in DEFAULT_PARAMS}}
    unknown = sorted(set(params or {}) - set(DEFAULT_PARAMS) - {"quality"})
    if unknown:
        raise ValueError(f"unknown run parameter(s): {', '.join(unknown)}")
    ints = ("window_days", "k_min", "k_max", "random_seed")
    for key in ints:
        merged[key] = int(merged[key])
    for key in ("min_silhouette", "min_segment_share", "max_match_distance"):
        merged[key] = float(merged[key])
    if merged["window_days"] < 1:
        raise ValueError("window_days must be at least 1")
    if not 2 <= merged["k_min"] <= merged["k_max"]:
        raise ValueError(f"k range must satisfy 2 <= k_min <= k_max, got {merged['k_min']}..{merged['k_max']}")
    if not -1 <= merged["min_silhouette"] <= 1:
        raise ValueError("min_silhouette must be within [-1, 1]")
    if not 0 <= merged["min_segment_share"] < 1:
        raise ValueError("min_segment_share must be within [0, 1)")
    if "quality" in (params or {}):
        merged["quality"] = params["quality"]  # type: ignore[index]
    return merged


def make_run_id(snapshot_date: date) -> str:
    """A new id for every attempt, so a failed re-run of a published date never rewrites its record.

    Published rows carry the id of the attempt that published them (their lineage); their content
    is the same whichever attempt publishes a date with the same data and parameters.
    """
    return f"seg_{snapshot_date:%Y%m%d}_{uuid.uuid4().hex[:12]}"


T = TypeVar("T")


def _guard(engine: Any, run: dict[str, Any], stage: str, fn: Callable[[], T]) -> T:
    """Run a stage; an unexpected error marks the run failed (expected ones mark themselves)."""
    try:
        return fn()
    except ModelRejectedError:
        raise
    except Exception as exc:
        status = "failed_validation" if type(exc).__name__ == "DataQualityError" else "failed"
        mark_run(engine, run["run_id"], status, f"{stage}: {exc}"[:4000])
        raise


def _snapshot(run: dict[str, Any]) -> date:
    return date.fromisoformat(run["snapshot_date"])


def start_run(engine: Any, snapshot_date: date, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Register the run as 'running' and return the run context that every stage receives."""
    from include.segmentation.store import ensure_published_tables

    snapshot_date = date(snapshot_date.year, snapshot_date.month, snapshot_date.day)  # e.g. pendulum.Date -> date
    resolved = resolve_params(params)
    ensure_published_tables(engine)
    run_id = make_run_id(snapshot_date)
    with engine.begin() as conn:
        upsert_run(
            conn,
            {
                "run_id": run_id,
                "snapshot_date": snapshot_date,
                "status": "running",
                "params": resolved,
                "started_at": datetime.now(timezone.utc).replace(microsecond=0),
            },
            merge=False,
        )
    log.info("run %s: snapshot %s, window %s days", run_id, snapshot_date, resolved["window_days"])
    return {"run_id": run_id, "snapshot_date": snapshot_date.isoformat(), "params": resolved}


def extract_stage(engine: Any, run: dict[str, Any]) -> dict[str, Any]:
    """Aggregate the window inside the warehouse into a staging table."""

    def go() -> dict[str, Any]:
        window = Window(_snapshot(run), run["params"]["window_days"])
        out = extract_aggregates(engine, window)
        mark_run(
            engine,
            run["run_id"],
            "running",
            population=out["population"],
            excluded_guest_lines=out["excluded_guest_lines"],
            excluded_anonymous_events=out["excluded_anonymous_events"],
        )
        if out["population"] == 0:
            raise EmptyWindowError(
                f"no customer activity in the window [{out['window_start']}, {out['cutoff']}): "
                "raw.transactions and raw.browsing_events have no identified rows there"
            )
        log.info(
            "extract: %s customers, %s guest lines and %s anonymous events excluded",
            out["population"], out["excluded_guest_lines"], out["excluded_anonymous_events"],
        )
        return out

    return _guard(engine, run, "extract", go)


def validate_stage(engine: Any, run: dict[str, Any]) -> dict[str, Any]:
    """Great Expectations suites on the raw window; an error-severity failure stops the run."""

    def go() -> dict[str, Any]:
        from include.segmentation.quality import validate_raw_window

        results = validate_raw_window(
            engine, _snapshot(run), run["params"]["window_days"], run["run_id"], run["params"].get("quality")
        )
        warnings = [r.check for r in results if not r.success]
        return {"checks": len(results), "warnings": warnings}

    return _guard(engine, run, "validate", go)


def features_stage(engine: Any, run: dict[str, Any], extract: dict[str, Any]) -> dict[str, Any]:
    """Build the feature table from the aggregates and stage it."""

    def go() -> dict[str, Any]:
        from include.segmentation.store import customer_features

        s = _snapshot(run)
        aggregates = read_staging(engine, extract["aggregates_table"])
        features = build_features(aggregates, s, run["params"]["window_days"])
        _validate_features(engine, features, s, run["run_id"])
        frame = features.reset_index()
        frame.insert(0, "snapshot_date", s.isoformat())
        frame["run_id"] = run["run_id"]
        table = write_staging(engine, "features", s, customer_features, frame)
        return {"features_table": table, "population": len(features)}

    return _guard(engine, run, "features", go)


def _validate_features(engine: Any, features: pd.DataFrame, s: date, run_id: str) -> None:
    try:
        from include.segmentation.quality import validate_features
    except ImportError:  # pragma: no cover - the data-quality stage is optional at import time
        return
    validate_features(engine, features[list(NUMERIC_FEATURES)].drop(columns=["age"]), s, run_id)


def pending_earlier_runs(engine: Any, run: dict[str, Any], stale_after: timedelta = timedelta(hours=3)) -> list[str]:
    """Snapshot dates before this run's that are being computed right now.

    Segment ids are matched against the newest snapshot published before S, so when a backfill
    runs several dates at once, the cluster stage of S waits for the earlier ones (Airflow sensor in
    reschedule mode). Ids then do not depend on timing, and re-running a backfill gives identical
    tables. A 'running' record older than ``stale_after`` (a crashed worker) is ignored.
    """
    since = datetime.now(timezone.utc) - stale_after
    with engine.connect() as conn:
        rows = read_sql(
            conn,
            "SELECT DISTINCT snapshot_date FROM segmentation.segment_runs "
            "WHERE status = 'running' AND snapshot_date < :s AND started_at >= :since ORDER BY snapshot_date",
            {"s": _snapshot(run), "since": ts_param(conn, since)},
        )
    return [str(d)[:10] for d in rows["snapshot_date"]]


def _previous_segments(engine: Any, s: date) -> tuple[dict[int, np.ndarray], int]:
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
        centroid = json.loads(row.centroid)
        if set(centroid) == set(MODEL_FEATURES):
            previous[int(row.segment_id)] = np.array([centroid[f] for f in MODEL_FEATURES], dtype="float64")
    next_id = int(max_id) + 1 if max_id is not None and not pd.isna(max_id) else 1
    return previous, next_id


def cluster_stage(engine: Any, run: dict[str, Any], features_out: dict[str, Any]) -> dict[str, Any]:
    """Choose k, fit, give segments their stable ids and names, stage assignments and profiles."""

    def go() -> dict[str, Any]:
        from include.segmentation.explain import build_profiles
        from include.segmentation.model import ClusterConfig, fit_segments, match_ids, name_segments
        from include.segmentation.store import customer_segments_history, segment_profiles

        p = run["params"]
        s = _snapshot(run)
        frame = read_staging(engine, features_out["features_table"]).sort_values("customer_id")
        features = frame.set_index("customer_id")
        for col in NUMERIC_FEATURES:
            features[col] = pd.to_numeric(features[col], errors="coerce").astype("float64")
        X = transform_for_model(features)
        cfg = ClusterConfig(
            k_min=p["k_min"], k_max=p["k_max"], algorithm=p["algorithm"], seed=p["random_seed"],
            outlier_method=p["outlier_method"], min_share=p["min_segment_share"],
        )
        result = fit_segments(X, cfg, model_weights())
        previous, next_id = _previous_segments(engine, s)
        medians_by_label = features.groupby(result.labels)["monetary"].median()
        first_order = np.argsort(-medians_by_label.reindex(range(result.k)).to_numpy(), kind="stable")
        ids = match_ids(
            result.centers_raw, previous, result.scaler_scale / result.weights, next_id, p["max_match_distance"], first_order
        )
        segment_of = np.asarray(ids)[result.labels]
        medians = features[list(NUMERIC_FEATURES)].groupby(segment_of).median()
        names = name_segments(medians, features)
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
        centroids = {ids[c]: dict(zip(MODEL_FEATURES, map(float, result.centers_raw[c]), strict=True)) for c in range(result.k)}
        profiles = build_profiles(features, segment_of, names, centroids, s, run["run_id"])
        shares = {int(k): float(v) for k, v in pd.Series(segment_of).value_counts(normalize=True).sort_index().items()}
        staged = {
            "assignments": write_staging(engine, "assignments", s, customer_segments_history, assignments),
            "features": features_out["features_table"],
        }
        insight_fields: dict[str, Any] = {}
        insight_tables = _insight_tables()
        if insight_tables:
            from include.segmentation.explain import build_insights

            insights = build_insights(
                engine, s, run["run_id"], p["window_days"], features, segment_of, names, profiles, staged["assignments"]
            )
            profiles = insights.profiles
            for kind, frame_ in insights.tables.items():
                staged[kind] = write_staging(engine, kind, s, insight_tables[kind], frame_)
            insight_fields = dict(insights.run_fields)
            result.notes.extend(insights.warnings)
        staged["profiles"] = write_staging(engine, "profiles", s, segment_profiles, profiles)
        scores = {**result.scores, "k": result.k, "algorithm": result.algorithm, "outliers": int(result.is_outlier.sum())}
        mark_run(
            engine,
            run["run_id"],
            "running",
            algorithm=result.algorithm,
            k=result.k,
            silhouette=result.scores["silhouette"],
            davies_bouldin=result.scores["davies_bouldin"],
            calinski_harabasz=result.scores["calinski_harabasz"],
            silhouette_sample_size=result.scores["silhouette_sample_size"],
            outliers=int(result.is_outlier.sum()),
            k_scores=result.k_scores,
            **insight_fields,
        )
        log.info(
            "cluster: k=%s (%s), silhouette %.4f on %s customers, segments %s",
            result.k, result.algorithm, result.scores["silhouette"], result.scores["silhouette_sample_size"],
            {names[i]: round(sh, 4) for i, sh in shares.items()},
        )
        return {
            "staged": staged,
            "scores": scores,
            "shares": {str(k): v for k, v in shares.items()},
            "names": {str(k): v for k, v in names.items()},
            "notes": result.notes,
        }

    return _guard(engine, run, "cluster", go)


def _insight_tables() -> dict[str, Any]:
    """Published tables of the insight stage (rules, transitions, top products), if it is installed."""
    try:
        from include.segmentation.explain import INSIGHT_TABLES
    except ImportError:
        return {}
    return dict(INSIGHT_TABLES)


def gate_stage(engine: Any, run: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    """The quality gate: refuse to publish a weak model (recorded as 'rejected')."""
    from include.segmentation.model import quality_gate

    p = run["params"]
    shares = {int(k): v for k, v in cluster["shares"].items()}
    gate = quality_gate(cluster["scores"], shares, p["min_silhouette"], p["min_segment_share"])
    if not gate.passed:
        message = "model rejected: " + "; ".join(gate.reasons)
        mark_run(engine, run["run_id"], "rejected", message)
        raise ModelRejectedError(message)

    def output_checks() -> None:
        try:
            from include.segmentation.quality import validate_output
        except ImportError:  # pragma: no cover
            return
        staged = read_staging(engine, cluster["staged"]["assignments"], ["customer_id", "segment_id"])
        population = read_staging(engine, cluster["staged"]["features"], ["customer_id"])["customer_id"]
        validate_output(
            engine,
            staged.set_index("customer_id")[["segment_id"]],
            pd.Index(population),
            _snapshot(run),
            run["run_id"],
            p["min_segment_share"],
            p["min_silhouette"],
            float(cluster["scores"]["silhouette"]),
        )

    _guard(engine, run, "gate", output_checks)
    return {"passed": True}


def publish_stage(engine: Any, run: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    """Publish the staged snapshot atomically, then drop its staging tables."""
    from include.segmentation.store import publish_snapshot

    def go() -> dict[str, Any]:
        s = _snapshot(run)
        out = publish_snapshot(engine, s, run["run_id"], cluster["staged"], {"message": "; ".join(cluster["notes"]) or None})
        with engine.begin() as conn:
            drop_staging(conn, [*cluster["staged"].values(), f"{STAGING_SCHEMA}.{staging_table('aggregates', s)}"])
        log.info("publish: %s (current=%s) %s", out["snapshot_date"], out["current"], out["rows"])
        return out

    return _guard(engine, run, "publish", go)


def run_pipeline(engine: Any, snapshot_date: date, params: dict[str, Any] | None = None, validate: bool = True) -> dict[str, Any]:
    """Run every stage in order for one snapshot date (what the DAG does, without Airflow)."""
    run = start_run(engine, snapshot_date, params)
    if validate:
        validate_stage(engine, run)
    extract = extract_stage(engine, run)
    feats = features_stage(engine, run, extract)
    cluster = cluster_stage(engine, run, feats)
    gate_stage(engine, run, cluster)
    published = publish_stage(engine, run, cluster)
    return {"run_id": run["run_id"], **published, "scores": cluster["scores"], "shares": cluster["shares"], "names": cluster["names"]}
