"""The SQL plan of the raw-window data checks: one profile query per table, and what to expect of it.

For each raw table the planner builds ONE query that computes, in a single scan of the run's
window inside the warehouse, every quantity the table's checks need (null counts, rule
violations, shares, orphans via a join with ``raw.customers``, last-day volume, freshness,
out-of-range timestamps of the whole table through the timestamp index). Each check becomes an
``Expect`` (a GX ``ExpectColumnMaxToBeBetween`` on one column of that one-row result), or a fixed
result when a warehouse constraint already guarantees it. One small planner per check family
(``_Planner`` methods) and per table (``_plan_customers``, ``_transaction_checks``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, bindparam, text

from include.segmentation.quality.calendar import calendar_results
from include.segmentation.quality.checks import TIMESTAMP_COLUMNS, CalendarSpec, CheckSpec
from include.segmentation.quality.plausibility import non_finite, plausibility_result
from include.segmentation.quality.raw_sql import RAW_TABLES, Sql, Window, count_if, window_predicate
from include.segmentation.quality.results import CheckResult
from include.segmentation.sources import EVENT_TYPES
from include.segmentation.store import SCHEMA, quality_results, table_exists

_UNITS = {"customers": "customers", "transactions": "lines", "browsing_events": "events"}


@dataclass
class Expect:
    """One GX expectation on a profile column, and how to report it."""

    spec: CheckSpec
    column: str
    min_value: float | None = None
    max_value: float | None = None
    strict_max: bool = False
    fmt: Callable[[Any], str] = str
    example: tuple[str, str, bool] | None = None  # (table, predicate or "@kind", windowed)
    severity: str | None = None  # effective severity when it differs from the spec (populated checks)


@dataclass
class Plan:
    """The data suite of one raw table: profile SQL, expectations, constraint-guaranteed results."""

    table: str
    query: str
    expects: list[Expect]
    fixed: list[CheckResult]


@dataclass
class TableFacts:
    """What the pre-flight learned about one raw table (cheap catalogue/LIMIT 1 queries)."""

    exists: bool
    has_rows: bool = False
    unique_keys: dict[tuple[str, ...], str] = field(default_factory=dict)  # columns -> constraint name
    not_null: set[str] = field(default_factory=set)  # columns with a NOT NULL constraint


def _constraints(insp: Any, table: str, f: TableFacts) -> None:
    """Fill ``f`` with the NOT NULL columns and enforced unique keys of ``raw.table`` (best effort)."""
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


def read_facts(engine: Engine) -> dict[str, TableFacts]:
    """Existence, emptiness and enforced unique keys of each raw table."""
    out: dict[str, TableFacts] = {}
    with engine.connect() as conn:
        insp = sa.inspect(conn)
        for table in RAW_TABLES:
            if not table_exists(conn, "raw", table):
                out[table] = TableFacts(exists=False)
                continue
            f = TableFacts(exists=True)
            try:
                f.has_rows = conn.exec_driver_sql(f"SELECT 1 FROM raw.{table} LIMIT 1").first() is not None
            except sa.exc.DBAPIError:
                f.has_rows = True
            _constraints(insp, table, f)
            out[table] = f
        conn.rollback()
    return out


def ever_populated(engine: Engine, checks: Iterable[str]) -> set[str]:
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
class _Planner:
    """Collects the profile columns, expectations and constraint-guaranteed results of one table.

    ``inner``: aggregates over the scanned rows (alias t); ``outer``: expressions derived from
    them (alias w) or whole-table scalar subqueries. Insertion order is the column order.
    """

    table: str
    sql: Sql
    w: Window
    specs: dict[str, CheckSpec]
    facts: dict[str, TableFacts]
    populated_ok: set[str]
    calendar: CalendarSpec = field(default_factory=CalendarSpec)
    inner: dict[str, str] = field(default_factory=lambda: {"row_count": "COUNT(*)"})
    outer: dict[str, str] = field(default_factory=dict)
    expects: list[Expect] = field(default_factory=list)
    fixed: list[CheckResult] = field(default_factory=list)

    @property
    def windowed(self) -> bool:
        return self.table in TIMESTAMP_COLUMNS

    @property
    def unit(self) -> str:
        return _UNITS[self.table]

    def spec(self, name: str) -> CheckSpec | None:
        """The table's check ``name`` if enabled."""
        s = self.specs[f"{self.table}.{name}"]
        return s if s.enabled else None

    def guaranteed(self, s: CheckSpec, why: str) -> None:
        """A check the warehouse's constraints already guarantee: passed without a scan."""
        self.fixed.append(CheckResult(s.name, self.table, s.column, s.rule, s.severity, True, why,
                                      suite=f"raw_{self.table}", status="passed", observed_value=0.0))

    def min_rows(self, name: str, column: str, label: str | None = None,
                 example: tuple[str, str, bool] | None = None) -> None:
        if (s := self.spec(name)) is not None:
            self.expects.append(Expect(s, column, min_value=s.params["min_rows"], fmt=_rows(label or self.unit),
                                       example=example))

    def not_null(self, col: str) -> None:
        s = self.spec(f"{col}_not_null")
        if s is not None and col in self.facts[self.table].not_null:
            self.guaranteed(s, f"guaranteed by the NOT NULL constraint on raw.{self.table}.{col}")
        elif s is not None:
            self.inner[f"{col}_nulls"] = count_if(f"t.{col} IS NULL")
            self.expects.append(Expect(s, f"{col}_nulls", max_value=0, fmt=_rows(f"{self.unit} with {col} NULL"),
                                       example=(self.table, f"t.{col} IS NULL", self.windowed)))

    def rate(self, name: str, pred: str, den: str | None, den_label: str, example: str | None = None) -> None:
        """Rows matching ``pred`` (share of rows matching ``den``, default all) within ``max_share``."""
        s = self.spec(name)
        if s is None:
            return
        self.inner[f"{name}_rows"] = count_if(pred)
        den_col = "row_count"
        if den is not None:
            den_col = f"{name}_den"
            self.inner[den_col] = count_if(den)
        self.outer[f"{name}_share"] = f"COALESCE({self.sql.flt(f'w.{name}_rows')} / NULLIF(w.{den_col}, 0), 0.0)"
        ex = (self.table, example or pred, self.windowed)
        if s.params["max_share"] == 0:
            self.expects.append(Expect(s, f"{name}_rows", max_value=0, fmt=_rows(self.unit), example=ex))
        else:
            self.expects.append(Expect(s, f"{name}_share", max_value=s.params["max_share"],
                                       fmt=lambda x: f"{_pct(x)} of {den_label}", example=ex))

    def populated(self, col: str) -> None:
        """The column is not entirely NULL; an error only once an earlier validation saw values."""
        s = self.spec(f"{col}_populated")
        if s is None:
            return
        where_unit = f"{self.unit} in the window" if self.windowed else self.unit
        self.outer[f"{col}_null_share"] = (
            f"COALESCE(1.0 - {self.sql.flt(f'w.{col}_values')} / NULLIF(w.row_count, 0), 0.0)"
        )
        self.inner[f"{col}_values"] = f"COUNT(t.{col})"
        severity = s.severity if s.name in self.populated_ok else "warning"
        self.expects.append(Expect(s, f"{col}_null_share", max_value=1.0, strict_max=True,
                                   fmt=lambda x: f"NULL on {_pct(x)} of {where_unit}", severity=severity))

    def unique(self, name: str, cols: tuple[str, ...]) -> None:
        """No duplicated key values (in the window), unless a warehouse constraint enforces it."""
        s = self.spec(name)
        if s is None:
            return
        enforced = self.facts[self.table].unique_keys.get(cols)
        if enforced:
            self.guaranteed(s, f"guaranteed by the warehouse constraint {enforced}")
            return
        keys = ", ".join(cols)
        scope = window_predicate(self.table, self.sql, self.w) if self.windowed else "1 = 1"
        nn = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        self.outer[f"{name}_keys"] = (
            f"(SELECT COUNT(*) FROM (SELECT {keys} FROM raw.{self.table} WHERE {scope} AND {nn} "
            f"GROUP BY {keys} HAVING COUNT(*) > 1) d)"
        )
        self.expects.append(Expect(s, f"{name}_keys", max_value=0, fmt=_rows("duplicated key value(s)"),
                                   example=(self.table, f"@duplicates:{keys}", self.windowed)))

    def timestamps(self, col: str) -> None:
        """Timestamps present, not in the future, not absurdly old (windowed tables: the whole table)."""
        tolerance = float(self.specs[f"{self.table}.{col}_not_in_future"].params["tolerance_hours"])
        future = self.sql.ts(max(self.w.now, self.w.cutoff) + timedelta(hours=tolerance))
        too_old = self.sql.ts(date.fromisoformat(self.specs[f"{self.table}.{col}_not_too_old"].params["min_timestamp"]))
        label = f"{self.unit} (whole table)" if self.windowed else self.unit
        for name, pred in ((f"{col}_not_null", f"{col} IS NULL"), (f"{col}_not_in_future", f"{col} > {future}"),
                           (f"{col}_not_too_old", f"{col} < {too_old}")):
            s = self.spec(name)
            if s is None:
                continue
            if name.endswith("_not_null") and col in self.facts[self.table].not_null:
                self.guaranteed(s, f"guaranteed by the NOT NULL constraint on raw.{self.table}.{col}")
                continue
            if self.windowed:  # an indexed whole-table count; customers: an aggregate of the scan
                self.outer[f"{name}_rows"] = f"(SELECT COUNT(*) FROM raw.{self.table} WHERE {pred})"
            else:
                self.inner[f"{name}_rows"] = count_if(f"t.{pred}")
            self.expects.append(Expect(s, f"{name}_rows", max_value=0, fmt=_rows(label),
                                       example=(self.table, f"t.{pred}", False)))

    def orphans(self) -> str:
        """customer_ids unknown to ``raw.customers`` (share within ``max_share``); returns the FROM clause."""
        if self.spec("customer_ids_known") is None:
            return f"raw.{self.table} t"
        guaranteed = ("customer_id",) in self.facts["customers"].unique_keys
        customers_src = "raw.customers" if guaranteed else "(SELECT DISTINCT customer_id FROM raw.customers)"
        self.rate("customer_ids_known", "t.customer_id IS NOT NULL AND k.customer_id IS NULL",
                  "t.customer_id IS NOT NULL", "identified " + self.unit, example="@orphans")
        return f"raw.{self.table} t LEFT JOIN {customers_src} k ON k.customer_id = t.customer_id"

    def plan(self, source: str, where: str) -> Plan:
        """The one-scan profile query over ``source`` and everything collected so far."""
        inner_sql = ", ".join(f"{expr} AS {name}" for name, expr in self.inner.items())
        outer_sql = "".join(f", {expr} AS {name}" for name, expr in self.outer.items())
        query = f"SELECT w.*{outer_sql} FROM (SELECT {inner_sql} FROM {source}{where}) w"
        return Plan(self.table, query, self.expects, self.fixed)


def _plan_customers(p: _Planner) -> Plan:
    """``raw.customers``, every row (no window)."""
    p.min_rows("not_empty", "row_count")
    p.not_null("customer_id")
    p.unique("customer_id_unique", ("customer_id",))
    p.not_null("marketing_consent")
    p.timestamps("created_at")
    if (s := p.spec("birth_year_plausible")) is not None:
        pred = f"t.birth_year < {int(s.params['min_year'])} OR t.birth_year > {p.w.snapshot_date.year}"
        p.inner["birth_year_plausible_rows"] = count_if(pred)
        p.expects.append(Expect(s, "birth_year_plausible_rows", max_value=0, fmt=_rows(p.unit),
                                example=("customers", pred, False)))
    for col in ("birth_year", "gender", "country", "city", "email", "phone"):
        p.populated(col)
    return p.plan("raw.customers t", "")


def _transaction_checks(p: _Planner) -> None:
    """The line-level rules of ``raw.transactions``."""
    for col in ("order_id", "line_number", "product_id", "quantity", "unit_price", "discount"):
        p.not_null(col)
    p.unique("order_line_unique", ("order_id", "line_number"))
    p.rate("unit_price_non_negative", "t.customer_id IS NOT NULL AND t.unit_price < 0", "t.customer_id IS NOT NULL",
           "customer lines")
    p.rate("guest_unit_price_non_negative", "t.customer_id IS NULL AND t.unit_price < 0", "t.customer_id IS NULL",
           "guest lines")
    p.rate("discount_non_negative", "t.discount < 0", None, "lines")
    p.rate("discount_within_line_value", "t.unit_price >= 0 AND t.discount > ABS(t.quantity) * t.unit_price + 0.005",
           None, "lines")
    for col in ("unit_price", "discount"):
        p.rate(f"{col}_finite", non_finite(p.sql, f"t.{col}"), None, "lines")
    p.rate("quantity_not_zero", "t.quantity = 0", None, "lines")
    p.rate("guest_line_share", "t.customer_id IS NULL", None, "lines")
    p.rate("return_line_share", "t.quantity < 0", None, "lines")
    p.populated("category")


def _event_checks(p: _Planner) -> None:
    """The event-level rules of ``raw.browsing_events``."""
    for col in ("event_id", "session_id", "event_type"):
        p.not_null(col)
    p.unique("event_id_unique", ("event_id",))
    types = ", ".join(p.sql.text_literal(t) for t in EVENT_TYPES)
    p.rate("event_type_known", f"t.event_type IS NOT NULL AND t.event_type NOT IN ({types})", None, "events")
    p.rate("dwell_seconds_non_negative", "t.dwell_seconds < 0", None, "events")
    p.rate("dwell_seconds_finite", non_finite(p.sql, "t.dwell_seconds"), None, "events")
    p.rate("anonymous_event_share", "t.customer_id IS NULL", None, "events")
    for col in ("product_id", "category", "search_query", "dwell_seconds"):
        p.populated(col)


_TABLE_CHECKS: dict[str, Callable[[_Planner], None]] = {
    "transactions": _transaction_checks,
    "browsing_events": _event_checks,
}


def _plan_windowed(p: _Planner) -> Plan:
    """An event table: its own rules, orphans, timestamps, last-day volume and freshness, over the window."""
    ts_col = TIMESTAMP_COLUMNS[p.table]
    p.min_rows("window_not_empty", "row_count")
    _TABLE_CHECKS[p.table](p)
    source = p.orphans()
    p.timestamps(ts_col)
    # last day, volume, freshness and coverage know the shop's calendar (quality/calendar.py)
    p.fixed.extend(calendar_results(p.sql.engine, p.table, p.w, p.specs, p.calendar))
    if p.table == "transactions":
        for col in ("unit_price", "quantity"):
            if (s := p.spec(f"{col}_plausible")) is not None:
                p.fixed.append(plausibility_result(p.sql.engine, p.table, col, s, p.w, p.unit))
    return p.plan(source, f" WHERE {window_predicate(p.table, p.sql, p.w, alias='t')}")


def plan_table(table: str, sql: Sql, w: Window, specs: dict[str, CheckSpec], facts: dict[str, TableFacts],
               populated_ok: set[str], calendar: CalendarSpec | None = None) -> Plan:
    """Build the one-scan profile query of ``table`` and the expectations on its columns.

    The calendar-aware checks (last day, volume, freshness, coverage) and the plausibility checks
    are evaluated here from small grouped queries and returned as ``Plan.fixed`` results.
    """
    p = _Planner(table, sql, w, specs, facts, populated_ok, calendar or CalendarSpec())
    return _plan_customers(p) if table == "customers" else _plan_windowed(p)
