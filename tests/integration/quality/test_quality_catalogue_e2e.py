"""The issue's bad-input catalogue end to end through ``run_pipeline`` on PostgreSQL.

A clean warehouse with a published snapshot (``generated_warehouse(..., prepare=_publish)``: built
once per session, cloned per test with ``CREATE DATABASE ... TEMPLATE``) is corrupted one way; the
next day's run must stop at validation with a message naming the problem, be recorded as
``failed_validation`` in ``segment_runs``, and leave every published table exactly as it was (the
previous snapshot stays current). A tenfold volume spike is a warning by default: that run goes on
and publishes, with the warning stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.pipeline import run_pipeline
from include.segmentation.quality import DataQualityError
from include.segmentation.store import get_engine, read_sql, ts_param

PUBLISHED = date(2024, 7, 1)  # the snapshot published before each corruption
S = PUBLISHED + timedelta(days=1)  # the run that meets the corrupted data
LAST_DAY = S - timedelta(days=1)
PARAMS = {"k_min": 3, "k_max": 6, "window_days": 120, "min_population": 100}

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _publish(engine: sa.Engine) -> None:
    """The template's publish step: a validated snapshot for S-1 (the data ends on S-1)."""
    out = run_pipeline(engine, PUBLISHED, PARAMS)
    assert out["current"] is True


@pytest.fixture
def wh(generated_warehouse: Callable[..., str]) -> Iterator[sa.Engine]:
    """A fresh copy of the published warehouse, dropped afterwards."""
    engine = get_engine(generated_warehouse("postgres", customers=800, days=150, end_date=LAST_DAY, seed=5,
                                            prepare=_publish))
    yield engine
    engine.dispose()


def _published_tables(engine: sa.Engine) -> dict[str, pd.DataFrame]:
    """Every table of schema segmentation a consumer reads (not staging, not the run log or results)."""
    out: dict[str, pd.DataFrame] = {}
    names = sa.inspect(engine).get_table_names(schema="segmentation")
    with engine.connect() as conn:
        for name in sorted(names):
            if name.startswith("stg_") or name in {"quality_results", "segment_runs"}:
                continue
            frame = read_sql(conn, f"SELECT * FROM segmentation.{name}")
            out[name] = frame.astype(str).sort_values(list(frame.columns)).reset_index(drop=True)
        runs = read_sql(conn, "SELECT * FROM segmentation.segment_runs WHERE snapshot_date = :d", {"d": PUBLISHED})
    out["segment_runs(published)"] = runs.astype(str).sort_values("run_id").reset_index(drop=True)
    return out


def _exec(engine: sa.Engine, *statements: str, **params) -> None:
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(sa.text(sql), params)


def _line(engine: sa.Engine) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(
            "SELECT order_id, line_number FROM raw.transactions WHERE customer_id IS NOT NULL AND quantity > 0 "
            "AND ordered_at >= :a ORDER BY order_id, line_number LIMIT 1"), {"a": ts_param(engine, S - timedelta(days=30))}
        ).mappings().first())


def _set_on_one_line(engine: sa.Engine, assignment: str, **params) -> dict:
    """``UPDATE raw.transactions SET <assignment>`` on one recent order line (``_line``); returns its key."""
    line = _line(engine)
    _exec(engine, f"UPDATE raw.transactions SET {assignment} WHERE order_id = :o AND line_number = :n",
          o=line["order_id"], n=line["line_number"], **params)
    return line


def _set_on_one_event(engine: sa.Engine, assignment: str, since: date, **params) -> None:
    """``UPDATE raw.browsing_events SET <assignment>`` on the first event (by id) from ``since`` on."""
    _exec(engine, f"UPDATE raw.browsing_events SET {assignment} WHERE event_id = "
                  "(SELECT MIN(event_id) FROM raw.browsing_events WHERE occurred_at >= :a)",
          a=ts_param(engine, since), **params)


def _assert_stopped(engine: sa.Engine, check: str, *fragments: str, params: dict | None = None) -> str:
    before = _published_tables(engine)
    with pytest.raises(DataQualityError) as info:
        run_pipeline(engine, S, {**PARAMS, **(params or {})})
    message = str(info.value)
    assert f"- {check} " in message
    for fragment in fragments:
        assert fragment in message, fragment
    with engine.connect() as conn:
        run = conn.execute(sa.text(
            "SELECT status, message FROM segmentation.segment_runs WHERE snapshot_date = :d"), {"d": S}).mappings().one()
        current = conn.execute(sa.text("SELECT DISTINCT snapshot_date FROM segmentation.customer_segments")).scalars().all()
        stored = conn.execute(sa.text(
            "SELECT r.status FROM segmentation.quality_results r JOIN segmentation.segment_runs s ON s.run_id = r.run_id "
            "WHERE s.snapshot_date = :d AND r.check_name = :c"), {"d": S, "c": check}).scalars().all()
    assert run["status"] == "failed_validation" and check in run["message"]
    assert [str(d)[:10] for d in current] == [PUBLISHED.isoformat()]  # the previous snapshot stays current
    assert stored == ["failed"]
    after = _published_tables(engine)
    assert after.keys() == before.keys()
    for name in before:
        pd.testing.assert_frame_equal(after[name], before[name], obj=name)
    return message


def test_null_customer_id(wh) -> None:
    _exec(wh, "ALTER TABLE raw.customers DROP CONSTRAINT customers_pkey",
          "ALTER TABLE raw.customers ALTER COLUMN customer_id DROP NOT NULL",
          "INSERT INTO raw.customers (customer_id, created_at, email, phone, marketing_consent) "
          "VALUES (NULL, '2024-01-05 10:00:00+00', 'max.mustermann@example.de', '+49 30 1234567', true)")
    message = _assert_stopped(wh, "customers.customer_id_not_null", "customers.customer_id", "never null", "m***@e***.de")
    assert "max.mustermann@example.de" not in message and "1234567" not in message


def test_duplicate_order_lines(wh) -> None:
    line = _line(wh)
    _exec(wh, "ALTER TABLE raw.transactions DROP CONSTRAINT transactions_order_line_key",
          "INSERT INTO raw.transactions SELECT * FROM raw.transactions WHERE order_id = :o AND line_number = :n",
          o=line["order_id"], n=line["line_number"])
    _assert_stopped(wh, "transactions.order_line_unique", "transactions.order_id, line_number", line["order_id"])


Corruption = Callable[[sa.Engine], object]


def _sql(*statements: str, **dates: date) -> Corruption:
    """A corruption made of SQL statements; ``dates`` are bound as the warehouse's timestamps."""
    return lambda engine: _exec(engine, *statements, **{k: ts_param(engine, d) for k, d in dates.items()})


def _one_line(assignment: str, **params) -> Corruption:
    return lambda engine: _set_on_one_line(engine, assignment, **params)


def _one_event(assignment: str, since: date, **params) -> Corruption:
    return lambda engine: _set_on_one_event(engine, assignment, since, **params)


# One corruption each, the check that must stop the run, and what its message must say.
CATALOGUE = [
    pytest.param(_one_line("unit_price = -3.5"), "transactions.unit_price_non_negative",
                 ("transactions.unit_price", "unit_price >= 0", "-3.5"), id="negative_unit_price"),
    pytest.param(_one_line("discount = quantity * unit_price * 2 + 1"), "transactions.discount_within_line_value",
                 ("transactions.discount", "discount <= |quantity| * unit_price"), id="discount_above_line_value"),
    pytest.param(_one_line("quantity = 0"), "transactions.quantity_not_zero",
                 ("transactions.quantity", "quantity <> 0"), id="quantity_zero"),
    pytest.param(_one_event("event_type = 'wishlist'", S - timedelta(days=30)), "browsing_events.event_type_known",
                 ("browsing_events.event_type", "wishlist"), id="unknown_event_type"),
    pytest.param(_one_line("ordered_at = :t", t=datetime.now(timezone.utc) + timedelta(days=400)),
                 "transactions.ordered_at_not_in_future", ("transactions.ordered_at", "not later than now"),
                 id="timestamps_after_the_cutoff"),
    pytest.param(_sql("UPDATE raw.browsing_events SET customer_id = 'ZOMBIE-' || customer_id "
                      "WHERE customer_id IS NOT NULL AND occurred_at >= :a AND event_id LIKE '%3'",
                      a=S - timedelta(days=60)),
                 "browsing_events.customer_ids_known", ("browsing_events.customer_id", "ZOMBIE-"),
                 id="orphaned_customer_ids_beyond_the_threshold"),
    pytest.param(_sql("ALTER TABLE raw.transactions RENAME COLUMN unit_price TO price"),
                 "transactions.schema.unit_price", ("transactions.unit_price", "column missing"), id="missing_column"),
    pytest.param(_sql("ALTER TABLE raw.customers ALTER COLUMN created_at TYPE text USING created_at::text"),
                 "customers.schema.created_at", ("customers.created_at", "type TEXT, not a timestamp type"),
                 id="column_of_the_wrong_type"),
    pytest.param(_sql("DELETE FROM raw.browsing_events WHERE occurred_at >= :d", d=LAST_DAY),
                 "browsing_events.last_day_not_empty",
                 ("browsing_events.occurred_at", f"0 events on {LAST_DAY:%A} {LAST_DAY.isoformat()}"),
                 id="empty_last_day"),
    pytest.param(_sql("UPDATE raw.browsing_events SET category = NULL"), "browsing_events.category_populated",
                 ("browsing_events.category", "NULL on 100.00%"), id="all_null_column"),
    pytest.param(_one_event("dwell_seconds = :v", LAST_DAY, v=float("Infinity")), "browsing_events.dwell_seconds_finite",
                 ("browsing_events.dwell_seconds", "is finite"), id="infinite_dwell_seconds-Infinity"),
    pytest.param(_one_event("dwell_seconds = :v", LAST_DAY, v=float("-Infinity")), "browsing_events.dwell_seconds_finite",
                 ("browsing_events.dwell_seconds", "is finite"), id="infinite_dwell_seconds--Infinity"),
]


@pytest.mark.parametrize(("corrupt", "check", "fragments"), CATALOGUE)
def test_bad_input_stops_the_run(wh, corrupt: Corruption, check: str, fragments: tuple[str, ...]) -> None:
    corrupt(wh)
    _assert_stopped(wh, check, *fragments)


@pytest.mark.parametrize(("assignment", "check", "fragments"), [
    pytest.param("unit_price = 'NaN'", "transactions.unit_price_finite", ("transactions.unit_price", "is finite"),
                 id="nan_unit_price"),
    pytest.param("unit_price = 1e9", "transactions.unit_price_plausible", ("above the error bound",),
                 id="absurd_unit_price"),
])
def test_a_bad_line_is_named_by_its_order(wh, assignment: str, check: str, fragments: tuple[str, ...]) -> None:
    line = _set_on_one_line(wh, assignment)
    _assert_stopped(wh, check, *fragments, line["order_id"])


def _tenfold_last_day(engine: sa.Engine) -> None:
    """Nine more copies of every line of the last day (order ids suffixed ``-x1`` ... ``-x9``)."""
    copies = " UNION ALL ".join(f"SELECT {k} AS k" for k in range(1, 10))
    _exec(engine, "INSERT INTO raw.transactions SELECT t.order_id || '-x' || c.k, t.line_number, t.customer_id, "
                  "t.ordered_at, t.product_id, t.category, t.quantity, t.unit_price, t.discount FROM raw.transactions t "
                  f"CROSS JOIN ({copies}) c WHERE t.ordered_at >= :d", d=ts_param(engine, LAST_DAY))


def test_volume_spike_can_be_made_an_error_by_a_run_parameter(wh) -> None:
    _tenfold_last_day(wh)
    _assert_stopped(wh, "transactions.last_day_volume", f"{LAST_DAY:%A}s averaged",
                    params={"quality": {"transactions.last_day_volume": "error"}})


def test_tenfold_volume_spike_warns_and_the_run_publishes(wh) -> None:
    _tenfold_last_day(wh)
    out = run_pipeline(wh, S, PARAMS)
    assert out["current"] is True and out["snapshot_date"] == S.isoformat()
    with wh.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT r.status, r.severity, r.observed FROM segmentation.quality_results r "
            "WHERE r.run_id = :r AND r.check_name = 'transactions.last_day_volume'"), {"r": out["run_id"]}).mappings().all()
    assert [(r["status"], r["severity"]) for r in rows] == [("failed", "warning")]
    assert f"{LAST_DAY:%A}s averaged" in rows[0]["observed"] and "above the 2x warning" in rows[0]["observed"]
