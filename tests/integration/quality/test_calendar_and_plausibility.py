"""Issues 19, 12.2/12.6/12.7 and 13.5 on generated warehouses (PostgreSQL and SQLite).

A weekly closed day and a holiday closure are built by deleting rows from a clean generated
warehouse; NaN / Infinity and implausible magnitudes are written into it. ``validate_raw_window``
runs on the real database.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from include.segmentation.quality import DataQualityError, validate_raw_window
from include.segmentation.store import ts_param

END = date(2024, 6, 30)  # a Sunday: the generated data ends here
DAYS = 120
WINDOW = 90

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["postgres", "sqlite"])
def wh(request: pytest.FixtureRequest, generated_engine: Callable[..., sa.Engine]) -> sa.Engine:
    return generated_engine(request.param, customers=300, days=DAYS, end_date=END, seed=11)


ONLY_POSTGRES = pytest.mark.parametrize("wh", ["postgres"], indirect=True)
ONLY_SQLITE = pytest.mark.parametrize("wh", ["sqlite"], indirect=True)


def _exec(engine: sa.Engine, sql: str, **params) -> int:
    with engine.begin() as conn:
        return conn.execute(sa.text(sql), params).rowcount


def _delete_days(engine: sa.Engine, days: list[date], table: str = "transactions") -> None:
    col = "ordered_at" if table == "transactions" else "occurred_at"
    for d in days:
        _exec(engine, f"DELETE FROM raw.{table} WHERE {col} >= :a AND {col} < :b",
              a=ts_param(engine, d), b=ts_param(engine, d + timedelta(days=1)))


def _weekdays(weekday: int) -> list[date]:
    start = END - timedelta(days=DAYS + 7)
    return [start + timedelta(days=k) for k in range(DAYS + 8) if (start + timedelta(days=k)).weekday() == weekday]


def _validate(engine: sa.Engine, s: date, run_id: str, overrides: dict | None = None, window: int = WINDOW):
    """All results, whether the validation raised or not (and the error, if any)."""
    try:
        return validate_raw_window(engine, s, window, run_id, overrides), None
    except DataQualityError as exc:
        return exc.results, exc


def _r(results, check: str):
    return next(r for r in results if r.check == check)


def _line(engine: sa.Engine, s: date) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(
            "SELECT order_id, line_number FROM raw.transactions WHERE customer_id IS NOT NULL AND quantity > 0 "
            "AND ordered_at >= :a AND ordered_at < :b ORDER BY order_id, line_number LIMIT 1"),
            {"a": ts_param(engine, s - timedelta(days=20)), "b": ts_param(engine, s)}).mappings().first())


# ------------------------------------------------------------------------------------ calendar


def test_weekly_closed_day_is_expected_empty_and_a_missing_trading_day_is_not(wh) -> None:
    _delete_days(wh, _weekdays(5))  # the shop never trades on Saturdays
    sunday = END  # the run for Sunday: its last day is Saturday 2024-06-29
    results, exc = _validate(wh, sunday, "closed_saturday")
    assert exc is None, str(exc)
    not_empty = _r(results, "transactions.last_day_not_empty")
    assert not_empty.status == "passed"
    assert not_empty.observed == ("0 lines on Saturday 2024-06-29; Saturdays had 0 lines in each of the last 8 weeks: "
                                  "expected: closed day")
    volume = _r(results, "transactions.last_day_volume")
    assert volume.status == "passed" and volume.observed.endswith("expected: closed day")
    fresh = _r(results, "transactions.freshness")
    assert fresh.status == "passed" and "usual gap between trading days 2 day(s)" in fresh.observed
    # Friday missing too (the feed stopped on Thursday): a longer gap than usual is an error
    _delete_days(wh, [date(2024, 6, 28)])
    results, exc = _validate(wh, sunday, "feed_stopped")
    assert exc is not None and "- transactions.freshness [error]" in str(exc)
    assert _r(results, "transactions.freshness").observed_value > 48
    # and the run for Saturday (last day Friday, a trading day) says what Fridays normally have
    results, exc = _validate(wh, END - timedelta(days=1), "missing_friday")
    assert exc is not None
    not_empty = _r(results, "transactions.last_day_not_empty")
    assert not_empty.failed and not_empty.observed.startswith("0 lines on Friday 2024-06-28; Fridays averaged ")


def test_holiday_closure_needs_the_listed_closed_dates(wh) -> None:
    holiday = [date(2024, 6, 20) + timedelta(days=k) for k in range(11)]  # closed 06-20 .. 06-30
    _delete_days(wh, holiday)
    s = END + timedelta(days=1)
    results, exc = _validate(wh, s, "holiday_unlisted")
    assert exc is not None
    assert _r(results, "transactions.last_day_not_empty").failed
    assert _r(results, "transactions.freshness").failed
    calendar = {"calendar": {"closed_dates": [d.isoformat() for d in holiday]}}
    results, exc = _validate(wh, s, "holiday_listed", calendar)
    assert exc is None, str(exc)
    not_empty = _r(results, "transactions.last_day_not_empty")
    assert not_empty.status == "passed" and "listed closed date" in not_empty.observed
    assert not_empty.observed.endswith("expected: closed day")
    fresh = _r(results, "transactions.freshness")
    assert fresh.status == "passed" and "11 listed closed date(s)" in fresh.observed
    with pytest.raises(ValueError, match="calendar.closed_dates"):
        validate_raw_window(wh, s, WINDOW, "bad_calendar", {"calendar": {"closed_dates": ["soon"]}})


def test_volume_drop_warns_below_half_of_normal(wh) -> None:
    before = _r(_validate(wh, END + timedelta(days=1), "before_drop")[0], "transactions.last_day_volume")
    n_last = int(before.observed.split(" ")[0].replace(",", ""))
    normal = n_last / before.observed_value
    keep = max(1, int(normal * 0.3))
    assert keep < n_last
    with wh.connect() as conn:
        rows = conn.execute(sa.text("SELECT order_id, line_number FROM raw.transactions WHERE ordered_at >= :d "
                                    "ORDER BY order_id, line_number"), {"d": ts_param(wh, END)}).all()
    with wh.begin() as conn:
        for order_id, line_number in rows[keep:]:
            conn.execute(sa.text("DELETE FROM raw.transactions WHERE order_id = :o AND line_number = :n"),
                         {"o": order_id, "n": line_number})
    results, exc = _validate(wh, END + timedelta(days=1), "drop")
    assert exc is None or "last_day_volume" not in str(exc)  # a warning by default
    drop = _r(results, "transactions.last_day_volume")
    assert drop.failed and drop.severity == "warning"
    assert drop.observed_value == pytest.approx(keep / normal, rel=1e-6)
    assert f"{keep:,} lines on Sunday 2024-06-30; Sundays averaged" in drop.observed
    assert "below the 0.5x warning" in drop.observed


def test_volume_band_is_configurable(wh) -> None:
    wide = {"transactions.last_day_volume": {"min_ratio": 0.0, "max_ratio": 1000.0}}
    results, _ = _validate(wh, END + timedelta(days=1), "wide", wide)
    assert _r(results, "transactions.last_day_volume").status == "passed"
    narrow = {"transactions.last_day_volume": {"min_ratio": 999.0, "max_ratio": 1000.0, "severity": "error"}}
    results, exc = _validate(wh, END + timedelta(days=1), "narrow", narrow)
    assert exc is not None and "below the 999x error" in str(exc)


def test_window_before_the_first_data_warns_with_the_number_of_empty_days(wh) -> None:
    with wh.connect() as conn:
        first = conn.execute(sa.text("SELECT MIN(ordered_at) FROM raw.transactions")).scalar()
    first_day = date.fromisoformat(str(first)[:10])
    s = END + timedelta(days=1)
    window = (s - first_day).days + 30
    results, _ = _validate(wh, s, "long_window", window=window)
    cov = _r(results, "transactions.window_coverage")
    assert cov.failed and cov.severity == "warning"
    assert cov.observed.startswith(f"the window starts 30 day(s) before the data (the first line is on {first_day}")
    assert "30 empty day(s) at the start" in cov.observed
    ok = _r(_validate(wh, s, "short_window")[0], "transactions.window_coverage")
    assert ok.status == "passed" and ok.observed_value > 0.9


def test_no_trailing_data_is_said_not_one_x(wh) -> None:
    _exec(wh, "DELETE FROM raw.transactions WHERE ordered_at < :d", d=ts_param(wh, END))
    results, _ = _validate(wh, END + timedelta(days=1), "no_trailing")
    volume = _r(results, "transactions.last_day_volume")
    assert "no trailing data" in volume.observed and "1.00x" not in volume.observed
    assert volume.status == "skipped"


# ------------------------------------------------------------------------- non-finite values


@ONLY_POSTGRES
@pytest.mark.parametrize(("table", "column", "value"), [
    ("transactions", "unit_price", "NaN"),
    ("transactions", "discount", "NaN"),
    ("browsing_events", "dwell_seconds", "NaN"),
    ("browsing_events", "dwell_seconds", "Infinity"),
    ("browsing_events", "dwell_seconds", "-Infinity"),
])
def test_non_finite_values_are_an_error_on_postgres(wh, table: str, column: str, value: str) -> None:
    s = END + timedelta(days=1)
    if table == "transactions":
        line = _line(wh, s)
        _exec(wh, f"UPDATE raw.transactions SET {column} = '{value}' WHERE order_id = :o AND line_number = :n",
              o=line["order_id"], n=line["line_number"])
        key = line["order_id"]
    else:
        key = _exec_event(wh, s, column, f"'{value}'")
    results, exc = _validate(wh, s, "non_finite")
    assert exc is not None
    line_ = next(x for x in str(exc).splitlines() if x.startswith(f"- {table}.{column}_finite [error]"))
    assert f"{table}.{column}" in line_ and key in line_  # table, column and the example row
    assert _r(results, f"{table}.{column}_finite").observed == f"1 {'line' if table == 'transactions' else 'event'}"


def _exec_event(engine: sa.Engine, s: date, column: str, value_sql: str) -> str:
    with engine.connect() as conn:
        event_id = conn.execute(sa.text("SELECT event_id FROM raw.browsing_events WHERE occurred_at >= :a "
                                        "AND occurred_at < :b ORDER BY event_id LIMIT 1"),
                                {"a": ts_param(engine, s - timedelta(days=20)), "b": ts_param(engine, s)}).scalar()
    _exec(engine, f"UPDATE raw.browsing_events SET {column} = {value_sql} WHERE event_id = :e", e=event_id)
    return str(event_id)


@ONLY_SQLITE
def test_non_finite_values_on_sqlite(wh) -> None:
    s = END + timedelta(days=1)
    # Infinity is stored as a real inf: caught by the finite checks
    line = _line(wh, s)
    _exec(wh, "UPDATE raw.transactions SET unit_price = 1e999 WHERE order_id = :o AND line_number = :n",
          o=line["order_id"], n=line["line_number"])
    event = _exec_event(wh, s, "dwell_seconds", "-1e999")
    results, exc = _validate(wh, s, "inf_sqlite")
    assert exc is not None
    assert _r(results, "transactions.unit_price_finite").failed
    assert _r(results, "browsing_events.dwell_seconds_finite").failed
    message = str(exc)
    assert line["order_id"] in next(x for x in message.splitlines() if x.startswith("- transactions.unit_price_finite"))
    assert event in next(x for x in message.splitlines() if x.startswith("- browsing_events.dwell_seconds_finite"))
    # NaN: SQLite stores it as NULL; in a NOT NULL column the warehouse refuses it, else unit_price_not_null fails
    line = _line(wh, s)
    try:
        _exec(wh, "UPDATE raw.transactions SET discount = :v WHERE order_id = :o AND line_number = :n",
              v=math.nan, o=line["order_id"], n=line["line_number"])
    except sa.exc.IntegrityError:
        return
    results, exc = _validate(wh, s, "nan_sqlite")
    assert exc is not None and _r(results, "transactions.discount_not_null").failed


# ------------------------------------------------------------------------------- plausibility


@pytest.mark.parametrize(("column", "value"), [("unit_price", 1e9), ("quantity", 100_000_000)])
def test_absurd_magnitudes_are_an_error(wh, column: str, value: float) -> None:
    s = END + timedelta(days=1)
    line = _line(wh, s)
    _exec(wh, f"UPDATE raw.transactions SET {column} = :v WHERE order_id = :o AND line_number = :n",
          v=value, o=line["order_id"], n=line["line_number"])
    results, exc = _validate(wh, s, "absurd")
    assert exc is not None
    check = f"transactions.{column}_plausible"
    failed = next(x for x in str(exc).splitlines() if x.startswith(f"- {check} [error]"))
    assert line["order_id"] in failed and "above the error bound" in failed
    assert _r(results, check).observed_value > 10000


def test_a_large_but_possible_value_only_warns(wh) -> None:
    s = END + timedelta(days=1)
    clean = _r(_validate(wh, s, "clean")[0], "transactions.unit_price_plausible")
    assert clean.status == "passed", clean.observed
    scale = float(clean.observed.split("= ")[1].split(" ")[0].replace(",", ""))
    line = _line(wh, s)
    _exec(wh, "UPDATE raw.transactions SET unit_price = :v WHERE order_id = :o AND line_number = :n",
          v=round(max(scale, 1.0) * 200, 2), o=line["order_id"], n=line["line_number"])
    results, exc = _validate(wh, s, "large")
    plausible = _r(results, "transactions.unit_price_plausible")
    assert plausible.failed and plausible.severity == "warning" and "above the warning bound" in plausible.observed
    assert exc is None or "unit_price_plausible" not in str(exc).split("warning")[0]


@ONLY_SQLITE
def test_validate_raw_logs_its_progress_per_table(wh, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import re

    with caplog.at_level(logging.INFO, logger="include.segmentation.quality"):
        _validate(wh, END + timedelta(days=1), "progress")
    text = caplog.text
    assert "validate_raw: started for snapshot 2024-07-01, window 90 days" in text
    for table in ("customers", "transactions", "browsing_events"):
        assert f"validate_raw: raw.{table}: started" in text
        assert re.search(rf"validate_raw: raw\.{table}: [\d,]+ rows.* in \d+\.\ds", text), table
        assert re.search(rf"validate_raw: raw\.{table}: done, \d+ results \(\d+ failed\) in \d+\.\ds", text), table
