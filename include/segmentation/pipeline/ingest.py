"""Stages that read the warehouse: validate the raw window, aggregate it, build the features."""

from __future__ import annotations

import logging
from typing import cast

from sqlalchemy import Engine

from include.segmentation.model import NUMERIC_FEATURES, build_features
from include.segmentation.pipeline.run import EmptyWindowError, guard, snapshot_of
from include.segmentation.pipeline.types import ExtractResult, FeaturesResult, RunContext, ValidationResult
from include.segmentation.quality import validate_features, validate_raw_window
from include.segmentation.sources import Window, extract_aggregates
from include.segmentation.store import customer_features, mark_run, read_staging, write_staging

log = logging.getLogger("include.segmentation")


def validate_stage(engine: Engine, run: RunContext) -> ValidationResult:
    """Great Expectations suites on the raw window; an error-severity failure stops the run."""

    def go() -> ValidationResult:
        p = run["params"]
        results = validate_raw_window(engine, snapshot_of(run), p["window_days"], run["run_id"], p.get("quality"))
        return {"checks": len(results), "warnings": [r.check for r in results if not r.success]}

    return guard(engine, run, "validate", go)


def extract_stage(engine: Engine, run: RunContext) -> ExtractResult:
    """Aggregate the window inside the warehouse into a staging table (one row per customer)."""

    def go() -> ExtractResult:
        out = extract_aggregates(engine, Window(snapshot_of(run), run["params"]["window_days"]))
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
        return cast(ExtractResult, out)

    return guard(engine, run, "extract", go)


def features_stage(engine: Engine, run: RunContext, extracted: ExtractResult) -> FeaturesResult:
    """Build the documented features from the aggregates, check them, and stage them."""

    def go() -> FeaturesResult:
        s = snapshot_of(run)
        aggregates = read_staging(engine, extracted["aggregates_table"])
        features = build_features(aggregates, s, run["params"]["window_days"])
        validate_features(engine, features[list(NUMERIC_FEATURES)].drop(columns=["age"]), s, run["run_id"])
        frame = features.reset_index()
        frame.insert(0, "snapshot_date", s.isoformat())
        frame["run_id"] = run["run_id"]
        table = write_staging(engine, "features", s, customer_features, frame)
        return {"features_table": table, "population": len(features)}

    return guard(engine, run, "features", go)
