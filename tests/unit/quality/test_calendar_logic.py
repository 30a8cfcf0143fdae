"""The calendar arithmetic of quality/calendar.py on hand-made daily counts (no warehouse needed)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from include.segmentation.quality.calendar import Calendar
from include.segmentation.quality.checks import CalendarSpec, resolve_calendar, resolve_checks
from include.segmentation.quality.raw_sql import Window

S = date(2011, 12, 4)  # a Sunday: the last day is Saturday 2011-12-03
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _calendar(counts: dict[date, int], cal: CalendarSpec | None = None, days: int = 120) -> Calendar:
    return Calendar(counts, None, Window(S, days, NOW), cal or CalendarSpec())


def _shop(closed_weekday: int = 5, per_day: int = 100) -> dict[date, int]:
    start = S - timedelta(days=120)
    return {start + timedelta(days=k): per_day for k in range(120)
            if (start + timedelta(days=k)).weekday() != closed_weekday}


def test_a_weekday_empty_in_every_recent_week_is_closed() -> None:
    c = _calendar(_shop())
    assert c.closed_reason(date(2011, 12, 3)) == "Saturdays had 0 {unit} in each of the last 8 weeks"
    assert c.closed_reason(date(2011, 12, 2)) is None
    assert c.usual_gap() == 2  # Friday -> Sunday


def test_one_trading_week_makes_the_weekday_open_again() -> None:
    counts = _shop()
    counts[date(2011, 11, 26)] = 5
    assert _calendar(counts).closed_reason(date(2011, 12, 3)) is None


def test_listed_closed_dates_are_closed_and_do_not_teach_the_usual_gap() -> None:
    counts = {d: n for d, n in _shop(closed_weekday=9).items() if not date(2011, 11, 20) <= d <= date(2011, 11, 25)}
    cal = CalendarSpec(closed_dates=frozenset(date(2011, 11, 20) + timedelta(days=k) for k in range(6)))
    c = _calendar(counts, cal)
    assert "listed closed date" in (c.closed_reason(date(2011, 11, 22)) or "")
    assert c.usual_gap() == 1


def test_normal_is_the_same_weekday_average_without_zero_days() -> None:
    counts = _shop(closed_weekday=9)
    for k in range(1, 9):
        counts[date(2011, 12, 2) - timedelta(days=7 * k)] = 1000 + k  # Fridays are busy
    counts[date(2011, 12, 2) - timedelta(days=14)] = 0  # one Friday closed
    normal, how = _calendar(counts).normal(date(2011, 12, 2), 28)
    expected = sum(1000 + k for k in range(1, 9) if k != 2) / 7
    assert normal == pytest.approx(expected)
    assert how == f"Fridays averaged {expected:,.0f} over 7 trading Fridays of the last 8 weeks"


def test_without_history_the_trailing_average_or_nothing() -> None:
    counts = {S - timedelta(days=k): 10 for k in range(1, 7)}
    normal, how = _calendar(counts, days=6).normal(S - timedelta(days=1), 28)
    assert normal == pytest.approx(10.0) and "trailing" in how
    normal, how = _calendar({}, days=6).normal(S - timedelta(days=1), 28)
    assert normal is None and how == "no trailing data"


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"calendar": {"closed_dates": "2011-12-25"}}, "must be a list of dates"),
    ({"calendar": {"closed_dates": ["Christmas"]}}, "every item must be a date"),
    ({"calendar": {"weeks": 0}}, "whole number >= 1"),
    ({"calendar": {"holidays": []}}, "calendar.holidays: unknown key"),
    ({"transactions.unit_price_plausible": {"quantile": 2}}, "must be within [0, 1]"),
])
def test_bad_calendar_and_threshold_overrides_fail_loudly(overrides: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        resolve_checks(overrides)
    assert fragment in str(info.value)


def test_calendar_overrides_resolve() -> None:
    cal = resolve_calendar({"calendar": {"closed_dates": ["2011-12-25"], "weeks": 4}})
    assert cal.closed_dates == frozenset({date(2011, 12, 25)}) and cal.weeks == 4
    specs = resolve_checks({"transactions.last_day_volume": {"min_ratio": 0.3, "max_ratio": 4}})
    assert specs["transactions.last_day_volume"].params["min_ratio"] == 0.3
    assert resolve_checks(None)["transactions.last_day_volume"].params["max_ratio"] == 2.0


def test_a_stopped_feed_or_days_before_the_data_are_not_a_calendar() -> None:
    assert _calendar({}).closed_reason(date(2011, 12, 3)) is None
    stopped = {d: n for d, n in _shop(closed_weekday=9).items() if d < S - timedelta(days=70)}
    assert _calendar(stopped).closed_reason(date(2011, 12, 3)) is None
    recent = {S - timedelta(days=k): 10 for k in range(2, 20)}  # data began 19 days ago
    assert _calendar(recent).same_weekdays(S - timedelta(days=1)) == [S - timedelta(days=8), S - timedelta(days=15)]
