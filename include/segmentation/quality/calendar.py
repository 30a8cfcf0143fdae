"""Checks that know the shop's calendar: last-day presence, last-day volume, freshness, window coverage.

A shop that never trades on Saturdays, or closes over Christmas, is not broken on those days. The
daily row counts of the window (ONE ``GROUP BY day`` query per event table, pushed down to the
warehouse) tell what is normal for the window's last day:

* **closed day**: the last day's weekday had no rows in each of the last ``weeks`` weeks (at least
  ``closed_min_weeks`` of them inside the window), or the date is listed in the run's
  ``quality.calendar.closed_dates``. It is expected empty: ``last_day_not_empty`` and
  ``last_day_volume`` pass with ``expected: closed day`` in the observed text;
* **normal volume**: the average of the same weekday over the last ``weeks`` weeks (trading days
  only: zero days and listed closed dates are left out); with fewer than 2 such days, the average
  of the trailing ``trailing_days`` days that are not closed (fallback);
* **freshness**: the latest row must be at most ``max(max_age_hours, 24 h x the usual gap)``
  before the cutoff, plus 24 h per listed closed date after the latest row. The usual gap is
  learned from the window: the longest gap between consecutive trading days that occurs at least
  ``usual_gap_min_count`` times (Online Retail: 2 days, Friday to Sunday).

Everything here is plain Python over the daily counts (no Great Expectations): the results are
recorded in ``segmentation.quality_results`` like every other check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, text

from include.segmentation.quality.checks import TIMESTAMP_COLUMNS, CalendarSpec, CheckSpec
from include.segmentation.quality.raw_sql import Sql, Window, fetch_examples, window_predicate
from include.segmentation.quality.results import CheckResult

_UNITS = {"transactions": "lines", "browsing_events": "events"}


@dataclass
class DailyCounts:
    """Rows per UTC day of the window (days without rows are absent) and the latest timestamp."""

    counts: dict[date, int]
    latest: datetime | None


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def read_daily_counts(engine: Engine, table: str, w: Window) -> DailyCounts:
    """One grouped query over the window: rows per day and the latest timestamp."""
    sql = Sql(engine)
    col = TIMESTAMP_COLUMNS[table]
    day = sql.day(f"t.{col}")
    query = (f"SELECT {day} AS day, COUNT(*) AS n, MAX(t.{col}) AS latest FROM raw.{table} t "
             f"WHERE {window_predicate(table, sql, w, alias='t')} GROUP BY {day}")
    with engine.connect() as conn:
        rows = conn.execute(text(query)).all()
        conn.rollback()
    counts = {_as_date(r[0]): int(r[1]) for r in rows if r[0] is not None}
    latest = max((d for d in (_as_datetime(r[2]) for r in rows) if d is not None), default=None)
    return DailyCounts(counts, latest)


def _plural(weekday: str) -> str:
    return f"{weekday}s"


@dataclass
class Calendar:
    """What is normal for each day of one table's window."""

    counts: dict[date, int]
    latest: datetime | None
    w: Window
    cal: CalendarSpec

    @property
    def first_day(self) -> date:
        return self.w.start.date()

    @property
    def data_start(self) -> date | None:
        """The first day of the window with rows (days before it say nothing about the calendar)."""
        return min((d for d, n in self.counts.items() if n > 0), default=None)

    @property
    def last_day(self) -> date:
        return self.w.last_day.date()

    def n(self, d: date) -> int:
        return self.counts.get(d, 0)

    def same_weekdays(self, d: date) -> list[date]:
        """The same weekday in each of the last ``weeks`` weeks before ``d`` that lie in the window."""
        out: list[date] = []
        start = self.data_start
        if start is None:
            return out
        for k in range(1, self.cal.weeks + 1):
            prev = d - timedelta(days=7 * k)
            if prev < max(self.first_day, start):
                break
            out.append(prev)
        return out

    def closed_reason(self, d: date) -> str | None:
        """Why ``d`` is expected empty (listed, or its weekday had no rows in each recent week), else None."""
        if d in self.cal.closed_dates:
            return f"{d.isoformat()} is a listed closed date (quality.calendar.closed_dates)"
        prev = self.same_weekdays(d)
        if not prev:
            return None
        traded = sum(n for day, n in self.counts.items() if min(prev) <= day < d)  # a stopped feed is not a calendar
        if len(prev) >= self.cal.closed_min_weeks and traded > 0 and all(self.n(p) == 0 for p in prev):
            return f"{_plural(d.strftime('%A'))} had 0 {{unit}} in each of the last {len(prev)} weeks"
        return None

    def is_closed(self, d: date) -> bool:
        return self.closed_reason(d) is not None

    def normal(self, d: date, trailing_days: int) -> tuple[float | None, str]:
        """(normal volume for ``d``, how it was computed); None when there is nothing to compare with."""
        weekday = _plural(d.strftime("%A"))
        prev = self.same_weekdays(d)
        trading = [p for p in prev if self.n(p) > 0 and p not in self.cal.closed_dates]
        if len(trading) >= 2:
            avg = sum(self.n(p) for p in trading) / len(trading)
            over = (f"{len(prev)} weeks" if len(trading) == len(prev)
                    else f"{len(trading)} trading {weekday} of the last {len(prev)} weeks")
            return avg, f"{weekday} averaged {avg:,.0f} over {over}"
        days = [d - timedelta(days=k) for k in range(1, trailing_days + 1)]
        start = self.data_start or d
        days = [x for x in days if x >= max(self.first_day, start) and not self.is_closed(x)]
        if not days or sum(self.n(x) for x in days) == 0:
            return None, "no trailing data"
        avg = sum(self.n(x) for x in days) / len(days)
        return avg, f"the trailing {len(days)} open days averaged {avg:,.0f} (too few {weekday} to compare)"

    def usual_gap(self) -> int:
        """The longest gap (in days) between consecutive trading days that occurs ``usual_gap_min_count`` times."""
        trading = sorted(d for d, n in self.counts.items() if n > 0)
        gaps: Counter[int] = Counter()
        for a, b in zip(trading, trading[1:], strict=False):
            if any(a + timedelta(days=k) in self.cal.closed_dates for k in range(1, (b - a).days)):
                continue  # a listed closure is not a usual gap
            gaps[(b - a).days] += 1
        usual = [g for g, c in gaps.items() if c >= self.cal.usual_gap_min_count]
        return max(usual, default=1)


def _result(spec: CheckSpec, table: str, ok: bool, observed: str, value: float | None,
            status: str | None = None, severity: str | None = None) -> CheckResult:
    return CheckResult(spec.name, table, spec.column, spec.rule, severity or spec.severity, ok, observed,
                       suite=f"raw_{table}", status=status or ("passed" if ok else "failed"), observed_value=value)


def _day_label(d: date) -> str:
    return f"{d.strftime('%A')} {d.isoformat()}"


def calendar_results(engine: Engine, table: str, w: Window, specs: dict[str, CheckSpec],
                     cal: CalendarSpec) -> list[CheckResult]:
    """``<table>.last_day_not_empty``, ``last_day_volume``, ``freshness`` and ``window_coverage``."""
    enabled = [s for s in (specs[f"{table}.{n}"] for n in ("last_day_not_empty", "last_day_volume", "freshness",
                                                           "window_coverage")) if s.enabled]
    if not enabled:
        return []
    daily = read_daily_counts(engine, table, w)
    c = Calendar(daily.counts, daily.latest, w, cal)
    unit = _UNITS[table]
    last = c.last_day
    n_last = c.n(last)
    closed = c.closed_reason(last)
    closed_text = (closed or "").replace("{unit}", unit)
    out: list[CheckResult] = []
    examples = None

    def daily_examples() -> list[dict[str, Any]]:
        nonlocal examples
        if examples is None:
            examples = fetch_examples(engine, w, table, "@daily", True)
        return examples

    if (s := specs[f"{table}.last_day_not_empty"]).enabled:
        min_rows = int(s.params["min_rows"])
        if n_last >= min_rows:
            r = _result(s, table, True, f"{n_last:,} {unit} on {_day_label(last)}", float(n_last))
        elif closed:
            r = _result(s, table, True, f"{n_last:,} {unit} on {_day_label(last)}; {closed_text}: "
                        "expected: closed day", float(n_last))
        else:
            normal, how = c.normal(last, 28)
            why = f"; {how}" if normal is not None else ""
            r = _result(s, table, False, f"{n_last:,} {unit} on {_day_label(last)}{why}", float(n_last))
            r.examples = daily_examples()
        out.append(r)
    if (s := specs[f"{table}.last_day_volume"]).enabled:
        out.append(_volume(s, table, c, unit, last, n_last, closed_text if closed else None, daily_examples))
    if (s := specs[f"{table}.freshness"]).enabled:
        out.append(_freshness(s, table, c, w, closed_text if closed else None))
    if (s := specs[f"{table}.window_coverage"]).enabled:
        out.append(_coverage(s, table, c, w, unit))
    return out


def _volume(s: CheckSpec, table: str, c: Calendar, unit: str, last: date, n_last: int, closed: str | None,
            daily_examples: Any) -> CheckResult:
    """The last day's volume within [min_ratio, max_ratio] x what is normal for that weekday."""
    lo, hi = float(s.params["min_ratio"]), float(s.params["max_ratio"])
    head = f"{n_last:,} {unit} on {_day_label(last)}"
    if closed and n_last == 0:
        return _result(s, table, True, f"{head}; {closed}: expected: closed day", None)
    if c.w.days < 2:
        return _result(s, table, True, "not run: the window is a single day (no trailing days)", None,
                       status="skipped")
    normal, how = c.normal(last, int(s.params["trailing_days"]))
    if normal is None or normal <= 0:
        return _result(s, table, True, f"{head}; no trailing data: nothing to compare with", None, status="skipped")
    ratio = n_last / normal
    if ratio < lo:
        verdict, ok = f"below the {lo:g}x {s.severity}", False
    elif ratio > hi:
        verdict, ok = f"above the {hi:g}x {s.severity}", False
    else:
        verdict, ok = f"within [{lo:g}x, {hi:g}x]", True
    r = _result(s, table, ok, f"{head}; {how}: {ratio:.2f}x, {verdict}", ratio)
    if not ok:
        r.examples = daily_examples()
    return r


def _freshness(s: CheckSpec, table: str, c: Calendar, w: Window, closed: str | None) -> CheckResult:
    """The latest row is within the shop's normal gap of the cutoff (listed closed dates extend it)."""
    if c.latest is None:
        return _result(s, table, False, "no row in the window", None)
    age = (w.cutoff - c.latest).total_seconds() / 3600.0
    gap = c.usual_gap()
    allowed = max(float(s.params["max_age_hours"]), 24.0 * gap)
    latest_day = c.latest.date()
    listed = sum(1 for k in range(1, (c.last_day - latest_day).days + 1)
                 if latest_day + timedelta(days=k) in c.cal.closed_dates)
    allowed += 24.0 * listed
    extra = f" and {listed} listed closed date(s)" if listed else ""
    note = f"; last day: {closed}: expected: closed day" if closed else ""
    observed = (f"latest {age:.1f} h before the cutoff ({c.latest:%Y-%m-%d %H:%M}); allowed {allowed:.0f} h "
                f"(usual gap between trading days {gap} day(s){extra}){note}")
    return _result(s, table, age <= allowed, observed, age)


def _coverage(s: CheckSpec, table: str, c: Calendar, w: Window, unit: str) -> CheckResult:
    """The share of the window's days with any row; a window starting before the first data warns."""
    days = w.days
    with_rows = sum(1 for n in c.counts.values() if n > 0)
    share = with_rows / days if days else 0.0
    first = min(c.counts, default=None)
    leading = (first - c.first_day).days if first is not None else days
    text_ = f"{with_rows:,} of {days:,} days have {unit} ({share:.1%})"
    ok = share >= float(s.params["min_share"])
    if leading > 0:
        ok = False
        start = f"the first {unit[:-1]} is on {first.isoformat()}" if first else f"no {unit} at all"
        text_ = (f"the window starts {leading:,} day(s) before the data ({start}): {leading:,} empty day(s) "
                 f"at the start; {text_}")
    return _result(s, table, ok, text_, share)
