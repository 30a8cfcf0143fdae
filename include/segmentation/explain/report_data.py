"""What the report shows, read from the published tables of one snapshot.

Reads ONLY published tables (``segment_runs``, ``segment_profiles``, ``segment_rules``,
``segment_drift``, ``segment_transitions``, ``segment_top_products``, ``customer_features`` and
``customer_segments_history``). Customer rows leave the database only as a systematic sample of
model features, projected to two anonymous dimensions: no customer id reaches ``ReportData``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from include.segmentation.errors import PermanentError
from include.segmentation.explain.common import as_date
from include.segmentation.explain.report_feeds import read_feeds
from include.segmentation.model import MODEL_FEATURES, NUMERIC_FEATURES, model_weights, transform_for_model
from include.segmentation.model.clustering import scale_features
from include.segmentation.store import read_sql, table_exists

PROJECTION_SAMPLE = 2_000


class ReportError(PermanentError, ValueError):
    """The report cannot be rendered (no published run for the date, bad output folder)."""


@dataclass
class ReportData:
    """Everything the report shows, read from the published tables of one snapshot."""

    snapshot_date: date
    run: dict[str, Any]
    profiles: pd.DataFrame
    rules: pd.DataFrame
    drift: pd.DataFrame
    transitions: pd.DataFrame
    top_products: pd.DataFrame
    population: dict[str, tuple[float, float]]  # feature -> (mean, std) over the snapshot
    projection: pd.DataFrame  # x, y, segment_id for a sample of customers
    explained: tuple[float, float]  # variance explained by the two projection axes
    newest: bool  # the newest published snapshot
    feeds: dict[str, pd.DataFrame] | None = None  # pricing and inventory feeds by kind (explain/report_feeds.py)


def _read_if_exists(conn: Any, table: str, snapshot_date: date) -> pd.DataFrame:
    """The snapshot's rows of ``segmentation.<table>``; empty when the table does not exist (yet)."""
    if not table_exists(conn, "segmentation", table):
        return pd.DataFrame()
    return read_sql(conn, f"SELECT * FROM segmentation.{table} WHERE snapshot_date = :s", {"s": snapshot_date})


def _published_run(conn: Any, snapshot_date: date) -> tuple[dict[str, Any], date | None]:
    """The snapshot's published run (the latest if several) and the newest published snapshot date."""
    if not table_exists(conn, "segmentation", "segment_runs"):
        raise ReportError("segmentation.segment_runs does not exist: no run was ever published")
    runs = read_sql(
        conn,
        "SELECT * FROM segmentation.segment_runs WHERE snapshot_date = :s AND status = 'published' "
        "ORDER BY finished_at DESC",
        {"s": snapshot_date},
    )
    if runs.empty:
        raise ReportError(f"segmentation.segment_runs: no run with status 'published' for snapshot_date {snapshot_date}")
    newest = read_sql(conn, "SELECT MAX(snapshot_date) AS m FROM segmentation.segment_runs WHERE status = 'published'")
    return runs.iloc[0].to_dict(), as_date(newest["m"].iloc[0])


def _population(conn: Any, snapshot_date: date) -> tuple[int, dict[str, tuple[float, float]]]:
    """Customer count and, per numeric feature, its (mean, standard deviation) over the snapshot, in SQL."""
    features = list(NUMERIC_FEATURES)
    agg = ", ".join(f"AVG({f}) AS m_{f}, AVG({f} * {f}) AS q_{f}" for f in features)
    stats = read_sql(
        conn, f"SELECT COUNT(*) AS n, {agg} FROM segmentation.customer_features WHERE snapshot_date = :s",
        {"s": snapshot_date},
    )
    population: dict[str, tuple[float, float]] = {}
    for f in features:
        m, q = stats[f"m_{f}"].iloc[0], stats[f"q_{f}"].iloc[0]
        if m is None or pd.isna(m):
            continue
        m, q = float(m), float(q)
        population[f] = (m, math.sqrt(max(q - m * m, 0.0)))
    return int(stats["n"].iloc[0] or 0), population


def _sample(conn: Any, snapshot_date: date, n: int, sample_size: int) -> pd.DataFrame:
    """Model features and segment id of every ``n / sample_size``-th customer (by id), no id returned."""
    step = max(1, math.ceil(n / sample_size)) if n else 1
    cols = ", ".join(f"f.{c}" for c in MODEL_FEATURES)
    return read_sql(
        conn,
        f"SELECT * FROM (SELECT {cols}, h.segment_id, ROW_NUMBER() OVER (ORDER BY f.customer_id) AS rn "
        "FROM segmentation.customer_features f JOIN segmentation.customer_segments_history h "
        "ON h.snapshot_date = f.snapshot_date AND h.customer_id = f.customer_id "
        "WHERE f.snapshot_date = :s) x WHERE (rn - 1) % :step = 0",
        {"s": snapshot_date, "step": step},
    )


def _run_weights(run: dict[str, Any]) -> np.ndarray:
    """The weights the run's model used (``segment_runs.effective_weights``), else the default balance."""
    raw = run.get("effective_weights")
    if isinstance(raw, str) and raw.strip():
        stored = json.loads(raw)
        if set(MODEL_FEATURES) <= set(stored):
            return np.array([float(stored[f]) for f in MODEL_FEATURES])
    return model_weights()


def _project(sample: pd.DataFrame, weights: np.ndarray | None = None) -> tuple[pd.DataFrame, tuple[float, float]]:
    """PCA of the sample in the space k-means saw (standardised, family-weighted): x, y, segment_id."""
    if len(sample) < 3:
        return pd.DataFrame(columns=["x", "y", "segment_id"]), (float("nan"), float("nan"))
    from sklearn.decomposition import PCA

    for c in MODEL_FEATURES:
        sample[c] = pd.to_numeric(sample[c], errors="coerce").astype("float64")
    X = np.nan_to_num(transform_for_model(sample).to_numpy())
    Z, _, _ = scale_features(X, model_weights() if weights is None else weights)
    pca = PCA(n_components=2, random_state=0).fit(Z)
    xy = pca.transform(Z)
    projection = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "segment_id": sample["segment_id"].astype(int)})
    return projection, (float(pca.explained_variance_ratio_[0]), float(pca.explained_variance_ratio_[1]))


def load_report_data(engine: Engine, snapshot_date: date, sample_size: int = PROJECTION_SAMPLE) -> ReportData:
    """Read one published snapshot for the report (raises ReportError if it is not published)."""
    with engine.connect() as conn:
        run, newest = _published_run(conn, snapshot_date)
        profiles = _read_if_exists(conn, "segment_profiles", snapshot_date)
        if profiles.empty:
            raise ReportError(f"segmentation.segment_profiles: no rows for snapshot_date {snapshot_date}")
        rules = _read_if_exists(conn, "segment_rules", snapshot_date)
        drift = _read_if_exists(conn, "segment_drift", snapshot_date)
        transitions = _read_if_exists(conn, "segment_transitions", snapshot_date)
        top_products = _read_if_exists(conn, "segment_top_products", snapshot_date)
        n, population = _population(conn, snapshot_date)
        sample = _sample(conn, snapshot_date, n, sample_size)
    projection, explained = _project(sample, _run_weights(run))
    return ReportData(
        snapshot_date=snapshot_date,
        run=run,
        profiles=profiles.sort_values("segment_id").reset_index(drop=True),
        rules=rules,
        drift=drift,
        transitions=transitions,
        top_products=top_products,
        population=population,
        projection=projection,
        explained=explained,
        newest=newest is None or snapshot_date >= newest,
        feeds=read_feeds(engine, snapshot_date),
    )
