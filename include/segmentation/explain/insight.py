"""Segment insight: explainable rules, drift against the previous snapshot, a recommendation feed.

Runs inside the cluster stage, after segment ids and names are fixed and the assignments are staged,
and returns DataFrames the publish stage writes in the SAME transaction as the snapshot:

- ``segment_rules`` (``rules``): one readable rule per leaf of a shallow decision tree, thresholds
  snapped to round numbers, each a valid SQL predicate; the tree's fidelity to the clusters
  (accuracy, macro recall, macro F1) goes to ``segment_runs``.
- ``segment_transitions`` and ``segment_drift`` (``drift``): moves between segments and per-segment
  change since the previous published snapshot; drift above ``DriftThresholds`` is a warning
  (logged, returned in ``Insights.warnings`` and stored in the row).
- ``segment_top_products`` (``top_items``): each segment's top categories and products by revenue
  and by lift, computed in SQL.

It also enriches the profiles: ``top_categories`` and a description that mentions the segment's
most over-represented category. This module checks the inputs and runs the pieces in order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from include.segmentation.explain.common import COLUMNS, InsightError
from include.segmentation.explain.drift import (
    DriftThresholds,
    PreviousSnapshot,
    compute_drift,
    drift_warnings,
    feature_scale,
    name_transitions,
    previous_snapshot,
    read_previous,
)
from include.segmentation.explain.rules import RULE_FEATURES, fit_rules, rules_max_depth
from include.segmentation.explain.top_items import enrich_profiles, top_items
from include.segmentation.model import NUMERIC_FEATURES
from include.segmentation.sources import Window
from include.segmentation.store import StagingNameError, WarehouseError, qualified_staging

log = logging.getLogger("include.segmentation")


@dataclass
class Insights:
    """What the insight stage hands the pipeline: staged tables by kind, enriched profiles, run fields."""

    tables: dict[str, pd.DataFrame]
    profiles: pd.DataFrame
    run_fields: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _check_inputs(features: pd.DataFrame, segment_of: np.ndarray, names: dict[int, str], profiles: pd.DataFrame) -> None:
    """Refuse features, ids, names and profiles that do not describe the same customers and segments."""
    missing = [c for c in NUMERIC_FEATURES if c not in features.columns]
    if missing:
        raise InsightError(f"features: missing column(s) {', '.join(missing)} (rule: every NUMERIC_FEATURES column)")
    if len(segment_of) != len(features):
        raise InsightError(
            f"segment_of: {len(segment_of)} ids for {len(features)} feature rows (rule: one segment id per customer)"
        )
    for col in RULE_FEATURES:
        x = features[col].to_numpy(dtype="float64")
        if not np.isfinite(x).all():
            raise InsightError(f"features.{col}: {int((~np.isfinite(x)).sum())} NaN/infinite value(s) (rule: finite)")
    unknown = sorted({int(i) for i in np.unique(segment_of)} - set(names))
    if unknown:
        raise InsightError(f"segment_of: segment id(s) {unknown} have no name (rule: every id in names)")
    if set(profiles["segment_id"].astype(int)) != set(names):
        raise InsightError("segment_profiles.segment_id: profiles and names disagree (rule: one profile per segment)")


def _staged_name(assignments_table: str) -> str:
    """The qualified staging table of the assignments (the only table name that reaches SQL text)."""
    try:
        return qualified_staging(assignments_table)
    except (StagingNameError, WarehouseError) as exc:
        raise InsightError(
            f"assignments table {assignments_table!r}: must be a staging table segmentation.stg_* "
            "(columns of customer_segments_history)"
        ) from exc


def _stamped(df: pd.DataFrame, kind: str, names: dict[int, str] | None, **values: Any) -> pd.DataFrame:
    """``df`` with the snapshot/run columns ``values`` (and segment names), in the columns of table ``kind``."""
    if names is not None:
        values["segment_name"] = df["segment_id"].map(names)
    return df.assign(**values)[COLUMNS[kind]]


def _changes(
    previous: PreviousSnapshot | None,
    profiles: pd.DataFrame,
    features: pd.DataFrame,
    names: dict[int, str],
    thresholds: DriftThresholds,
    stamp: dict[str, str],
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Transitions, drift and drift warnings since ``previous`` (empty tables on the first snapshot)."""
    if previous is None:
        return pd.DataFrame(columns=COLUMNS["transitions"]), pd.DataFrame(columns=COLUMNS["drift"]), []
    stamp = {**stamp, "previous_snapshot_date": previous.snapshot_date.isoformat()}
    transitions = _stamped(name_transitions(previous, names), "transitions", None, **stamp)
    drift = compute_drift(profiles, previous.profiles, previous.moves, feature_scale(features), thresholds)
    drift = _stamped(drift, "drift", None, **stamp)
    return transitions, drift, drift_warnings(drift, previous.snapshot_date)


def build_insights(
    engine: Engine,
    snapshot_date: date,
    run_id: str,
    window_days: int,
    features: pd.DataFrame,
    segment_of: np.ndarray,
    names: dict[int, str],
    profiles: pd.DataFrame,
    assignments_table: str,
    drift_thresholds: DriftThresholds | None = None,
    max_depth: int | None = None,
) -> Insights:
    """Rules with fidelity, transitions and drift against the previous published snapshot, the
    recommendation feed, and enriched profiles for one snapshot (see the module docstring)."""
    _check_inputs(features, segment_of, names, profiles)
    thresholds = drift_thresholds or DriftThresholds.from_env()
    max_depth = max_depth if max_depth is not None else rules_max_depth()
    staged = _staged_name(assignments_table)
    stamp = {"snapshot_date": snapshot_date.isoformat(), "run_id": run_id}
    segment_of = np.asarray(segment_of).astype(int)

    ruleset = fit_rules(features, segment_of, max_depth=max_depth)
    rules = _stamped(ruleset.rules, "rules", names, **stamp)
    uncovered = sorted(set(names) - set(rules["segment_id"]))
    if uncovered:
        log.info("rules: no leaf of the depth-%s tree predicts segment(s) %s", max_depth, uncovered)

    window = Window(snapshot_date, window_days)
    with engine.connect() as conn:
        prev_date = previous_snapshot(conn, snapshot_date)
        categories = top_items(conn, staged, window, "category")
        products = top_items(conn, staged, window, "product")
        previous = read_previous(conn, prev_date, staged) if prev_date is not None else None

    top = _stamped(pd.concat([categories, products], ignore_index=True), "top_products", names, **stamp)
    transitions, drift, warnings = _changes(previous, profiles, features, names, thresholds, stamp)
    enriched = enrich_profiles(profiles, features, segment_of, categories, window_days)
    run_fields = {
        "rules_accuracy": round(ruleset.accuracy, 6),
        "rules_macro_recall": round(ruleset.macro_recall, 6),
        "rules_macro_f1": round(ruleset.macro_f1, 6),
    }
    log.info(
        "rules: %s rules, fidelity accuracy %.3f, macro recall %.3f, macro F1 %.3f",
        len(rules), ruleset.accuracy, ruleset.macro_recall, ruleset.macro_f1,
    )
    tables = {"rules": rules, "transitions": transitions, "drift": drift, "top_products": top}
    return Insights(tables=tables, profiles=enriched, run_fields=run_fields, warnings=warnings)
