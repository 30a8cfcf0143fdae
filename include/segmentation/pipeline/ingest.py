"""Stages that read the warehouse: validate the raw window, aggregate it, build the features."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import cast

import pandas as pd
from sqlalchemy import Engine

from include.segmentation.model import NUMERIC_FEATURES, build_features
from include.segmentation.model.features import NULLABLE_FEATURES
from include.segmentation.model.lifetime import LIFETIME_FEATURES, LifetimeFit, fit_lifetime, summarise_customers
from include.segmentation.pipeline.run import EmptyWindowError, guard, snapshot_of, staging_key
from include.segmentation.pipeline.types import ExtractResult, FeaturesResult, RunContext, ValidationResult
from include.segmentation.quality import validate_features, validate_raw_window
from include.segmentation.sources import Window, extract_aggregates
from include.segmentation.store import (
    customer_features,
    is_sqlite,
    mark_run,
    read_sql,
    read_staging,
    ts_param,
    write_staging,
)

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
        out = extract_aggregates(engine, Window(snapshot_of(run), run["params"]["window_days"]), staging_key(run))
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
        window_days = run["params"]["window_days"]
        features = build_features(aggregates, s, window_days)
        validate_features(engine, features[list(NUMERIC_FEATURES)].drop(columns=list(NULLABLE_FEATURES)), s, run["run_id"])
        lifetime, fit = lifetime_for_window(engine, s, window_days)
        for col in LIFETIME_FEATURES:
            features[col] = lifetime[col].reindex(features.index).astype("float64")
        mark_run(engine, run["run_id"], "running", lifetime_model=fit.params)
        if fit.params is not None:
            log.info("features: lifetime model %s", {k: v for k, v in fit.params.items() if k != "customers"})
        for note in fit.notes:
            log.warning("features: %s", note)
        frame = features.reset_index()
        frame.insert(0, "snapshot_date", s.isoformat())
        frame["run_id"] = run["run_id"]
        table = write_staging(engine, "features", s, customer_features, frame, staging_key(run))
        return {"features_table": table, "population": len(features), "notes": list(fit.notes)}

    return guard(engine, run, "features", go)


# Purchase occasions (distinct UTC days with a purchase) per customer over [start, cutoff): their
# number, first and last day, and mean spend per occasion; one row per customer leaves the warehouse.
_DAYS_PG = """
SELECT customer_id, CAST(ordered_at AT TIME ZONE 'UTC' AS date) AS day,
       SUM(quantity * unit_price::float8 - discount::float8) AS spend
FROM raw.transactions
WHERE ordered_at >= :start AND ordered_at < :cutoff AND customer_id IS NOT NULL AND quantity > 0
GROUP BY 1, 2
"""
_DAYS_SQLITE = """
SELECT customer_id, date(ordered_at) AS day, SUM(quantity * unit_price - discount) AS spend
FROM raw.transactions
WHERE ordered_at >= :start AND ordered_at < :cutoff AND customer_id IS NOT NULL AND quantity > 0
GROUP BY 1, 2
"""
_PER_CUSTOMER = """
SELECT customer_id, COUNT(*) AS occasions, MIN(day) AS first_day, MAX(day) AS last_day, AVG(spend) AS monetary
FROM ({days}) d GROUP BY customer_id
"""


def read_purchase_customers(engine: Engine, snapshot_date: date, window_days: int) -> pd.DataFrame:
    """One row per buying customer in ``[S - window_days, S)`` (``lifetime.CUSTOMER_COLUMNS``), aggregated in SQL."""
    days = _DAYS_SQLITE if is_sqlite(engine) else _DAYS_PG
    with engine.connect() as conn:
        params = {"start": ts_param(conn, snapshot_date - timedelta(days=window_days)),
                  "cutoff": ts_param(conn, snapshot_date)}
        return read_sql(conn, _PER_CUSTOMER.format(days=days), params)


def lifetime_for_window(engine: Engine, snapshot_date: date, window_days: int) -> tuple[pd.DataFrame, LifetimeFit]:
    """BG/NBD + Gamma-Gamma on the window's purchase occasions, T measured to the window's last day (S - 1)."""
    customers = read_purchase_customers(engine, snapshot_date, window_days)
    return fit_lifetime(summarise_customers(customers, snapshot_date - timedelta(days=1)))
