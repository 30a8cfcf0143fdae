"""Stages 2 and 3: the feature frame and the segment output, validated in memory with GX pandas assets.

- ``validate_features``: one row per customer, every numeric feature finite.
- ``validate_output``: every population customer has exactly one segment and nobody else has one;
  segment shares and the silhouette score within the run's gates.

Both store their results, write Data Docs and raise ``DataQualityError`` on an error-severity failure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from include.segmentation.quality.checks import CheckSpec, resolve_checks
from include.segmentation.quality.gx import (
    build_docs,
    close_context,
    data_docs_dir,
    ephemeral_context,
    gx_module,
    run_identifier,
    run_suite,
)
from include.segmentation.quality.masking import mask_example
from include.segmentation.quality.results import MAX_EXAMPLES, CheckResult, finish_validation
from include.segmentation.store import ensure_segmentation_tables


def _run_frame_suite(gx: Any, context: Any, name: str, frame: pd.DataFrame, expectations: list[Any],
                     run_ident: Any, index_column: str | None = None) -> dict[str, Any]:
    """Validate ``frame`` with ``expectations``; return GX results by the ``key`` in their meta."""
    ds = context.data_sources.add_pandas(name=f"{name}_source")
    asset = ds.add_dataframe_asset(name=name)
    batch = asset.add_batch_definition_whole_dataframe("frame")
    fmt: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
    if index_column:
        fmt["unexpected_index_column_names"] = [index_column]
    res = run_suite(gx, context, name, batch, expectations, run_ident, fmt, {"dataframe": frame})
    out: dict[str, Any] = {}
    for r in res.results:
        meta = r.expectation_config.meta or {}
        key = meta.get("key") or meta.get("check")
        assert isinstance(key, str)  # every expectation of these suites carries _meta(): "check" and "key"
        out.setdefault(key, []).append(r)
    return out


def _unexpected_examples(results: list[Any], first: tuple[str, ...] = ("customer_id", "segment_id")) -> list[dict[str, Any]]:
    """Masked example rows from GX's ``partial_unexpected_index_list`` (identifying columns first)."""
    rows: list[dict[str, Any]] = []
    for r in results:
        for item in (r.result or {}).get("partial_unexpected_index_list") or []:
            if isinstance(item, dict):
                ordered = sorted(item, key=lambda k: (k not in first, first.index(k) if k in first else 0))
                rows.append(mask_example({k: item[k] for k in ordered}))
    return rows[:MAX_EXAMPLES]


def _meta(check: str, key: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"check": check, "key": key or check, **extra}


def _validate_frames(engine: Engine, stage: str, snapshot_date: date, run_id: str, started: float,
                     checks: Callable[[Any, Any, Any], list[CheckResult]]) -> list[CheckResult]:
    """Run ``checks(gx, context, run_ident)`` in a fresh GX context; build Data Docs, store, raise on errors."""
    docs_dir = data_docs_dir(snapshot_date, run_id, stage)
    context = ephemeral_context(docs_dir)
    try:
        results = checks(gx_module(), context, run_identifier(run_id))
        docs = build_docs(context, docs_dir)
    finally:
        close_context(context)
    return finish_validation(engine, stage, uuid.uuid4().hex, run_id, snapshot_date, results, docs, started)


# ------------------------------------------------------------------------------------- features


def _feature_frame(features: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``features`` with ``customer_id`` as a column and the numeric features as float64; their names."""
    frame = features.copy()
    frame.index = frame.index.rename("customer_id")
    frame = frame.reset_index()
    frame["customer_id"] = frame["customer_id"].astype(object).where(frame["customer_id"].notna(), None)
    numeric = [c for c in features.columns
               if pd.api.types.is_numeric_dtype(features[c]) and not pd.api.types.is_bool_dtype(features[c])]
    for col in numeric:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame, numeric


def _feature_expectations(gx: Any, specs: dict[str, CheckSpec], numeric: list[str]) -> list[Any]:
    E = gx.expectations
    s_rows, s_unique, s_finite = specs["features.not_empty"], specs["features.customer_id_unique"], specs["features.finite"]
    exps = [
        E.ExpectTableRowCountToBeBetween(min_value=s_rows.params["min_rows"], meta=_meta(s_rows.name)),
        E.ExpectColumnValuesToNotBeNull(column="customer_id", meta=_meta(s_unique.name, "id_not_null")),
        E.ExpectColumnValuesToBeUnique(column="customer_id", meta=_meta(s_unique.name, "id_unique")),
    ]
    for col in numeric:
        exps.append(E.ExpectColumnValuesToNotBeNull(column=col, meta=_meta(s_finite.name, f"nan:{col}")))
        exps.append(E.ExpectColumnValuesToBeBetween(column=col, min_value=-1.0e300, max_value=1.0e300,
                                                    meta=_meta(s_finite.name, f"inf:{col}")))
    return exps


def _feature_results(specs: dict[str, CheckSpec], frame: pd.DataFrame, numeric: list[str],
                     got: dict[str, Any]) -> list[CheckResult]:
    s_rows, s_unique, s_finite = specs["features.not_empty"], specs["features.customer_id_unique"], specs["features.finite"]
    n = len(frame)
    row_res = got.get(s_rows.name, [])
    ok = bool(row_res) and all(r.success for r in row_res)
    results = [CheckResult(s_rows.name, "features", None, s_rows.rule, s_rows.severity, ok, f"{n:,} customers",
                           suite="features", status="passed" if ok else "failed", observed_value=float(n))]
    id_res = got.get("id_not_null", []) + got.get("id_unique", [])
    ok = all(r.success for r in id_res)
    dup = int(frame["customer_id"].duplicated(keep=False).sum())
    nulls = int(frame["customer_id"].isna().sum())
    results.append(CheckResult(
        s_unique.name, "features", "customer_id", s_unique.rule, s_unique.severity, ok,
        "one row per customer" if ok else f"{dup:,} rows share a customer_id, {nulls:,} without one",
        examples=[] if ok else _unexpected_examples(id_res), suite="features",
        status="passed" if ok else "failed", observed_value=float(dup + nulls)))
    for col in numeric:
        col_res = got.get(f"nan:{col}", []) + got.get(f"inf:{col}", [])
        ok = all(r.success for r in col_res)
        values = frame[col].to_numpy()
        n_nan = int(pd.isna(values).sum())
        n_inf = int((~pd.isna(values) & ~pd.Series(values).between(-1e300, 1e300).to_numpy()).sum())
        results.append(CheckResult(
            f"{s_finite.name}.{col}", "features", col, f"{col} is finite (no NaN, no +-inf)", s_finite.severity, ok,
            "all finite" if ok else f"{n_nan:,} NaN and {n_inf:,} infinite of {n:,}",
            examples=[] if ok else _unexpected_examples(col_res), suite="features",
            status="passed" if ok else "failed", observed_value=float(n_nan + n_inf)))
    return results


def validate_features(engine: Engine, features: pd.DataFrame, snapshot_date: date, run_id: str) -> list[CheckResult]:
    """Feature suite: one row per customer (index ``customer_id``) and every numeric feature finite.

    Non-numeric columns (categorical descriptors) are not checked. Stores results, writes Data
    Docs, raises ``DataQualityError`` on an error-severity failure.
    """
    started = time.perf_counter()
    specs = resolve_checks(None)
    ensure_segmentation_tables(engine)
    frame, numeric = _feature_frame(features)

    def checks(gx: Any, context: Any, run_ident: Any) -> list[CheckResult]:
        exps = _feature_expectations(gx, specs, numeric)
        got = _run_frame_suite(gx, context, "features", frame, exps, run_ident, "customer_id")
        return _feature_results(specs, frame, numeric, got)

    return _validate_frames(engine, "features", snapshot_date, run_id, started, checks)


# --------------------------------------------------------------------------------------- output


@dataclass
class _OutputFrames:
    """The frames the output suites validate."""

    pop: pd.Index  # the population's customer ids (text)
    per_customer: pd.DataFrame  # customer_id, segments_assigned
    assigned: pd.DataFrame  # customer_id, segment_id, in_population
    seg: pd.Series  # segment_id as numbers (NaN when missing)


def _output_frames(assignments: pd.DataFrame, population_ids: pd.Index) -> _OutputFrames:
    assigned = pd.DataFrame({"customer_id": assignments.index.astype(str), "segment_id": assignments["segment_id"].to_numpy()})
    pop = pd.Index(population_ids).astype(str)
    counts = assigned["customer_id"].value_counts()
    per_customer = pd.DataFrame({"customer_id": pop, "segments_assigned": counts.reindex(pop).fillna(0).astype(int).to_numpy()})
    assigned["in_population"] = assigned["customer_id"].isin(set(pop))
    seg = pd.to_numeric(assigned["segment_id"], errors="coerce")
    return _OutputFrames(pop, per_customer, assigned, seg)


def _run_output_suites(gx: Any, context: Any, ident: Any, specs: dict[str, CheckSpec], f: _OutputFrames) -> dict[str, Any]:
    """One GX suite per output frame; results by check key."""
    E = gx.expectations
    one, unknown = specs["output.one_segment_per_customer"], specs["output.no_unknown_customers"]
    notnull = specs["output.segment_id_not_null"]
    got = _run_frame_suite(gx, context, "output_population", f.per_customer, [
        E.ExpectColumnValuesToBeInSet(column="segments_assigned", value_set=[1], meta=_meta(one.name)),
    ], ident, "customer_id")
    got.update(_run_frame_suite(gx, context, "output_assignments", f.assigned, [
        E.ExpectColumnValuesToBeInSet(column="in_population", value_set=[True], meta=_meta(unknown.name)),
        E.ExpectColumnValuesToNotBeNull(column="segment_id", meta=_meta(notnull.name)),
    ], ident, "customer_id"))
    return got


def _gate(got: dict[str, Any], spec: CheckSpec, keys: list[str], rule: str, observed_ok: str, observed_bad: str,
          value: float, examples: bool = True) -> CheckResult:
    """One output check: passed when every GX result under ``keys`` passed."""
    res = [r for k in keys for r in got.get(k, [])]
    ok = bool(res) and all(r.success for r in res)
    return CheckResult(spec.name, "assignments", spec.column, rule, spec.severity, ok,
                       observed_ok if ok else observed_bad,
                       examples=[] if ok or not examples else _unexpected_examples(res),
                       suite="output", status="passed" if ok else "failed", observed_value=value)


def _output_results(specs: dict[str, CheckSpec], f: _OutputFrames, got: dict[str, Any]) -> list[CheckResult]:
    one, unknown = specs["output.one_segment_per_customer"], specs["output.no_unknown_customers"]
    notnull = specs["output.segment_id_not_null"]
    missing = int((f.per_customer["segments_assigned"] == 0).sum())
    multi = int((f.per_customer["segments_assigned"] > 1).sum())
    extra = int((~f.assigned["in_population"]).sum())
    nseg = int(f.seg.isna().sum())
    return [
        _gate(got, one, [one.name], one.rule, f"{len(f.pop):,} customers, one segment each",
              f"{missing:,} without a segment, {multi:,} with several", float(missing + multi)),
        _gate(got, unknown, [unknown.name], unknown.rule, "none",
              f"{extra:,} assigned customer(s) not in the population", float(extra)),
        _gate(got, notnull, [notnull.name], notnull.rule, "none", f"{nseg:,} assignment(s) without segment_id",
              float(nseg)),
    ]


def validate_output(engine: Engine, assignments: pd.DataFrame, population_ids: pd.Index, snapshot_date: date,
                    run_id: str) -> list[CheckResult]:
    """Output suite: every population customer has exactly one segment, and nobody else has one.

    The model's own thresholds (silhouette, segment shares) are the quality gate's
    (``include.segmentation.model.quality_gate``), checked once, before this suite runs.

    ``assignments``: index ``customer_id``, column ``segment_id``. Stores results, writes Data
    Docs, raises ``DataQualityError`` on an error-severity failure.
    """
    started = time.perf_counter()
    specs = resolve_checks(None)
    ensure_segmentation_tables(engine)
    frames = _output_frames(assignments, population_ids)

    def checks(gx: Any, context: Any, run_ident: Any) -> list[CheckResult]:
        got = _run_output_suites(gx, context, run_ident, specs, frames)
        return _output_results(specs, frames, got)

    return _validate_frames(engine, "output", snapshot_date, run_id, started, checks)
