"""Data quality with Great Expectations 1.x: nothing bad is published, and the user is told why.

Three stages, each a function the pipeline calls:

- ``validate_raw_window``: suites on the raw source tables. Per table a *schema* suite (GX table
  asset: every contract column exists with a compatible type; metadata only, no scan) and a
  *data* suite on a GX query asset whose SQL computes, in ONE scan of the run's window inside the
  warehouse, every quantity the checks need (null counts, rule violations, shares, orphans via a
  join with ``raw.customers``, last-day volume, freshness, out-of-range timestamps of the whole
  table through the timestamp index). The data source runs with ``create_temp_table``, so GX
  materialises that one-row result once and evaluates each ``ExpectColumnMaxToBeBetween`` on it:
  raw rows never leave the warehouse, and the window is scanned once per table.
- ``validate_features``: the feature frame (pandas, in memory already): one row per customer,
  every numeric feature finite.
- ``validate_output``: every population customer has exactly one segment, shares and silhouette
  within the run's gates.

Every check's result is stored in ``segmentation.quality_results`` (one transaction per
validation); GX Data Docs are written to
``<artifacts>/data_docs/<snapshot_date>/<run_id>/<stage>/index.html`` (``<artifacts>`` =
``$SEGMENTATION_ARTIFACTS_DIR``, default ``<project>/artifacts``) and the log says where. An
error-severity failure raises ``DataQualityError``, whose message lists each failed check with
table, column, rule, observed value and up to five example rows (e-mails and phones masked).
Severities and thresholds: ``quality_checks.QUALITY_CHECKS``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Engine, bindparam, text

from include.segmentation.errors import PermanentError
from include.segmentation.quality.checks import (
    CONTRACT_TYPES,
    TIMESTAMP_COLUMNS,
    TYPE_FAMILIES,
    CheckSpec,
    resolve_checks,
)
from include.segmentation.settings import data_docs_root
from include.segmentation.sources import EVENT_TYPES
from include.segmentation.store import (
    SCHEMA,
    SCHEMAS,
    WarehouseError,
    bulk_insert,
    ensure_segmentation_tables,
    is_sqlite,
    quality_results,
    sqlite_schema_path,
    table_exists,
    ts_param,
)

log = logging.getLogger(__name__)
# GX logs a lot at INFO; the project only wants its warnings.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

MAX_EXAMPLES = 5
_SITE = "segmentation_quality"
_RAW_TABLES = ("customers", "transactions", "browsing_events")
_EXAMPLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "created_at", "birth_year", "country", "email", "phone", "marketing_consent"),
    "transactions": (
        "order_id", "line_number", "customer_id", "ordered_at", "product_id", "quantity", "unit_price", "discount",
    ),
    "browsing_events": ("event_id", "session_id", "customer_id", "occurred_at", "event_type", "dwell_seconds"),
}


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    """The outcome of one check. ``examples`` are masked; ``status`` is passed, failed or skipped."""

    check: str
    table: str
    column: str | None
    rule: str
    severity: str
    success: bool
    observed: str
    examples: list[dict[str, Any]] = field(default_factory=list)
    suite: str = ""
    status: str = "passed"
    observed_value: float | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def describe(self) -> str:
        """One line for logs and error messages: check, severity, table.column, rule, observed, examples."""
        where = self.table if not self.column else f"{self.table}.{self.column}"
        line = f"{self.check} [{self.severity}] {where}: rule '{self.rule}'; observed {self.observed}"
        if self.examples:
            shown = "; ".join(json.dumps(e, default=str, sort_keys=False) for e in self.examples[:MAX_EXAMPLES])
            line += f"; examples: {shown}"
        return line


class DataQualityError(PermanentError, RuntimeError):
    """An error-severity check failed: ``str(exc)`` lists each failed check; ``results`` holds all results."""

    def __init__(self, message: str, results: list[CheckResult], data_docs: Path | None = None) -> None:
        super().__init__(message)
        self.results = results
        self.data_docs = data_docs


# ---------------------------------------------------------------------------------------------
# Masking: e-mails and phones never appear in clear in messages, logs, the results table or docs
# ---------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9])[A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*(\.[A-Za-z]{2,})\b")
# A phone-like token: optional "+", 7+ digits with spaces/dashes/dots/parentheses, standing alone
# (not part of an id such as "E00000-00012931" or "O00001-0000042").
_PHONE_IN_TEXT = re.compile(r"(?<![\w+.\-])\+?\(?\d[\d\s().-]{5,}\d(?![\w\-])")


def mask_email(value: str) -> str:
    """``jane.doe@gmail.com`` -> ``j***@g***.com`` (first letters and the top-level domain only)."""
    m = _EMAIL.search(value)
    if not m:
        return "***"
    return f"{m.group(1)}***@{m.group(2)}***{m.group(3)}"


def mask_phone(value: str) -> str:
    """``+49 170 1230123`` -> ``***0123`` (only the last four digits)."""
    digits = re.sub(r"\D", "", value)
    return "***" + digits[-4:] if len(digits) > 4 else "***"


def mask_text(value: str) -> str:
    """Mask every e-mail address and phone-like number (7+ digits with +, spaces, dashes) in free text."""
    value = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}***{m.group(3)}", value)

    def phone(m: re.Match[str]) -> str:
        s = m.group(0)
        # Timestamps and dates are not phones: only mask runs that look like a number, not a date.
        if re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}", s) or len(re.sub(r"\D", "", s)) < 7:
            return s
        return mask_phone(s)

    return _PHONE_IN_TEXT.sub(phone, value)


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        return _json_value(value.item())
    return str(value)


def mask_example(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy of one example row with e-mails and phones masked (by column and in any text)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        v = _json_value(value)
        if isinstance(v, str):
            name = str(key).lower()
            if "email" in name or "e_mail" in name:
                v = mask_email(v)
            elif "phone" in name or "mobile" in name:
                v = mask_phone(v)
            else:
                v = mask_text(v)
        out[str(key)] = v
    return out


# ---------------------------------------------------------------------------------------------
# The results table
# ---------------------------------------------------------------------------------------------

def _store(engine: Engine, validation_id: str, run_id: str, snapshot_date: date, results: list[CheckResult],
           docs: Path | None) -> None:
    """Write every result of one validation in ONE transaction (all or nothing)."""
    checked_at = datetime.now(timezone.utc).replace(microsecond=0)
    frame = pd.DataFrame(
        {
            "validation_id": validation_id,
            "run_id": run_id,
            "snapshot_date": [snapshot_date] * len(results),
            "suite": [r.suite for r in results],
            "check_name": [r.check for r in results],
            "table_name": [r.table for r in results],
            "column_name": [r.column for r in results],
            "rule": [r.rule for r in results],
            "severity": [r.severity for r in results],
            "status": [r.status for r in results],
            "success": pd.array([None if r.status == "skipped" else r.success for r in results], dtype="boolean"),
            "observed": [mask_text(r.observed) for r in results],
            "observed_value": pd.array([r.observed_value for r in results], dtype="Float64"),
            "examples": [json.dumps(r.examples, default=str) if r.examples else None for r in results],
            "data_docs": str(docs) if docs else None,
            "checked_at": pd.Timestamp(checked_at),
        }
    )
    with engine.begin() as conn:
        bulk_insert(conn, SCHEMA, quality_results.name, frame)


# ---------------------------------------------------------------------------------------------
# Great Expectations plumbing
# ---------------------------------------------------------------------------------------------


def data_docs_dir(snapshot_date: date, run_id: str, stage: str) -> Path:
    """Where one validation's Data Docs go: ``<artifacts>/data_docs/<S>/<run_id>/<stage>/``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "run"
    return data_docs_root() / snapshot_date.isoformat() / safe / stage


def _gx() -> Any:
    """Import great_expectations lazily (about 2 s): DAG parsing and light imports stay fast."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx


def _context(docs: Path) -> Any:
    """An ephemeral GX context (nothing persisted but the Data Docs site in ``docs``)."""
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    docs.mkdir(parents=True, exist_ok=True)
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={
            _SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _add_warehouse(context: Any, engine: Engine, name: str, temp_tables: bool) -> Any:
    """A GX SQL data source on the warehouse, connecting through the engine's own driver settings.

    The connection string handed to GX never carries the password (connections come from
    ``creator``); on SQLite the creator attaches the raw/segmentation/evaluation schema files the
    way ``warehouse.get_engine`` does. With ``temp_tables`` GX materialises each (one-row) profile
    query once and evaluates every expectation on that result; it is off for the source of the
    table assets, which would otherwise be copied whole.
    """
    url = engine.url
    if is_sqlite(engine):
        db = str(url.database)

        def sqlite_creator() -> sqlite3.Connection:
            conn = sqlite3.connect(db, timeout=60, check_same_thread=False)
            for schema in SCHEMAS:
                conn.execute("ATTACH DATABASE ? AS " + schema, (str(sqlite_schema_path(db, schema)),))
            return conn

        return context.data_sources.add_sqlite(
            name=name, connection_string=f"sqlite:///{db}", create_temp_table=temp_tables,
            kwargs={"creator": sqlite_creator},
        )
    if engine.dialect.name != "postgresql":
        raise WarehouseError(f"data quality supports PostgreSQL and SQLite warehouses, not {engine.dialect.name}")
    cargs, cparams = engine.dialect.create_connect_args(url)
    dbapi = engine.dialect.loaded_dbapi

    def pg_creator() -> Any:
        return dbapi.connect(*cargs, **cparams)

    return context.data_sources.add_postgres(
        name=name,
        connection_string=url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=True),
        create_temp_table=temp_tables,
        kwargs={"creator": pg_creator},
    )


def _close(context: Any) -> None:
    """Dispose GX's engines so no warehouse connection outlives the validation."""
    try:
        sources = context.data_sources.all().values()
    except Exception:  # pragma: no cover - defensive
        return
    for ds in sources:
        for getter in ("get_execution_engine", "get_engine"):
            try:
                obj = getattr(ds, getter)()
                (obj.close if hasattr(obj, "close") else obj.dispose)()
            except Exception:  # noqa: BLE001,S112 - best effort cleanup only
                continue


def _run_identifier(run_id: str) -> Any:
    from great_expectations.core.run_identifier import RunIdentifier

    return RunIdentifier(run_name=re.sub(r"[^A-Za-z0-9._-]+", "_", run_id), run_time=datetime.now(timezone.utc))


def _build_docs(context: Any, docs: Path) -> Path | None:
    """Render the context's validation results as HTML Data Docs; returns index.html (None on failure)."""
    try:
        context.build_data_docs(site_names=[_SITE])
    except Exception as exc:  # noqa: BLE001 - docs are a by-product; the results are stored anyway
        log.error("data quality: Data Docs could not be written to %s: %s", docs, mask_text(str(exc))[:500])
        return None
    index = docs / "index.html"
    return index if index.exists() else None


@dataclass
class _Expect:
    """One GX expectation on a profile column, and how to report it."""

    spec: CheckSpec
    column: str
    min_value: float | None = None
    max_value: float | None = None
    strict_max: bool = False
    fmt: Callable[[Any], str] = str
    example: tuple[str, str, bool] | None = None  # (table, predicate or "@kind", windowed)
    severity: str | None = None  # effective severity when it differs from the spec (populated checks)


def _expectation(gx: Any, e: _Expect) -> Any:
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


def _gx_error(result: Any) -> str | None:
    """The masked first line of a metric error (a check that could not run), if any."""
    info = getattr(result, "exception_info", None) or {}
    items = info.values() if isinstance(info, dict) and "raised_exception" not in info else [info]
    for item in items:
        if isinstance(item, dict) and item.get("raised_exception"):
            msg = str(item.get("exception_message") or "error").strip().splitlines()[0]
            return mask_text(msg)[:300]
    return None


# ---------------------------------------------------------------------------------------------
# SQL of the raw-window profiles
# ---------------------------------------------------------------------------------------------


class _Sql:
    """Dialect-specific pieces of the profile SQL (timestamps are literals: GX query assets take no
    bind parameters; every literal is rendered by SQLAlchemy from a ``datetime`` made here, never
    from user text)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)

    def ts(self, value: datetime | date) -> str:
        v = ts_param(self.engine, value)
        typ = sa.Text() if self.sqlite else sa.DateTime(timezone=True)
        expr = sa.literal(v, typ) if self.sqlite else sa.cast(sa.literal(v, typ), typ)
        return str(expr.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))

    def text_literal(self, value: str) -> str:
        return str(sa.literal(value, sa.Text()).compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))

    def flt(self, expr: str) -> str:
        return f"CAST({expr} AS {'REAL' if self.sqlite else 'DOUBLE PRECISION'})"

    def hours_before(self, cutoff_literal: str, ts_expr: str) -> str:
        if self.sqlite:
            return f"((julianday({cutoff_literal}) - julianday({ts_expr})) * 24.0)"
        return self.flt(f"EXTRACT(EPOCH FROM ({cutoff_literal} - {ts_expr})) / 3600.0")

    def day(self, ts_expr: str) -> str:
        return f"date({ts_expr})" if self.sqlite else f"CAST(({ts_expr}) AT TIME ZONE 'UTC' AS DATE)"


def _cnt(pred: str) -> str:
    return f"COALESCE(SUM(CASE WHEN {pred} THEN 1 ELSE 0 END), 0)"


@dataclass
class _Window:
    snapshot_date: date
    days: int
    now: datetime

    @property
    def cutoff(self) -> datetime:
        return datetime(self.snapshot_date.year, self.snapshot_date.month, self.snapshot_date.day, tzinfo=timezone.utc)

    @property
    def start(self) -> datetime:
        return self.cutoff - timedelta(days=self.days)

    @property
    def last_day(self) -> datetime:
        return self.cutoff - timedelta(days=1)


@dataclass
class _Facts:
    """What the pre-flight learned about one raw table (cheap catalogue/LIMIT 1 queries)."""

    exists: bool
    has_rows: bool = False
    unique_keys: dict[tuple[str, ...], str] = field(default_factory=dict)  # columns -> constraint name
    not_null: set[str] = field(default_factory=set)  # columns with a NOT NULL constraint


def _facts(engine: Engine) -> dict[str, _Facts]:
    """Existence, emptiness and enforced unique keys of each raw table."""
    out: dict[str, _Facts] = {}
    with engine.connect() as conn:
        insp = sa.inspect(conn)
        for table in _RAW_TABLES:
            if not table_exists(conn, "raw", table):
                out[table] = _Facts(exists=False)
                continue
            f = _Facts(exists=True)
            try:
                f.has_rows = conn.exec_driver_sql(f"SELECT 1 FROM raw.{table} LIMIT 1").first() is not None
            except sa.exc.DBAPIError:
                f.has_rows = True
            try:
                f.not_null = {c["name"] for c in insp.get_columns(table, schema="raw") if c.get("nullable") is False}
                pk = insp.get_pk_constraint(table, schema="raw")
                if pk and pk.get("constrained_columns"):
                    f.unique_keys[tuple(pk["constrained_columns"])] = pk.get("name") or "primary key"
                for uc in insp.get_unique_constraints(table, schema="raw"):
                    f.unique_keys[tuple(uc["column_names"])] = uc.get("name") or "unique constraint"
                for ix in insp.get_indexes(table, schema="raw"):
                    if ix.get("unique"):
                        f.unique_keys.setdefault(tuple(ix["column_names"]), ix.get("name") or "unique index")
            except (NotImplementedError, sa.exc.SQLAlchemyError):
                pass
            out[table] = f
        conn.rollback()
    return out


def _ever_populated(engine: Engine, checks: Iterable[str]) -> set[str]:
    """``*_populated`` checks that saw a value in an earlier validation of this warehouse."""
    names = sorted(set(checks))
    if not names:
        return set()
    sql = text(
        f"SELECT DISTINCT check_name FROM {SCHEMA}.{quality_results.name} "
        "WHERE check_name IN :names AND observed_value < 1 AND status <> 'skipped'"
    ).bindparams(bindparam("names", expanding=True))
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(sql, {"names": names})}


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.2%}"


def _rows(label: str) -> Callable[[Any], str]:
    """Format a row count with its unit: ``1 line``, ``3 lines``, ``0 events on 2026-11-25``."""

    def fmt(x: Any) -> str:
        if x is None:
            return "n/a"
        n = int(round(float(x)))
        word, _, rest = label.partition(" ")
        if n == 1 and word.endswith("s"):
            word = word[:-1]
        return f"{n:,} {word}{' ' + rest if rest else ''}"

    return fmt


@dataclass
class _Plan:
    """The data suite of one raw table: profile SQL, expectations, constraint-guaranteed results."""

    table: str
    query: str
    expects: list[_Expect]
    fixed: list[CheckResult]


def _plan_table(table: str, sql: _Sql, w: _Window, specs: dict[str, CheckSpec], facts: dict[str, _Facts],
                populated_ok: set[str]) -> _Plan:
    """Build the one-scan profile query of ``table`` and the expectations on its columns."""
    inner: dict[str, str] = {}  # aggregates over the window (alias t)
    outer: dict[str, str] = {}  # derived from inner (alias w) or whole-table scalar subqueries
    expects: list[_Expect] = []
    fixed: list[CheckResult] = []
    windowed = table in TIMESTAMP_COLUMNS
    unit = {"customers": "customers", "transactions": "lines", "browsing_events": "events"}[table]
    where_unit = f"{unit} in the window" if windowed else unit
    inner["row_count"] = "COUNT(*)"

    def spec(name: str) -> CheckSpec | None:
        s = specs[f"{table}.{name}"]
        return s if s.enabled else None

    def min_rows(name: str, column: str) -> None:
        if (s := spec(name)) is not None:
            expects.append(_Expect(s, column, min_value=s.params["min_rows"], fmt=_rows(unit)))

    def not_null(col: str) -> None:
        if (s := spec(f"{col}_not_null")) is not None and col in facts[table].not_null:
            fixed.append(CheckResult(s.name, table, s.column, s.rule, s.severity, True,
                                     f"guaranteed by the NOT NULL constraint on raw.{table}.{col}",
                                     suite=f"raw_{table}", status="passed", observed_value=0.0))
        elif s is not None:
            inner[f"{col}_nulls"] = _cnt(f"t.{col} IS NULL")
            expects.append(_Expect(s, f"{col}_nulls", max_value=0, fmt=_rows(f"{unit} with {col} NULL"),
                                   example=(table, f"t.{col} IS NULL", windowed)))

    def rate(name: str, pred: str, den: str | None, den_label: str, example: bool = True) -> None:
        s = spec(name)
        if s is None:
            return
        inner[f"{name}_rows"] = _cnt(pred)
        den_col = "row_count"
        if den is not None:
            den_col = f"{name}_den"
            inner[den_col] = _cnt(den)
        outer[f"{name}_share"] = f"COALESCE({sql.flt(f'w.{name}_rows')} / NULLIF(w.{den_col}, 0), 0.0)"
        ex = (table, pred, windowed) if example else None
        if s.params["max_share"] == 0:
            expects.append(_Expect(s, f"{name}_rows", max_value=0, fmt=_rows(unit), example=ex))
        else:
            expects.append(_Expect(s, f"{name}_share", max_value=s.params["max_share"],
                                   fmt=lambda x, lbl=den_label: f"{_pct(x)} of {lbl}", example=ex))

    def populated(col: str) -> None:
        s = spec(f"{col}_populated")
        if s is None:
            return
        outer[f"{col}_null_share"] = f"COALESCE(1.0 - {sql.flt(f'w.{col}_values')} / NULLIF(w.row_count, 0), 0.0)"
        inner[f"{col}_values"] = f"COUNT(t.{col})"
        severity = s.severity if s.name in populated_ok else "warning"
        expects.append(_Expect(s, f"{col}_null_share", max_value=1.0, strict_max=True,
                               fmt=lambda x: f"NULL on {_pct(x)} of {where_unit}", severity=severity))

    def unique(name: str, cols: tuple[str, ...]) -> None:
        s = spec(name)
        if s is None:
            return
        enforced = facts[table].unique_keys.get(cols)
        if enforced:
            fixed.append(CheckResult(s.name, table, s.column, s.rule, s.severity, True,
                                     f"guaranteed by the warehouse constraint {enforced}", suite=f"raw_{table}",
                                     status="passed", observed_value=0.0))
            return
        keys = ", ".join(cols)
        scope = _window_pred(table, sql, w) if windowed else "1 = 1"
        nn = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        outer[f"{name}_keys"] = (
            f"(SELECT COUNT(*) FROM (SELECT {keys} FROM raw.{table} WHERE {scope} AND {nn} "
            f"GROUP BY {keys} HAVING COUNT(*) > 1) d)"
        )
        expects.append(_Expect(s, f"{name}_keys", max_value=0, fmt=_rows("duplicated key value(s)"),
                               example=(table, f"@duplicates:{keys}", windowed)))

    def timestamps(col: str) -> None:
        future = sql.ts(max(w.now, w.cutoff) + timedelta(hours=float(specs[f"{table}.{col}_not_in_future"].params["tolerance_hours"])))
        too_old = sql.ts(date.fromisoformat(specs[f"{table}.{col}_not_too_old"].params["min_timestamp"]))
        scalar = not windowed  # customers: plain aggregates over the table already scanned
        for name, pred in ((f"{col}_not_null", f"{col} IS NULL"), (f"{col}_not_in_future", f"{col} > {future}"),
                           (f"{col}_not_too_old", f"{col} < {too_old}")):
            s = spec(name)
            if s is None:
                continue
            if name.endswith("_not_null") and col in facts[table].not_null:
                fixed.append(CheckResult(s.name, table, s.column, s.rule, s.severity, True,
                                         f"guaranteed by the NOT NULL constraint on raw.{table}.{col}",
                                         suite=f"raw_{table}", status="passed", observed_value=0.0))
                continue
            if scalar:
                inner[f"{name}_rows"] = _cnt(f"t.{pred}")
            else:
                outer[f"{name}_rows"] = f"(SELECT COUNT(*) FROM raw.{table} WHERE {pred})"
            expects.append(_Expect(s, f"{name}_rows", max_value=0, fmt=_rows(f"{unit} (whole table)" if windowed else unit),
                                   example=(table, f"t.{pred}", False)))

    def volume(col: str) -> None:
        last_day = sql.ts(w.last_day)
        cutoff = sql.ts(w.cutoff)
        inner["last_day_rows"] = _cnt(f"t.{col} >= {last_day}")
        min_rows("last_day_not_empty", "last_day_rows")
        for e in expects:
            if e.spec.name.endswith("last_day_not_empty"):
                e.fmt = _rows(f"{unit} on {w.last_day.date().isoformat()}")
                e.example = (table, "@daily", True)
        if (s := spec("last_day_volume")) is not None:
            n = min(int(s.params["trailing_days"]), w.days - 1)
            if n < 1:
                fixed.append(CheckResult(s.name, table, s.column, s.rule, s.severity, True,
                                         "not run: the window is a single day (no trailing days)",
                                         suite=f"raw_{table}", status="skipped"))
            else:
                trail = sql.ts(w.last_day - timedelta(days=n))
                inner["trailing_rows"] = _cnt(f"t.{col} >= {trail} AND t.{col} < {last_day}")
                outer["last_day_ratio"] = (
                    f"CASE WHEN w.trailing_rows = 0 THEN 1.0 ELSE {sql.flt(f'w.last_day_rows * {n}')} / w.trailing_rows END"
                )
                expects.append(_Expect(s, "last_day_ratio", min_value=s.params["min_ratio"], max_value=s.params["max_ratio"],
                                       fmt=lambda x, n=n: f"last day = {float(x):.2f} x the trailing {n}-day daily average",
                                       example=(table, "@daily", True)))
        if (s := spec("freshness")) is not None:
            inner["latest_at"] = f"MAX(t.{col})"
            outer["latest_age_hours"] = f"COALESCE({sql.hours_before(cutoff, 'w.latest_at')}, 1000000.0)"
            expects.append(_Expect(s, "latest_age_hours", max_value=s.params["max_age_hours"],
                                   fmt=lambda x: "no row in the window" if x is None or float(x) >= 1e6
                                   else f"latest {float(x):.1f} h before the cutoff"))

    if table == "customers":
        min_rows("not_empty", "row_count")
        not_null("customer_id")
        unique("customer_id_unique", ("customer_id",))
        not_null("marketing_consent")
        timestamps("created_at")
        if (s := spec("birth_year_plausible")) is not None:
            pred = f"t.birth_year < {int(s.params['min_year'])} OR t.birth_year > {w.snapshot_date.year}"
            inner["birth_year_plausible_rows"] = _cnt(pred)
            expects.append(_Expect(s, "birth_year_plausible_rows", max_value=0, fmt=_rows(unit),
                                   example=(table, pred, False)))
        for col in ("birth_year", "gender", "country", "city", "email", "phone"):
            populated(col)
        source = "raw.customers t"
        where = ""
    else:
        ts_col = TIMESTAMP_COLUMNS[table]
        min_rows("window_not_empty", "row_count")
        if table == "transactions":
            for col in ("order_id", "line_number", "product_id", "quantity", "unit_price", "discount"):
                not_null(col)
            unique("order_line_unique", ("order_id", "line_number"))
            rate("unit_price_non_negative", "t.customer_id IS NOT NULL AND t.unit_price < 0", "t.customer_id IS NOT NULL",
                 "customer lines")
            rate("guest_unit_price_non_negative", "t.customer_id IS NULL AND t.unit_price < 0", "t.customer_id IS NULL",
                 "guest lines")
            rate("discount_non_negative", "t.discount < 0", None, "lines")
            rate("discount_within_line_value", "t.unit_price >= 0 AND t.discount > ABS(t.quantity) * t.unit_price + 0.005",
                 None, "lines")
            rate("quantity_not_zero", "t.quantity = 0", None, "lines")
            rate("guest_line_share", "t.customer_id IS NULL", None, "lines")
            rate("return_line_share", "t.quantity < 0", None, "lines")
            populated("category")
        else:
            for col in ("event_id", "session_id", "event_type"):
                not_null(col)
            unique("event_id_unique", ("event_id",))
            types = ", ".join(sql.text_literal(t) for t in EVENT_TYPES)
            rate("event_type_known", f"t.event_type IS NOT NULL AND t.event_type NOT IN ({types})", None, "events")
            rate("dwell_seconds_non_negative", "t.dwell_seconds < 0", None, "events")
            rate("anonymous_event_share", "t.customer_id IS NULL", None, "events")
            for col in ("product_id", "category", "search_query", "dwell_seconds"):
                populated(col)
        known = spec("customer_ids_known")
        if known is not None:
            guaranteed = ("customer_id",) in facts["customers"].unique_keys
            customers_src = "raw.customers" if guaranteed else "(SELECT DISTINCT customer_id FROM raw.customers)"
            source = f"raw.{table} t LEFT JOIN {customers_src} k ON k.customer_id = t.customer_id"
            rate("customer_ids_known", "t.customer_id IS NOT NULL AND k.customer_id IS NULL", "t.customer_id IS NOT NULL",
                 "identified " + unit, example=False)
            for e in expects:
                if e.spec.name == known.name:
                    e.example = (table, "@orphans", True)
        else:
            source = f"raw.{table} t"
        timestamps(ts_col)
        volume(ts_col)
        where = f" WHERE {_window_pred(table, sql, w, alias='t')}"

    inner_sql = ", ".join(f"{expr} AS {name}" for name, expr in inner.items())
    outer_sql = "".join(f", {expr} AS {name}" for name, expr in outer.items())
    query = f"SELECT w.*{outer_sql} FROM (SELECT {inner_sql} FROM {source}{where}) w"
    return _Plan(table, query, expects, fixed)


def _window_pred(table: str, sql: _Sql, w: _Window, alias: str | None = None) -> str:
    col = TIMESTAMP_COLUMNS[table]
    col = f"{alias}.{col}" if alias else col
    return f"{col} >= {sql.ts(w.start)} AND {col} < {sql.ts(w.cutoff)}"


# ---------------------------------------------------------------------------------------------
# Examples: fetched only for failed checks, a handful of rows, pushed down with LIMIT
# ---------------------------------------------------------------------------------------------


def _examples(engine: Engine, w: _Window, table: str, predicate: str, windowed: bool) -> list[dict[str, Any]]:
    """Up to ``MAX_EXAMPLES`` masked rows of ``raw.table`` matching ``predicate`` (alias t)."""
    params: dict[str, Any] = {"start": ts_param(engine, w.start), "cutoff": ts_param(engine, w.cutoff)}
    ts_col = TIMESTAMP_COLUMNS.get(table)
    scope = f"t.{ts_col} >= :start AND t.{ts_col} < :cutoff" if windowed and ts_col else "1 = 1"
    if predicate.startswith("@duplicates:"):
        keys = predicate.split(":", 1)[1]
        sql = (f"SELECT {keys}, COUNT(*) AS copies FROM raw.{table} t WHERE {scope} "
               f"GROUP BY {keys} HAVING COUNT(*) > 1 LIMIT {MAX_EXAMPLES}")
    elif predicate == "@orphans":
        sql = (f"SELECT t.customer_id, COUNT(*) AS {'lines' if table == 'transactions' else 'events'} FROM raw.{table} t "
               f"WHERE {scope} AND t.customer_id IS NOT NULL AND NOT EXISTS "
               f"(SELECT 1 FROM raw.customers k WHERE k.customer_id = t.customer_id) "
               f"GROUP BY t.customer_id LIMIT {MAX_EXAMPLES}")
    elif predicate == "@daily" and ts_col:
        day = _Sql(engine).day(f"t.{ts_col}")
        params["from"] = ts_param(engine, w.cutoff - timedelta(days=7))
        sql = (f"SELECT {day} AS day, COUNT(*) AS row_count FROM raw.{table} t "
               f"WHERE t.{ts_col} >= :from AND t.{ts_col} < :cutoff GROUP BY {day} ORDER BY day DESC LIMIT 7")
    else:
        cols = ", ".join(f"t.{c}" for c in _EXAMPLE_COLUMNS[table])
        sql = f"SELECT {cols} FROM raw.{table} t WHERE {scope} AND ({predicate}) LIMIT {MAX_EXAMPLES}"
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(sql), params).mappings().all()
            conn.rollback()
    except sa.exc.SQLAlchemyError as exc:
        log.warning("data quality: examples for raw.%s could not be read: %s", table, mask_text(str(exc).splitlines()[0]))
        return []
    return [mask_example(dict(r)) for r in rows]


# ---------------------------------------------------------------------------------------------
# Stage 1: raw window
# ---------------------------------------------------------------------------------------------


_FAMILY_TYPES: dict[str, tuple[type, ...]] = {
    "text": (sa.String,),
    "timestamp": (sa.DateTime,),
    "integer": (sa.Integer,),
    "numeric": (sa.Numeric, sa.Float, sa.Integer),
    "boolean": (sa.Boolean,),
}


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


def _schema_results(gx: Any, context: Any, ds: Any, engine: Engine, table: str, spec: CheckSpec,
                    run_ident: Any) -> list[CheckResult]:
    """Schema suite of one existing raw table: one result per contract column (exists, compatible type).

    Existence is a GX ``ExpectColumnToExist`` on a table asset (catalogue metadata, no scan). The
    type family is checked on the reflected SQLAlchemy type (``isinstance`` on the generic type),
    because GX compares PostgreSQL types as exact strings (``NUMERIC(12, 2)``), which would
    reject a view's ``numeric(14, 4)``.
    """
    suite_name = f"raw_{table}_schema"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # schema_name is deprecated in GX 1.14 but is how an attached SQLite schema is named
        asset = ds.add_table_asset(name=f"raw_{table}_table", table_name=table, schema_name="raw")
    batch = asset.add_batch_definition_whole_table("whole_table")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    severity = "critical" if spec.severity == "error" else "warning"
    for col in CONTRACT_TYPES[table]:
        suite.add_expectation(gx.expectations.ExpectColumnToExist(
            column=col, meta={"check": spec.name, "table": table, "column": col}, severity=severity,
            description=f"{spec.name}: contract column raw.{table}.{col} exists"))
    vd = context.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch, suite=suite))
    res = vd.run(result_format="SUMMARY", run_id=run_ident)
    exists = {(r.expectation_config.meta or {}).get("column"): bool(r.success) for r in res.results}
    types = _column_types(engine, table)
    out: list[CheckResult] = []
    for col, family in CONTRACT_TYPES[table].items():
        rule = f"column {col} exists with a {family} type ({', '.join(TYPE_FAMILIES[family])})"
        typ = types.get(col)
        if not exists.get(col) or typ is None:
            ok, observed = False, "column missing (renamed or dropped?)"
        elif isinstance(typ, sa.types.NullType):
            ok, observed = True, "present, type not declared (view expression): not checked"
        elif isinstance(typ, _FAMILY_TYPES[family]) and not (family == "integer" and isinstance(typ, sa.Boolean)):
            ok, observed = True, f"present, type {_type_name(typ, engine)}"
        else:
            ok, observed = False, f"type {_type_name(typ, engine)}, not a {family} type"
        out.append(CheckResult(f"{spec.name}.{col}", table, col, rule, spec.severity, ok, observed,
                               suite=f"raw_{table}", status="passed" if ok else "failed"))
    return out


def _data_results(gx: Any, context: Any, ds: Any, plan: _Plan, engine: Engine, w: _Window,
                  run_ident: Any) -> list[CheckResult]:
    """Run the data suite of one raw table (one scan) and turn GX results into CheckResults."""
    suite_name = f"raw_{plan.table}"
    asset = ds.add_query_asset(name=f"raw_{plan.table}_profile", query=plan.query)
    batch = asset.add_batch_definition_whole_table("window")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for e in plan.expects:
        suite.add_expectation(_expectation(gx, e))
    vd = context.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch, suite=suite))
    started = time.perf_counter()
    res = vd.run(result_format="SUMMARY", run_id=run_ident)
    log.info("data quality: raw.%s profiled and checked in %.1fs", plan.table, time.perf_counter() - started)
    by_check = {(r.expectation_config.meta or {}).get("check"): r for r in res.results}
    row_count = next(((by_check[e.spec.name].result or {}).get("observed_value") for e in plan.expects
                      if e.column == "row_count" and e.spec.name in by_check), None)
    out = list(plan.fixed)
    for e in plan.expects:
        r = by_check.get(e.spec.name)
        severity = e.severity or e.spec.severity
        if r is None:  # pragma: no cover - GX returns one result per expectation
            out.append(CheckResult(e.spec.name, plan.table, e.spec.column, e.spec.rule, severity, False,
                                   "no result from Great Expectations", suite=suite_name, status="failed"))
            continue
        err = _gx_error(r)
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
                             suite=suite_name, status="passed" if ok else "failed", observed_value=num)
        if not ok and e.example is not None and not err:
            table, predicate, windowed = e.example
            result.examples = _examples(engine, w, table, predicate, windowed)
        out.append(result)
    return out


def _why(exc: BaseException) -> str:
    """The first line of an error, masked and shortened, for a check that could not run."""
    text_ = str(exc).strip()
    return mask_text(text_.splitlines()[0] if text_ else type(exc).__name__)[:300]


def _skipped(spec: CheckSpec, suite: str, why: str) -> CheckResult:
    return CheckResult(spec.name, spec.table, spec.column, spec.rule, spec.severity, True, f"not run: {why}",
                       suite=suite, status="skipped")


def _finish(engine: Engine, stage: str, validation_id: str, run_id: str, snapshot_date: date,
            results: list[CheckResult], docs: Path | None, started: float) -> list[CheckResult]:
    """Store, log, and raise DataQualityError when an error-severity check failed."""
    _store(engine, validation_id, run_id, snapshot_date, results, docs)
    errors = [r for r in results if r.failed and r.severity == "error"]
    warns = [r for r in results if r.failed and r.severity != "error"]
    where = str(docs) if docs else "not written (see the error above)"
    log.info("data quality (%s): %d checks, %d failed errors, %d warnings, %.1fs; Data Docs: %s",
             stage, len(results), len(errors), len(warns), time.perf_counter() - started, where)
    for r in warns:
        log.warning("data quality warning: %s", r.describe())
    for r in errors:
        log.error("data quality error: %s", r.describe())
    if errors:
        lines = [
            f"data quality ({stage}) failed for snapshot {snapshot_date.isoformat()} (run {run_id}): "
            f"{len(errors)} error check(s) failed out of {len(results)}:"
        ]
        lines += [f"- {r.describe()}" for r in errors]
        if warns:
            lines.append(f"warnings ({len(warns)}):")
            lines += [f"- {r.describe()}" for r in warns]
        lines.append(f"Data Docs: {where}")
        raise DataQualityError("\n".join(lines), results, docs)
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
    ensure_segmentation_tables(engine)
    w = _Window(snapshot_date, int(window_days), datetime.now(timezone.utc).replace(microsecond=0))
    facts = _facts(engine)
    populated_ok = _ever_populated(engine, [n for n in specs if n.endswith("_populated")])
    docs_dir = data_docs_dir(snapshot_date, run_id, "raw_window")
    validation_id = uuid.uuid4().hex
    results: list[CheckResult] = []
    context = _context(docs_dir)
    try:
        gx = _gx()
        catalog = _add_warehouse(context, engine, "warehouse_catalog", temp_tables=False)
        ds = _add_warehouse(context, engine, "warehouse", temp_tables=True)
        run_ident = _run_identifier(run_id)
        # 1. schema
        for table in _RAW_TABLES:
            spec = specs[f"{table}.schema"]
            if not spec.enabled:
                results.append(_skipped(spec, f"raw_{table}", "disabled by configuration"))
            elif not facts[table].exists:
                results.append(CheckResult(spec.name, table, None, f"table raw.{table} exists", spec.severity, False,
                                           f"table raw.{table} does not exist", suite=f"raw_{table}", status="failed"))
            else:
                try:
                    results.extend(_schema_results(gx, context, catalog, engine, table, spec, run_ident))
                except Exception as exc:  # noqa: BLE001 - reported as a failed check
                    results.append(CheckResult(spec.name, table, None, spec.rule, spec.severity, False,
                                               f"could not be evaluated: {_why(exc)}", suite=f"raw_{table}",
                                               status="failed"))
        broken = sorted({r.table for r in results if r.failed})
        # 2. data, one scan per table
        sql = _Sql(engine)
        for table in _RAW_TABLES:
            table_specs = [s for n, s in specs.items() if s.table == table and not n.endswith(".schema")]
            if broken:
                why = f"schema check failed for raw.{', raw.'.join(broken)}"
                results.extend(_skipped(s, f"raw_{table}", why) for s in table_specs)
                continue
            if table == "browsing_events":
                present = specs["browsing_events.table_not_empty"]
                table_specs = [s for s in table_specs if s is not present]
                if not present.enabled:
                    results.append(_skipped(present, "raw_browsing_events", "disabled by configuration"))
                else:
                    results.append(CheckResult(
                        present.name, table, None, present.rule, present.severity, facts[table].has_rows,
                        "raw.browsing_events has rows" if facts[table].has_rows
                        else "raw.browsing_events is empty: the source has no browsing data",
                        suite="raw_browsing_events", status="passed" if facts[table].has_rows else "failed"))
                if not facts[table].has_rows:
                    results.extend(_skipped(s, "raw_browsing_events", "raw.browsing_events is empty") for s in table_specs)
                    continue
            plan = _plan_table(table, sql, w, specs, facts, populated_ok)
            planned = {e.spec.name for e in plan.expects} | {r.check for r in plan.fixed}
            results.extend(_skipped(s, f"raw_{table}", "not applicable" if s.enabled else "disabled by configuration")
                           for s in table_specs if s.name not in planned)
            try:
                results.extend(_data_results(gx, context, ds, plan, engine, w, run_ident))
            except Exception as exc:  # noqa: BLE001 - a suite that cannot run is a failed check, never a crash
                why = _why(exc)
                log.error("data quality: the raw.%s suite could not run: %s", table, why)
                results.extend(plan.fixed)
                results.extend(
                    CheckResult(e.spec.name, table, e.spec.column, e.spec.rule, e.severity or e.spec.severity, False,
                                f"could not be evaluated: {why}", suite=f"raw_{table}", status="failed")
                    for e in plan.expects
                )
        docs = _build_docs(context, docs_dir)
    finally:
        _close(context)
    return _finish(engine, "raw window", validation_id, run_id, snapshot_date, results, docs, started)


# ---------------------------------------------------------------------------------------------
# Stages 2 and 3: features and output (pandas frames already in memory)
# ---------------------------------------------------------------------------------------------


def _run_frame_suite(gx: Any, context: Any, name: str, frame: pd.DataFrame, expectations: list[Any],
                     run_ident: Any, index_column: str | None = None) -> dict[str, Any]:
    """Validate ``frame`` with ``expectations``; return GX results by the ``check`` in their meta."""
    ds = context.data_sources.add_pandas(name=f"{name}_source")
    asset = ds.add_dataframe_asset(name=name)
    batch = asset.add_batch_definition_whole_dataframe("frame")
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for e in expectations:
        suite.add_expectation(e)
    vd = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    fmt: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
    if index_column:
        fmt["unexpected_index_column_names"] = [index_column]
    res = vd.run(batch_parameters={"dataframe": frame}, result_format=fmt, run_id=run_ident)
    out: dict[str, Any] = {}
    for r in res.results:
        meta = r.expectation_config.meta or {}
        out.setdefault(meta.get("key") or meta.get("check"), []).append(r)
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


def validate_features(engine: Engine, features: pd.DataFrame, snapshot_date: date, run_id: str) -> list[CheckResult]:
    """Feature suite: one row per customer (index ``customer_id``) and every numeric feature finite.

    Non-numeric columns (categorical descriptors) are not checked. Stores results, writes Data
    Docs, raises ``DataQualityError`` on an error-severity failure.
    """
    started = time.perf_counter()
    specs = resolve_checks(None)
    ensure_segmentation_tables(engine)
    docs_dir = data_docs_dir(snapshot_date, run_id, "features")
    frame = features.copy()
    frame.index = frame.index.rename("customer_id")
    frame = frame.reset_index()
    frame["customer_id"] = frame["customer_id"].astype(object).where(frame["customer_id"].notna(), None)
    numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c]) and not pd.api.types.is_bool_dtype(features[c])]
    results: list[CheckResult] = []
    context = _context(docs_dir)
    try:
        gx = _gx()
        E = gx.expectations
        s_rows, s_unique, s_finite = specs["features.not_empty"], specs["features.customer_id_unique"], specs["features.finite"]
        exps = [
            E.ExpectTableRowCountToBeBetween(min_value=s_rows.params["min_rows"], meta=_meta(s_rows.name)),
            E.ExpectColumnValuesToNotBeNull(column="customer_id", meta=_meta(s_unique.name, "id_not_null")),
            E.ExpectColumnValuesToBeUnique(column="customer_id", meta=_meta(s_unique.name, "id_unique")),
        ]
        for col in numeric:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
            exps.append(E.ExpectColumnValuesToNotBeNull(column=col, meta=_meta(s_finite.name, f"nan:{col}")))
            exps.append(E.ExpectColumnValuesToBeBetween(column=col, min_value=-1.0e300, max_value=1.0e300,
                                                        meta=_meta(s_finite.name, f"inf:{col}")))
        got = _run_frame_suite(gx, context, "features", frame, exps, _run_identifier(run_id), "customer_id")
        n = len(frame)
        row_res = got.get(s_rows.name, [])
        ok = bool(row_res) and all(r.success for r in row_res)
        results.append(CheckResult(s_rows.name, "features", None, s_rows.rule, s_rows.severity, ok,
                                   f"{n:,} customers", suite="features", status="passed" if ok else "failed",
                                   observed_value=float(n)))
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
        docs = _build_docs(context, docs_dir)
    finally:
        _close(context)
    return _finish(engine, "features", uuid.uuid4().hex, run_id, snapshot_date, results, docs, started)


def validate_output(engine: Engine, assignments: pd.DataFrame, population_ids: pd.Index, snapshot_date: date,
                    run_id: str, min_share: float, min_silhouette: float, silhouette: float) -> list[CheckResult]:
    """Output suite: every population customer exactly one segment, nobody else; shares and score in the gates.

    ``assignments``: index ``customer_id``, column ``segment_id``. Stores results, writes Data
    Docs, raises ``DataQualityError`` on an error-severity failure.
    """
    started = time.perf_counter()
    specs = resolve_checks(None)
    ensure_segmentation_tables(engine)
    docs_dir = data_docs_dir(snapshot_date, run_id, "output")
    assigned = pd.DataFrame({"customer_id": assignments.index.astype(str), "segment_id": assignments["segment_id"].to_numpy()})
    pop = pd.Index(population_ids).astype(str)
    counts = assigned["customer_id"].value_counts()
    per_customer = pd.DataFrame({"customer_id": pop, "segments_assigned": counts.reindex(pop).fillna(0).astype(int).to_numpy()})
    assigned["in_population"] = assigned["customer_id"].isin(set(pop))
    seg = pd.to_numeric(assigned["segment_id"], errors="coerce")
    shares = seg.value_counts(normalize=False).sort_index()
    segments = pd.DataFrame({"segment_id": shares.index.astype(int), "size": shares.to_numpy(),
                             "share": shares.to_numpy() / max(len(pop), 1)})
    scores = pd.DataFrame({"silhouette": [float(silhouette) if silhouette is not None else float("nan")]})
    results: list[CheckResult] = []
    context = _context(docs_dir)
    try:
        gx = _gx()
        E = gx.expectations
        ident = _run_identifier(run_id)
        one, unknown, notnull = (specs["output.one_segment_per_customer"], specs["output.no_unknown_customers"],
                                 specs["output.segment_id_not_null"])
        share_spec, sil_spec = specs["output.min_segment_share"], specs["output.silhouette"]
        got = _run_frame_suite(gx, context, "output_population", per_customer, [
            E.ExpectColumnValuesToBeInSet(column="segments_assigned", value_set=[1], meta=_meta(one.name)),
        ], ident, "customer_id")
        got.update(_run_frame_suite(gx, context, "output_assignments", assigned, [
            E.ExpectColumnValuesToBeInSet(column="in_population", value_set=[True], meta=_meta(unknown.name)),
            E.ExpectColumnValuesToNotBeNull(column="segment_id", meta=_meta(notnull.name)),
        ], ident, "customer_id"))
        got.update(_run_frame_suite(gx, context, "output_segments", segments, [
            E.ExpectColumnValuesToBeBetween(column="share", min_value=float(min_share), meta=_meta(share_spec.name)),
        ], ident, "segment_id"))
        got.update(_run_frame_suite(gx, context, "output_scores", scores, [
            E.ExpectColumnValuesToNotBeNull(column="silhouette", meta=_meta(sil_spec.name, "sil_nn")),
            E.ExpectColumnValuesToBeBetween(column="silhouette", min_value=float(min_silhouette), max_value=1.0,
                                            meta=_meta(sil_spec.name)),
        ], ident))

        def add(spec: CheckSpec, keys: list[str], rule: str, observed_ok: str, observed_bad: str, value: float,
                examples: bool = True) -> None:
            res = [r for k in keys for r in got.get(k, [])]
            ok = bool(res) and all(r.success for r in res)
            results.append(CheckResult(spec.name, "assignments", spec.column, rule, spec.severity, ok,
                                       observed_ok if ok else observed_bad,
                                       examples=[] if ok or not examples else _unexpected_examples(res),
                                       suite="output", status="passed" if ok else "failed", observed_value=value))

        missing = int((per_customer["segments_assigned"] == 0).sum())
        multi = int((per_customer["segments_assigned"] > 1).sum())
        add(one, [one.name], one.rule, f"{len(pop):,} customers, one segment each",
            f"{missing:,} without a segment, {multi:,} with several", float(missing + multi))
        extra = int((~assigned["in_population"]).sum())
        add(unknown, [unknown.name], unknown.rule, "none", f"{extra:,} assigned customer(s) not in the population",
            float(extra))
        nseg = int(seg.isna().sum())
        add(notnull, [notnull.name], notnull.rule, "none", f"{nseg:,} assignment(s) without segment_id", float(nseg))
        smallest = float(segments["share"].min()) if len(segments) else 0.0
        add(share_spec, [share_spec.name], f"every segment share >= {min_share}", f"smallest share {smallest:.2%}",
            f"smallest share {smallest:.2%} (limit {float(min_share):.2%})", smallest)
        sil = float(scores["silhouette"].iloc[0])
        add(sil_spec, [sil_spec.name, "sil_nn"], f"silhouette >= {min_silhouette}", f"silhouette {sil:.4f}",
            f"silhouette {sil:.4f} (limit {float(min_silhouette)})", sil if math.isfinite(sil) else float("nan"),
            examples=False)
        docs = _build_docs(context, docs_dir)
    finally:
        _close(context)
    return _finish(engine, "output", uuid.uuid4().hex, run_id, snapshot_date, results, docs, started)
