"""The data-quality check catalogue: every check, what it checks, its severity and its thresholds.

``QUALITY_CHECKS`` below is the ONE place where severities and thresholds are configured
(docs/data_quality.md explains each check). A run changes them with ``overrides`` (in the DAG:
the ``quality`` Airflow Param), e.g.::

    {"transactions.last_day_volume": {"severity": "error", "max_ratio": 3},
     "transactions.last_day_not_empty": "warning"}

A value is either a dict of the check's own keys (``severity`` and its thresholds) or a severity
string. Severities: ``error`` (the run stops, nothing is published), ``warning`` (recorded and
logged, the run continues) and ``off`` (not run, recorded as skipped).

Scope. ``customers`` is validated in full (every row, not only customers referenced in the
window): it is not an event table and has no window. ``transactions`` and ``browsing_events`` are
validated on the run's window ``[S - window_days, S)``, except the ``*_not_null``/``*_not_in_future``
/``*_not_too_old`` timestamp checks, which look at the whole table (rows outside any window are
exactly what those checks are about).

No Airflow and no Great Expectations imports here: this module is cheap to import.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

SEVERITIES: tuple[str, ...] = ("error", "warning", "off")

#: Type families a contract column may have, with the SQL types each accepts (checked on the
#: reflected column type, so views and other precisions/lengths of these types pass too).
TYPE_FAMILIES: dict[str, tuple[str, ...]] = {
    "text": ("text", "varchar(n)", "char(n)", "citext"),
    "timestamp": ("timestamp with or without time zone", "SQLite datetime"),
    "integer": ("integer", "bigint", "smallint"),
    "numeric": ("numeric(p, s)", "decimal", "double precision", "real", "float", "integer types"),
    "boolean": ("boolean",),
}

#: The contract's columns and the type family each must have, per raw table (see contract.py).
CONTRACT_TYPES: dict[str, dict[str, str]] = {
    "customers": {
        "customer_id": "text",
        "created_at": "timestamp",
        "birth_year": "integer",
        "gender": "text",
        "country": "text",
        "city": "text",
        "email": "text",
        "phone": "text",
        "marketing_consent": "boolean",
    },
    "transactions": {
        "order_id": "text",
        "line_number": "integer",
        "customer_id": "text",
        "ordered_at": "timestamp",
        "product_id": "text",
        "category": "text",
        "quantity": "integer",
        "unit_price": "numeric",
        "discount": "numeric",
    },
    "browsing_events": {
        "event_id": "text",
        "session_id": "text",
        "customer_id": "text",
        "occurred_at": "timestamp",
        "event_type": "text",
        "product_id": "text",
        "category": "text",
        "search_query": "text",
        "dwell_seconds": "numeric",
    },
}

#: The timestamp column of each windowed table.
TIMESTAMP_COLUMNS: dict[str, str] = {"transactions": "ordered_at", "browsing_events": "occurred_at"}

# Shared defaults, so that the same rule has the same threshold on every table. Typed like
# ``_c``'s ``**thresholds`` (a narrower value type would make mypy match them to ``severity`` too).
_FUTURE: dict[str, Any] = {"tolerance_hours": 1.0}
_TOO_OLD: dict[str, Any] = {"min_timestamp": "1995-01-01"}
_VOLUME: dict[str, Any] = {"min_ratio": 0.5, "max_ratio": 2.0, "trailing_days": 28}
_COVERAGE: dict[str, Any] = {"min_share": 0.5}
#: Plausibility: |value| above ``factor`` x the window's ``quantile`` of |value| warns; above
#: ``error_factor`` x that quantile it is an error (the check's severity is raised to ``error``).
_PLAUSIBLE: dict[str, Any] = {"quantile": 0.99, "factor": 50.0, "error_factor": 10000.0}

#: The shop's calendar (run override ``{"calendar": {"closed_dates": ["2011-12-25"]}}``), used by
#: the ``last_day_not_empty``, ``last_day_volume`` and ``freshness`` checks (see quality/calendar.py):
#: ``weeks``: how many trailing weeks of the same weekday make "normal"; a weekday with no rows in
#: each of them (at least ``closed_min_weeks`` inside the window) is a closed day; ``closed_dates``:
#: dates the shop is known to be closed (holidays); ``usual_gap_min_count``: how often a gap
#: between trading days must occur in the window to count as usual (freshness).
CALENDAR_DEFAULTS: dict[str, Any] = {"closed_dates": [], "weeks": 8, "closed_min_weeks": 3, "usual_gap_min_count": 3}
_FRESHNESS: dict[str, Any] = {"max_age_hours": 48.0}
_KNOWN_IDS: dict[str, Any] = {"max_share": 0.01}


def _c(table: str, column: str | None, rule: str, severity: str = "error", **thresholds: Any) -> dict[str, Any]:
    return {"table": table, "column": column, "rule": rule, "severity": severity, **thresholds}


# ---------------------------------------------------------------------------------------------
# THE configuration: one entry per check. ``rule`` is a template filled from the thresholds.
# ``max_share`` 0 means "no row at all may break the rule"; above 0 it is the tolerated share.
# ``*_populated`` checks fail when a column is NULL on every row; on a source that has never
# had a value in that column (no earlier validation in segmentation.quality_results saw one, e.g.
# Online Retail's category, e-mail, phone) the failure is downgraded to a warning.
# ---------------------------------------------------------------------------------------------
QUALITY_CHECKS: dict[str, dict[str, Any]] = {
    # --- schema: one result per contract column (exists, compatible type) -----------------
    "customers.schema": _c("customers", None, "every contract column exists with a compatible type"),
    "transactions.schema": _c("transactions", None, "every contract column exists with a compatible type"),
    "browsing_events.schema": _c("browsing_events", None, "every contract column exists with a compatible type"),
    # --- customers (all rows) --------------------------------------------------------------
    "customers.not_empty": _c("customers", None, "at least {min_rows} customer(s)", min_rows=1),
    "customers.customer_id_not_null": _c("customers", "customer_id", "customer_id is never null"),
    "customers.customer_id_unique": _c("customers", "customer_id", "customer_id is unique"),
    "customers.created_at_not_null": _c("customers", "created_at", "created_at is never null"),
    "customers.marketing_consent_not_null": _c("customers", "marketing_consent", "marketing_consent is never null"),
    "customers.created_at_not_in_future": _c(
        "customers", "created_at", "created_at not later than now + {tolerance_hours} h", **_FUTURE
    ),
    "customers.created_at_not_too_old": _c("customers", "created_at", "created_at not before {min_timestamp}", **_TOO_OLD),
    "customers.birth_year_plausible": _c(
        "customers", "birth_year", "birth_year between {min_year} and the snapshot year", "warning", min_year=1900
    ),
    "customers.birth_year_populated": _c("customers", "birth_year", "birth_year is not entirely NULL"),
    "customers.gender_populated": _c("customers", "gender", "gender is not entirely NULL"),
    "customers.country_populated": _c("customers", "country", "country is not entirely NULL"),
    "customers.city_populated": _c("customers", "city", "city is not entirely NULL"),
    "customers.email_populated": _c("customers", "email", "email is not entirely NULL"),
    "customers.phone_populated": _c("customers", "phone", "phone is not entirely NULL"),
    # --- transactions (window) -------------------------------------------------------------
    "transactions.window_not_empty": _c("transactions", None, "at least {min_rows} line(s) in the window", min_rows=1),
    "transactions.order_id_not_null": _c("transactions", "order_id", "order_id is never null"),
    "transactions.line_number_not_null": _c("transactions", "line_number", "line_number is never null"),
    "transactions.product_id_not_null": _c("transactions", "product_id", "product_id is never null"),
    "transactions.quantity_not_null": _c("transactions", "quantity", "quantity is never null"),
    "transactions.unit_price_not_null": _c("transactions", "unit_price", "unit_price is never null"),
    "transactions.discount_not_null": _c("transactions", "discount", "discount is never null"),
    "transactions.order_line_unique": _c("transactions", "order_id, line_number", "(order_id, line_number) is unique"),
    "transactions.unit_price_non_negative": _c(
        "transactions", "unit_price", "unit_price >= 0 on customer lines (tolerated share {max_share})", max_share=0.0
    ),
    "transactions.guest_unit_price_non_negative": _c(
        "transactions", "unit_price", "unit_price >= 0 on guest lines (tolerated share {max_share})", "warning",
        max_share=0.0,
    ),
    "transactions.discount_non_negative": _c(
        "transactions", "discount", "discount >= 0 (tolerated share {max_share})", max_share=0.0
    ),
    "transactions.discount_within_line_value": _c(
        "transactions", "discount", "discount <= |quantity| * unit_price (tolerated share {max_share})", max_share=0.0
    ),
    "transactions.unit_price_finite": _c(
        "transactions", "unit_price", "unit_price is finite (no NaN, no +-Infinity; tolerated share {max_share})",
        max_share=0.0,
    ),
    "transactions.discount_finite": _c(
        "transactions", "discount", "discount is finite (no NaN, no +-Infinity; tolerated share {max_share})",
        max_share=0.0,
    ),
    "transactions.unit_price_plausible": _c(
        "transactions", "unit_price",
        "|unit_price| <= {factor} x the window's {quantile} quantile of |unit_price| "
        "(error above {error_factor} x)", "warning", **_PLAUSIBLE,
    ),
    "transactions.quantity_plausible": _c(
        "transactions", "quantity",
        "|quantity| <= {factor} x the window's {quantile} quantile of |quantity| (error above {error_factor} x)",
        "warning", **_PLAUSIBLE,
    ),
    "transactions.quantity_not_zero": _c("transactions", "quantity", "quantity <> 0 (tolerated share {max_share})", max_share=0.0),
    "transactions.guest_line_share": _c(
        "transactions", "customer_id", "share of guest lines (customer_id NULL) <= {max_share}", max_share=0.6
    ),
    "transactions.return_line_share": _c(
        "transactions", "quantity", "share of return lines (quantity < 0) <= {max_share}", max_share=0.25
    ),
    "transactions.customer_ids_known": _c(
        "transactions", "customer_id",
        "share of customer lines whose customer_id is not in raw.customers <= {max_share}", **_KNOWN_IDS,
    ),
    "transactions.category_populated": _c("transactions", "category", "category is not entirely NULL"),
    "transactions.ordered_at_not_null": _c("transactions", "ordered_at", "ordered_at is never null (whole table)"),
    "transactions.ordered_at_not_in_future": _c(
        "transactions", "ordered_at", "ordered_at not later than now + {tolerance_hours} h (whole table)", **_FUTURE
    ),
    "transactions.ordered_at_not_too_old": _c(
        "transactions", "ordered_at", "ordered_at not before {min_timestamp} (whole table)", **_TOO_OLD
    ),
    "transactions.last_day_not_empty": _c(
        "transactions", "ordered_at", "at least {min_rows} line(s) on the window's last day", min_rows=1
    ),
    "transactions.last_day_volume": _c(
        "transactions", "ordered_at",
        "last-day lines within [{min_ratio}, {max_ratio}] x normal for that weekday (same weekday over the "
        "trailing weeks; fallback: the trailing {trailing_days}-day daily average); closed days expected empty",
        "warning", **_VOLUME,
    ),
    "transactions.freshness": _c(
        "transactions", "ordered_at", "latest line at most max({max_age_hours} h, the usual gap between trading days) before the cutoff",
        **_FRESHNESS
    ),
    "transactions.window_coverage": _c(
        "transactions", "ordered_at",
        "share of the window's days with any line >= {min_share}; the window does not start before the data",
        "warning", **_COVERAGE,
    ),
    # --- browsing_events (window) ----------------------------------------------------------
    "browsing_events.table_not_empty": _c(
        "browsing_events", None,
        "raw.browsing_events has rows (a source without browsing data gets a warning and no event checks)",
        "warning",
    ),
    "browsing_events.window_not_empty": _c("browsing_events", None, "at least {min_rows} event(s) in the window", min_rows=1),
    "browsing_events.event_id_not_null": _c("browsing_events", "event_id", "event_id is never null"),
    "browsing_events.session_id_not_null": _c("browsing_events", "session_id", "session_id is never null"),
    "browsing_events.event_type_not_null": _c("browsing_events", "event_type", "event_type is never null"),
    "browsing_events.event_id_unique": _c("browsing_events", "event_id", "event_id is unique"),
    "browsing_events.event_type_known": _c(
        "browsing_events", "event_type", "event_type in the documented set (tolerated share {max_share})", max_share=0.0
    ),
    "browsing_events.dwell_seconds_non_negative": _c(
        "browsing_events", "dwell_seconds", "dwell_seconds >= 0 (tolerated share {max_share})", "warning", max_share=0.0
    ),
    "browsing_events.dwell_seconds_finite": _c(
        "browsing_events", "dwell_seconds",
        "dwell_seconds is finite (no NaN, no +-Infinity; tolerated share {max_share})", max_share=0.0,
    ),
    "browsing_events.anonymous_event_share": _c(
        "browsing_events", "customer_id", "share of anonymous events (customer_id NULL) <= {max_share}", max_share=0.9
    ),
    "browsing_events.customer_ids_known": _c(
        "browsing_events", "customer_id",
        "share of identified events whose customer_id is not in raw.customers <= {max_share}", **_KNOWN_IDS,
    ),
    "browsing_events.product_id_populated": _c("browsing_events", "product_id", "product_id is not entirely NULL"),
    "browsing_events.category_populated": _c("browsing_events", "category", "category is not entirely NULL"),
    "browsing_events.search_query_populated": _c(
        "browsing_events", "search_query", "search_query is not entirely NULL"
    ),
    "browsing_events.dwell_seconds_populated": _c(
        "browsing_events", "dwell_seconds", "dwell_seconds is not entirely NULL"
    ),
    "browsing_events.occurred_at_not_null": _c("browsing_events", "occurred_at", "occurred_at is never null (whole table)"),
    "browsing_events.occurred_at_not_in_future": _c(
        "browsing_events", "occurred_at", "occurred_at not later than now + {tolerance_hours} h (whole table)", **_FUTURE
    ),
    "browsing_events.occurred_at_not_too_old": _c(
        "browsing_events", "occurred_at", "occurred_at not before {min_timestamp} (whole table)", **_TOO_OLD
    ),
    "browsing_events.last_day_not_empty": _c(
        "browsing_events", "occurred_at", "at least {min_rows} event(s) on the window's last day", min_rows=1
    ),
    "browsing_events.last_day_volume": _c(
        "browsing_events", "occurred_at",
        "last-day events within [{min_ratio}, {max_ratio}] x normal for that weekday (same weekday over the "
        "trailing weeks; fallback: the trailing {trailing_days}-day daily average); closed days expected empty",
        "warning", **_VOLUME,
    ),
    "browsing_events.freshness": _c(
        "browsing_events", "occurred_at", "latest event at most max({max_age_hours} h, the usual gap between active days) before the cutoff",
        **_FRESHNESS
    ),
    "browsing_events.window_coverage": _c(
        "browsing_events", "occurred_at",
        "share of the window's days with any event >= {min_share}; the window does not start before the data",
        "warning", **_COVERAGE,
    ),
    # --- features (one row per customer; pandas frame in memory) ---------------------------
    "features.not_empty": _c("features", None, "at least {min_rows} customer(s) in the population", min_rows=1),
    "features.customer_id_unique": _c("features", "customer_id", "one row per customer (customer_id unique, not null)"),
    "features.finite": _c("features", None, "every numeric feature is finite (no NaN, no +-inf)"),
    # --- output (assignments of the run; the model's own thresholds are the quality gate's) --
    "output.one_segment_per_customer": _c(
        "output", "customer_id", "every population customer has exactly one segment"
    ),
    "output.no_unknown_customers": _c("output", "customer_id", "every assigned customer is in the population"),
    "output.segment_id_not_null": _c("output", "segment_id", "segment_id is never null"),
}

_STRUCTURAL_KEYS = frozenset({"table", "column", "rule"})
_SHARE_KEYS = frozenset({"max_share", "min_ratio", "max_ratio"})
_UNIT_INTERVAL_KEYS = frozenset({"max_share", "min_share", "quantile"})
_INT_KEYS = frozenset({"min_rows", "trailing_days", "min_year"})
_HOUR_KEYS = frozenset({"tolerance_hours", "max_age_hours"})


@dataclass(frozen=True)
class CheckSpec:
    """One configured check: identity, the rule text (thresholds filled in), severity, thresholds."""

    name: str
    table: str
    column: str | None
    rule: str
    severity: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.severity != "off"


def _check_value(name: str, key: str, value: Any) -> Any:
    """Validate one threshold value; raise ValueError naming the check, key and rule."""
    if key == "severity":
        if value not in SEVERITIES:
            raise ValueError(f"data-quality override {name}.severity = {value!r}: must be one of {', '.join(SEVERITIES)}")
        return value
    if key == "min_timestamp":
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError as exc:
            raise ValueError(f"data-quality override {name}.min_timestamp = {value!r}: must be a date YYYY-MM-DD") from exc
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"data-quality override {name}.{key} = {value!r}: must be a number")
    if key in _INT_KEYS:
        if int(value) != value or value < 0:
            raise ValueError(f"data-quality override {name}.{key} = {value!r}: must be a whole number >= 0")
        return int(value)
    if value < 0:
        raise ValueError(f"data-quality override {name}.{key} = {value!r}: must be >= 0")
    if key in _UNIT_INTERVAL_KEYS and value > 1:
        raise ValueError(f"data-quality override {name}.{key} = {value!r}: must be within [0, 1]")
    return float(value)


def resolve_checks(overrides: Mapping[str, Any] | None = None) -> dict[str, CheckSpec]:
    """``QUALITY_CHECKS`` with the run's ``overrides`` applied and validated, as ``CheckSpec``s.

    Unknown checks, unknown keys and out-of-range values raise ``ValueError`` naming them, so a
    typo in an Airflow Param fails the run loudly instead of silently using a default.
    """
    config = copy.deepcopy(QUALITY_CHECKS)
    for name, value in (overrides or {}).items():
        if name == CALENDAR_KEY:
            resolve_calendar(overrides)  # validated here so a typo fails the run loudly
            continue
        if name not in config:
            raise ValueError(f"unknown data-quality check {name!r} in overrides (known: {', '.join(sorted(config))})")
        if isinstance(value, str):
            value = {"severity": value}
        if not isinstance(value, Mapping):
            raise ValueError(f"data-quality override for {name!r} must be a severity string or an object, got {value!r}")
        allowed = set(config[name]) - _STRUCTURAL_KEYS
        for key, v in value.items():
            if key not in allowed:
                raise ValueError(
                    f"data-quality override {name}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})"
                )
            config[name][key] = _check_value(name, key, v)
    specs: dict[str, CheckSpec] = {}
    for name, entry in config.items():
        params = {k: v for k, v in entry.items() if k not in _STRUCTURAL_KEYS | {"severity"}}
        if "min_ratio" in params and params["min_ratio"] > params["max_ratio"]:
            raise ValueError(f"data-quality check {name}: min_ratio {params['min_ratio']} > max_ratio {params['max_ratio']}")
        specs[name] = CheckSpec(
            name=name,
            table=entry["table"],
            column=entry["column"],
            rule=entry["rule"].format(**params),
            severity=entry["severity"],
            params=params,
        )
    return specs


CALENDAR_KEY = "calendar"


@dataclass(frozen=True)
class CalendarSpec:
    """The shop's calendar for one run (``CALENDAR_DEFAULTS`` with the run's ``quality.calendar``)."""

    closed_dates: frozenset[date] = frozenset()
    weeks: int = 8
    closed_min_weeks: int = 3
    usual_gap_min_count: int = 3


def resolve_calendar(overrides: Mapping[str, Any] | None = None) -> CalendarSpec:
    """The run's calendar: ``overrides["calendar"]`` validated (unknown keys, bad dates and numbers raise)."""
    config = copy.deepcopy(CALENDAR_DEFAULTS)
    given = (overrides or {}).get(CALENDAR_KEY) or {}
    if not isinstance(given, Mapping):
        raise ValueError(f"data-quality override 'calendar' must be an object, got {given!r}")
    for key, value in given.items():
        if key not in config:
            raise ValueError(f"data-quality override calendar.{key}: unknown key (allowed: {', '.join(sorted(config))})")
        if key == "closed_dates":
            if isinstance(value, str) or not isinstance(value, list | tuple):
                raise ValueError(f"data-quality override calendar.closed_dates = {value!r}: must be a list of dates")
            try:
                config[key] = [date.fromisoformat(str(v)) for v in value]
            except ValueError as exc:
                raise ValueError(f"data-quality override calendar.closed_dates = {value!r}: "
                                 "every item must be a date YYYY-MM-DD") from exc
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data-quality override calendar.{key} = {value!r}: must be a whole number >= 1")
            config[key] = value
    return CalendarSpec(frozenset(config["closed_dates"]), int(config["weeks"]), int(config["closed_min_weeks"]),
                        int(config["usual_gap_min_count"]))
