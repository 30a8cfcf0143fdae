"""Non-finite values and implausible magnitudes in numeric source columns.

* **finite**: NaN and +-Infinity pass the other rules unnoticed (PostgreSQL sorts NaN above every
  number, so ``unit_price < 0`` is false for it, and the features would fill it with 0). The
  predicate per dialect: PostgreSQL compares the value cast to ``double precision`` with
  ``'NaN'``/``'Infinity'``/``'-Infinity'`` (numeric NaN and infinity cast to their float
  counterparts); SQLite stores NaN as NULL (a NULL in a NOT NULL column is refused at insert time,
  and the ``*_not_null`` checks catch it) and Infinity as a real ``inf``, caught by ``|x| > 1e308``.
* **plausible**: ``|x|`` above ``factor`` x the window's ``quantile`` (default the 99th percentile)
  of ``|x|`` is a warning; above ``error_factor`` x it is an error. The scale is the data's own
  distribution, so a shop selling pallets and one selling buttons both work; a floor of 1 keeps a
  column of mostly zeros from flagging every non-zero value.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from include.segmentation.quality.checks import CheckSpec
from include.segmentation.quality.raw_sql import Sql, Window, fetch_examples, window_predicate
from include.segmentation.quality.results import CheckResult

_FLOOR = 1.0


def non_finite(sql: Sql, col: str) -> str:
    """A predicate on ``col`` (qualified) true for NaN, +Infinity and -Infinity on this dialect."""
    if sql.sqlite:
        return f"({col} > 1e308 OR {col} < -1e308)"
    return (f"CAST({col} AS DOUBLE PRECISION) IN (CAST('NaN' AS DOUBLE PRECISION), "
            f"CAST('Infinity' AS DOUBLE PRECISION), CAST('-Infinity' AS DOUBLE PRECISION))")


def _quantile(engine: Engine, sql: Sql, table: str, col: str, q: float, w: Window) -> tuple[float | None, int]:
    """The ``q`` quantile of ``|col|`` over the window's finite values, and how many values there are."""
    scope = f"{window_predicate(table, sql, w, alias='t')} AND t.{col} IS NOT NULL AND NOT {non_finite(sql, f't.{col}')}"
    with engine.connect() as conn:
        if sql.sqlite:
            n = int(conn.execute(text(f"SELECT COUNT(*) FROM raw.{table} t WHERE {scope}")).scalar() or 0)
            if n == 0:
                return None, 0
            k = min(n - 1, int(q * (n - 1)))
            value = conn.execute(text(f"SELECT ABS(t.{col}) FROM raw.{table} t WHERE {scope} "
                                      f"ORDER BY ABS(t.{col}) LIMIT 1 OFFSET {k}")).scalar()
        else:
            row = conn.execute(text(
                f"SELECT percentile_disc({float(q)}) WITHIN GROUP (ORDER BY ABS(t.{col})), COUNT(*) "
                f"FROM raw.{table} t WHERE {scope}")).first()
            value, n = (row[0], int(row[1])) if row else (None, 0)
        conn.rollback()
    return (None if value is None else float(value)), n


def plausibility_result(engine: Engine, table: str, col: str, spec: CheckSpec, w: Window, unit: str) -> CheckResult:
    """``<table>.<col>_plausible``: warning above factor x quantile, error above error_factor x quantile."""
    sql = Sql(engine)
    q, factor, error_factor = (float(spec.params[k]) for k in ("quantile", "factor", "error_factor"))
    scale, n = _quantile(engine, sql, table, col, q, w)

    def res(ok: bool, observed: str, value: float | None, severity: str | None = None) -> CheckResult:
        return CheckResult(spec.name, table, col, spec.rule, severity or spec.severity, ok, observed,
                           suite=f"raw_{table}", status="passed" if ok else "failed", observed_value=value)

    if scale is None:
        return res(True, f"no finite {col} values in the window", None)
    base = max(scale, _FLOOR)
    warn_bound, error_bound = base * factor, base * error_factor
    finite = f"NOT {non_finite(sql, f't.{col}')}"
    scope = window_predicate(table, sql, w, alias="t")
    with engine.connect() as conn:
        row = conn.execute(text(
            f"SELECT COALESCE(SUM(CASE WHEN ABS(t.{col}) > {warn_bound!r} THEN 1 ELSE 0 END), 0), "
            f"COALESCE(SUM(CASE WHEN ABS(t.{col}) > {error_bound!r} THEN 1 ELSE 0 END), 0), MAX(ABS(t.{col})) "
            f"FROM raw.{table} t WHERE {scope} AND t.{col} IS NOT NULL AND {finite}")).first()
        conn.rollback()
    over_warn, over_error, largest = (int(row[0]), int(row[1]), row[2]) if row else (0, 0, None)
    largest_f = float(largest) if largest is not None else 0.0
    ratio = largest_f / base
    head = (f"{q:g} quantile of |{col}| = {scale:,.6g} over {n:,} {unit}; largest {largest_f:,.6g} "
            f"({ratio:,.1f}x)")
    if over_error:
        r = res(False, f"{head}; {over_error:,} {unit} above the error bound {error_bound:,.6g} "
                f"({error_factor:g}x)", ratio, severity="error" if spec.severity != "off" else None)
        bound = error_bound
    elif over_warn:
        r = res(False, f"{head}; {over_warn:,} {unit} above the warning bound {warn_bound:,.6g} ({factor:g}x)", ratio)
        bound = warn_bound
    else:
        return res(True, f"{head}; within {warn_bound:,.6g} ({factor:g}x)", ratio)
    pred = f"ABS(t.{col}) > {bound!r} AND {finite}"
    examples: list[dict[str, Any]] = fetch_examples(engine, w, table, pred, True)
    r.examples = examples
    return r
