"""Stage 1: validate the raw source tables for the run's window, inside the warehouse.

Per table a *schema* suite (GX table asset: every contract column exists with a compatible type;
metadata only, no scan) and a *data* suite on a GX query asset whose SQL (``raw_plan``) computes
every quantity the checks need in ONE scan of the window. The data source runs with
``create_temp_table``, so GX materialises that one-row result once and evaluates each
``ExpectColumnMaxToBeBetween`` on it: raw rows never leave the warehouse. Example rows are read
only for failed checks (``raw_sql.fetch_examples``).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from include.segmentation.quality.checks import (
    CONTRACT_TYPES,
    TYPE_FAMILIES,
    CalendarSpec,
    CheckSpec,
    resolve_calendar,
    resolve_checks,
)
from include.segmentation.quality.gx import (
    add_warehouse_source,
    build_docs,
    close_context,
    data_docs_dir,
    ephemeral_context,
    gx_module,
    metric_error,
    run_identifier,
    run_suite,
)
from include.segmentation.quality.masking import mask_text
from include.segmentation.quality.raw_plan import Expect, Plan, TableFacts, ever_populated, plan_table, read_facts
from include.segmentation.quality.raw_sql import RAW_TABLES, Sql, Window, fetch_examples
from include.segmentation.quality.results import CheckResult, finish_validation
from include.segmentation.store import ensure_segmentation_tables

log = logging.getLogger(__name__)

_FAMILY_TYPES: dict[str, tuple[type, ...]] = {
    "text": (sa.String,),
    "timestamp": (sa.DateTime,),
    "integer": (sa.Integer,),
    "numeric": (sa.Numeric, sa.Float, sa.Integer),
    "boolean": (sa.Boolean,),
}


@dataclass
class _Run:
    """Everything one raw-window validation's suites share."""

    gx: Any
    context: Any
    catalog: Any  # GX data source for table assets (no temp tables)
    ds: Any  # GX data source for the profile queries (temp tables)
    engine: Engine
    w: Window
    specs: dict[str, CheckSpec]
    facts: dict[str, TableFacts]
    populated_ok: set[str]
    run_ident: Any
    calendar: CalendarSpec


def _why(exc: BaseException) -> str:
    """The first line of an error, masked and shortened, for a check that could not run."""
    text_ = str(exc).strip()
    return mask_text(text_.splitlines()[0] if text_ else type(exc).__name__)[:300]


def _skipped(spec: CheckSpec, suite: str, why: str) -> CheckResult:
    return CheckResult(spec.name, spec.table, spec.column, spec.rule, spec.severity, True, f"not run: {why}",
                       suite=suite, status="skipped")


# --------------------------------------------------------------------------------- schema suite


def _column_types(engine: Engine, table: str) -> dict[str, Any]:
    """Reflected SQLAlchemy types of ``raw.table``'s columns (tables and views alike)."""
    with engine.connect() as conn:
        cols = sa.inspect(conn).get_columns(table, schema="raw")
        conn.rollback()
    return {c["name"]: c["type"] for c in cols}


def _type_name(typ: Any, engine: Engine) -> str:
    try:
        return str(typ.compile(dialect=engine.dialect))
    except Exception:  # noqa: BLE001 - a type the dialect cannot render: show its class
        return type(typ).__name__


def _column_check(col: str, family: str, exists: bool, typ: Any, engine: Engine) -> tuple[bool, str]:
    """(ok, observed) of one contract column: present, with a type of its family."""
    if not exists or typ is None:
        return False, "column missing (renamed or dropped?)"
    if isinstance(typ, sa.types.NullType):
        return True, "present, type not declared (view expression): not checked"
    if isinstance(typ, _FAMILY_TYPES[family]) and not (family == "integer" and isinstance(typ, sa.Boolean)):
        return True, f"present, type {_type_name(typ, engine)}"
    return False, f"type {_type_name(typ, engine)}, not a {family} type"


def _schema_results(run: _Run, table: str, spec: CheckSpec) -> list[CheckResult]:
    """Schema suite of one existing raw table: one result per contract column (exists, compatible type).

    Existence is a GX ``ExpectColumnToExist`` on a table asset (catalogue metadata, no scan). The
    type family is checked on the reflected SQLAlchemy type (``isinstance`` on the generic type),
    because GX compares PostgreSQL types as exact strings (``NUMERIC(12, 2)``), which would
    reject a view's ``numeric(14, 4)``.
    """
    gx = run.gx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # schema_name is deprecated in GX 1.14 but is how an attached SQLite schema is named
        asset = run.catalog.add_table_asset(name=f"raw_{table}_table", table_name=table, schema_name="raw")
    batch = asset.add_batch_definition_whole_table("whole_table")
    severity = "critical" if spec.severity == "error" else "warning"
    expectations = [
        gx.expectations.ExpectColumnToExist(
            column=col, meta={"check": spec.name, "table": table, "column": col}, severity=severity,
            description=f"{spec.name}: contract column raw.{table}.{col} exists")
        for col in CONTRACT_TYPES[table]
    ]
    res = run_suite(gx, run.context, f"raw_{table}_schema", batch, expectations, run.run_ident)
    exists = {(r.expectation_config.meta or {}).get("column"): bool(r.success) for r in res.results}
    types = _column_types(run.engine, table)
    out: list[CheckResult] = []
    for col, family in CONTRACT_TYPES[table].items():
        rule = f"column {col} exists with a {family} type ({', '.join(TYPE_FAMILIES[family])})"
        ok, observed = _column_check(col, family, bool(exists.get(col)), types.get(col), run.engine)
        out.append(CheckResult(f"{spec.name}.{col}", table, col, rule, spec.severity, ok, observed,
                               suite=f"raw_{table}", status="passed" if ok else "failed"))
    return out


def _schema_suites(run: _Run) -> list[CheckResult]:
    """The schema suite of every raw table (a missing table is a failed check, not a crash)."""
    results: list[CheckResult] = []
    for table in RAW_TABLES:
        spec = run.specs[f"{table}.schema"]
        if not spec.enabled:
            results.append(_skipped(spec, f"raw_{table}", "disabled by configuration"))
        elif not run.facts[table].exists:
            results.append(CheckResult(spec.name, table, None, f"table raw.{table} exists", spec.severity, False,
                                       f"table raw.{table} does not exist", suite=f"raw_{table}", status="failed"))
        else:
            try:
                results.extend(_schema_results(run, table, spec))
            except Exception as exc:  # noqa: BLE001 - reported as a failed check
                results.append(CheckResult(spec.name, table, None, spec.rule, spec.severity, False,
                                           f"could not be evaluated: {_why(exc)}", suite=f"raw_{table}",
                                           status="failed"))
    return results


# ----------------------------------------------------------------------------------- data suite


def _expectation(gx: Any, e: Expect) -> Any:
    """The GX ``ExpectColumnMaxToBeBetween`` of one planned check."""
    severity = e.severity or e.spec.severity
    kwargs: dict[str, Any] = {
        "column": e.column,
        "meta": {"check": e.spec.name, "table": e.spec.table, "column": e.spec.column},
        "description": f"{e.spec.name}: {e.spec.rule} [{severity}]",
        "severity": "critical" if severity == "error" else "warning",
    }
    if e.min_value is not None:
        kwargs["min_value"] = e.min_value
    if e.max_value is not None:
        kwargs["max_value"] = e.max_value
    if e.strict_max:
        kwargs["strict_max"] = True
    return gx.expectations.ExpectColumnMaxToBeBetween(**kwargs)


def _expect_result(run: _Run, plan: Plan, e: Expect, r: Any, row_count: Any) -> CheckResult:
    """Turn GX's result of one planned expectation into a CheckResult (examples for failures)."""
    severity = e.severity or e.spec.severity
    err = metric_error(r)
    value = (r.result or {}).get("observed_value")
    if err:
        observed, ok, num = f"could not be evaluated: {err}", False, None
    else:
        observed, ok = e.fmt(value), bool(r.success)
        num = float(value) if isinstance(value, int | float) and math.isfinite(float(value)) else None
    if e.spec.name.endswith("_populated"):
        if severity != e.spec.severity and not ok:
            observed += " (never populated in this warehouse: warning only)"
        if row_count == 0:  # no rows: says nothing about whether the source fills the column
            num = None
    result = CheckResult(e.spec.name, plan.table, e.spec.column, e.spec.rule, severity, ok, observed,
                         suite=f"raw_{plan.table}", status="passed" if ok else "failed", observed_value=num)
    if not ok and e.example is not None and not err:
        table, predicate, windowed = e.example
        result.examples = fetch_examples(run.engine, run.w, table, predicate, windowed)
    return result


def _data_results(run: _Run, plan: Plan) -> list[CheckResult]:
    """Run the data suite of one raw table (one scan) and turn GX results into CheckResults."""
    suite_name = f"raw_{plan.table}"
    asset = run.ds.add_query_asset(name=f"raw_{plan.table}_profile", query=plan.query)
    batch = asset.add_batch_definition_whole_table("window")
    started = time.perf_counter()
    res = run_suite(run.gx, run.context, suite_name, batch, [_expectation(run.gx, e) for e in plan.expects],
                    run.run_ident)
    by_check = {(r.expectation_config.meta or {}).get("check"): r for r in res.results}
    row_count = next(((by_check[e.spec.name].result or {}).get("observed_value") for e in plan.expects
                      if e.column == "row_count" and e.spec.name in by_check), None)
    log.info("validate_raw: raw.%s: %s %s, data suite of %d checks in %.1fs", plan.table,
             "n/a" if row_count is None else f"{int(row_count):,}",
             "rows" if plan.table == "customers" else "rows in the window", len(plan.expects),
             time.perf_counter() - started)
    out = list(plan.fixed)
    for e in plan.expects:
        r = by_check.get(e.spec.name)
        if r is None:  # pragma: no cover - GX returns one result per expectation
            out.append(CheckResult(e.spec.name, plan.table, e.spec.column, e.spec.rule, e.severity or e.spec.severity,
                                   False, "no result from Great Expectations", suite=suite_name, status="failed"))
            continue
        out.append(_expect_result(run, plan, e, r, row_count))
    return out


def _run_plan(run: _Run, plan: Plan) -> list[CheckResult]:
    """The data suite's results; a suite that cannot run is a failed check per expectation, never a crash."""
    try:
        return _data_results(run, plan)
    except Exception as exc:  # noqa: BLE001 - reported as failed checks
        why = _why(exc)
        log.error("data quality: the raw.%s suite could not run: %s", plan.table, why)
        return list(plan.fixed) + [
            CheckResult(e.spec.name, plan.table, e.spec.column, e.spec.rule, e.severity or e.spec.severity, False,
                        f"could not be evaluated: {why}", suite=f"raw_{plan.table}", status="failed")
            for e in plan.expects
        ]


def _events_present(run: _Run, specs: list[CheckSpec]) -> tuple[list[CheckResult], list[CheckSpec]]:
    """``browsing_events.table_not_empty`` (an empty source only warns) and the remaining specs to run."""
    present = run.specs["browsing_events.table_not_empty"]
    specs = [s for s in specs if s is not present]
    has_rows = run.facts["browsing_events"].has_rows
    if not present.enabled:
        results = [_skipped(present, "raw_browsing_events", "disabled by configuration")]
    else:
        results = [CheckResult(
            present.name, "browsing_events", None, present.rule, present.severity, has_rows,
            "raw.browsing_events has rows" if has_rows else "raw.browsing_events is empty: the source has no browsing data",
            suite="raw_browsing_events", status="passed" if has_rows else "failed")]
    if not has_rows:
        results.extend(_skipped(s, "raw_browsing_events", "raw.browsing_events is empty") for s in specs)
        return results, []
    return results, specs


def _table_data(run: _Run, table: str, broken: list[str]) -> list[CheckResult]:
    """The data checks of one raw table: skipped after a schema failure, else planned and run."""
    specs = [s for n, s in run.specs.items() if s.table == table and not n.endswith(".schema")]
    if broken:
        why = f"schema check failed for raw.{', raw.'.join(broken)}"
        return [_skipped(s, f"raw_{table}", why) for s in specs]
    results: list[CheckResult] = []
    if table == "browsing_events":
        results, specs = _events_present(run, specs)
        if not run.facts[table].has_rows:
            return results
    started = time.perf_counter()
    log.info("validate_raw: raw.%s: planning (calendar, plausibility) ...", table)
    plan = plan_table(table, Sql(run.engine), run.w, run.specs, run.facts, run.populated_ok, run.calendar)
    log.info("validate_raw: raw.%s: %d calendar/plausibility checks in %.1fs; running the data suite ...",
             table, len(plan.fixed), time.perf_counter() - started)
    planned = {e.spec.name for e in plan.expects} | {r.check for r in plan.fixed}
    results.extend(_skipped(s, f"raw_{table}", "not applicable" if s.enabled else "disabled by configuration")
                   for s in specs if s.name not in planned)
    results.extend(_run_plan(run, plan))
    return results


def validate_raw_window(engine: Engine, snapshot_date: date, window_days: int, run_id: str,
                        overrides: dict | None = None) -> list[CheckResult]:
    """Validate the raw source tables for the window ``[S - window_days, S)`` inside the warehouse.

    Runs the schema suites first; if a contract column is missing or has an incompatible type the
    data suites are not run (they would fail with SQL errors) and are recorded as skipped. Stores
    every result in ``segmentation.quality_results``, writes Data Docs and logs where, raises
    ``DataQualityError`` when an error-severity check fails, else returns all results.
    """
    started = time.perf_counter()
    if int(window_days) < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days!r}")
    specs = resolve_checks(overrides)
    calendar = resolve_calendar(overrides)
    log.info("validate_raw: started for snapshot %s, window %d days (run %s)", snapshot_date, window_days, run_id)
    ensure_segmentation_tables(engine)
    w = Window(snapshot_date, int(window_days), datetime.now(timezone.utc).replace(microsecond=0))
    facts = read_facts(engine)
    populated_ok = ever_populated(engine, [n for n in specs if n.endswith("_populated")])
    docs_dir = data_docs_dir(snapshot_date, run_id, "raw_window")
    validation_id = uuid.uuid4().hex
    context = ephemeral_context(docs_dir)
    try:
        gx = gx_module()
        catalog = add_warehouse_source(context, engine, "warehouse_catalog", temp_tables=False)
        ds = add_warehouse_source(context, engine, "warehouse", temp_tables=True)
        run = _Run(gx, context, catalog, ds, engine, w, specs, facts, populated_ok, run_identifier(run_id), calendar)
        results = _schema_suites(run)
        log.info("validate_raw: schema suites done (%d columns checked) at %.1fs", len(results),
                 time.perf_counter() - started)
        broken = sorted({r.table for r in results if r.failed})
        for table in RAW_TABLES:
            table_started = time.perf_counter()
            log.info("validate_raw: raw.%s: started", table)
            table_results = _table_data(run, table, broken)
            results.extend(table_results)
            log.info("validate_raw: raw.%s: done, %d results (%d failed) in %.1fs", table, len(table_results),
                     sum(r.failed for r in table_results), time.perf_counter() - table_started)
        docs = build_docs(context, docs_dir)
        log.info("validate_raw: Data Docs built at %.1fs", time.perf_counter() - started)
    finally:
        close_context(context)
    return finish_validation(engine, "raw window", validation_id, run_id, snapshot_date, results, docs, started)
