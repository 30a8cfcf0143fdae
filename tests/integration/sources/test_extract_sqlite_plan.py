"""The SQLite extract stays linear: its join probes indexed intermediates (``EXPLAIN QUERY PLAN``).

The one-statement form (aggregates as CTEs joined back to their UNION) let SQLite scan one
aggregate per row of the other: > 11 minutes at 100,000 customers. The extract now stages each
aggregate in a table with a unique index on customer_id; these tests read the plan of the join the
extract really runs (captured as it runs) and fail on a SCAN inside the join or
on an automatic index inside the join, and check the result against the one-statement reference.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, event, text

from include.segmentation.sources import extract as ex
from include.segmentation.store import read_table
from tests.integration.sources.extract_reference import reference_aggregates

END = date(2024, 6, 30)
S = END + timedelta(days=1)


@pytest.fixture
def sqlite_loaded(generated_engine: Callable[..., Engine]) -> tuple[Engine, ex.Window]:
    return generated_engine("sqlite", customers=400, days=200, end_date=END, seed=11), ex.Window(S, 90)


def quadratic_steps(plan: list[str]) -> list[str]:
    """Plan steps that make the join quadratic: a SCAN inside the join (of ``t``, ``e``, ``c``, or any
    LEFT-JOIN step: one full pass per customer) or an automatic (transient, unplanned) index.

    The driving loop (``SCAN a``, the UNION of customer ids) is one pass and allowed.
    """
    bad = []
    for detail in plan:
        words = detail.split()
        if "AUTOMATIC" in words:
            bad.append(detail)
        elif words[:1] == ["SCAN"] and (words[1:2] in (["t"], ["e"], ["c"]) or "LEFT-JOIN" in words):
            bad.append(detail)
    return bad


def _explain(conn: Any, sql: str, params: dict[str, Any] | Any) -> list[str]:
    if isinstance(params, dict):
        rows = conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"), params).fetchall()
    else:  # a DB-API cursor's connection inside the extract's transaction
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return [str(row[3]) for row in rows]


def test_sqlite_extract_join_probes_the_indexed_intermediates(sqlite_loaded) -> None:
    engine, window = sqlite_loaded
    plans: list[list[str]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith(f"CREATE TABLE {ex.STAGING_SCHEMA}.stg_aggregates_"):
            plans.append(_explain(cursor.connection, statement.split(" AS ", 1)[1], parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        out = ex.extract_aggregates(engine, window, "plan")
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert out["population"] > 100
    assert len(plans) == 1, "the extract's combining statement was not seen"
    plan = plans[0]
    assert quadratic_steps(plan) == [], "\n".join(plan)
    for alias in ("t", "e", "c"):  # each join is an index lookup, one per customer
        steps = [d for d in plan if d.split()[1:2] == [alias]]
        assert steps and all(d.startswith("SEARCH ") and " USING " in d and "INDEX" in d for d in steps), plan


def test_the_plan_check_flags_the_one_statement_form(sqlite_loaded) -> None:
    engine, window = sqlite_loaded
    with engine.connect() as conn:
        plan = _explain(conn, f"WITH tx AS ({ex._TX_AGG}), ev AS ({ex._EV_AGG}) {ex._JOIN}", window.params(conn))
    assert quadratic_steps(plan), "\n".join(plan)  # SQLite 3.40: "SCAN t LEFT-JOIN" (+ an automatic index)


def test_sqlite_extract_equals_the_one_statement_reference(sqlite_loaded) -> None:
    engine, window = sqlite_loaded
    out = ex.extract_aggregates(engine, window, "ref")
    with engine.connect() as conn:
        ref, guests, anonymous = reference_aggregates(conn, window)
        got = read_table(conn, *out["aggregates_table"].split("."))
        left = conn.execute(
            text(f"SELECT name FROM {ex.STAGING_SCHEMA}.sqlite_master WHERE name LIKE 'stg%' OR name LIKE 'ix_stg%'")
        ).scalars().all()
    assert sorted(left) == [out["aggregates_table"].split(".")[1]]  # the intermediates and their indexes are gone
    assert out["population"] == len(ref) == len(got) > 100
    assert out["excluded_guest_lines"] == guests
    assert out["excluded_anonymous_events"] == anonymous
    assert list(got.columns) == list(ref.columns)
    assert got["customer_id"].is_monotonic_increasing  # the feature stage sees customers in the same order
    pd.testing.assert_frame_equal(
        got.sort_values("customer_id").reset_index(drop=True), ref.sort_values("customer_id").reset_index(drop=True),
        check_exact=True,
    )


def test_both_flavours_render_every_aggregate_once() -> None:
    sqlite_columns = [n for n, _ in ex._TX_SPEC] + [ex._SESSIONS_SPEC[0]] + [n for n, _ in ex._EV_SPEC]
    assert [c for kind in ("tx", "sessions", "ev") for c in ex._PG_COLUMNS[kind]] == sqlite_columns
    for name, expr in (*ex._TX_SPEC, *ex._EV_SPEC):
        lite, pg = ex._render(expr, "sqlite"), ex._render(expr, "postgresql")
        assert "COUNT_IF" not in lite + pg and "FLOAT(" not in lite + pg, name
        assert f"AS {name}" in ex._PG_TX + ex._PG_EV and f"AS {name}" in ex._TX_AGG + ex._EV_AGG
    assert "unit_price::float8" in ex._PG_TX and "::" not in ex._TX_AGG
    assert "FILTER (WHERE event_type = 'checkout')" in ex._PG_EV
    assert "SUM(CASE WHEN event_type = 'checkout' THEN 1 ELSE 0 END)" in ex._EV_AGG
    with pytest.raises(ValueError, match="dialect"):
        ex._render("COUNT(*)", "oracle")
