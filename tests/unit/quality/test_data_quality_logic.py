"""Pure logic of the data-quality stage: masking, the check catalogue and its overrides, paths."""

from __future__ import annotations

import json
from datetime import date

import pytest

from include.segmentation.quality import (
    CONTRACT_TYPES,
    QUALITY_CHECKS,
    CheckResult,
    data_docs_dir,
    mask_email,
    mask_example,
    mask_phone,
    mask_text,
    resolve_checks,
)


def test_mask_email_keeps_only_first_letters_and_tld() -> None:
    assert mask_email("jane.doe@gmail.com") == "j***@g***.com"
    assert mask_email("Bob_1@mail.example.co.uk") == "B***@m***.uk"
    assert mask_email("not an address") == "***"


def test_mask_phone_keeps_last_four_digits() -> None:
    assert mask_phone("+49 170 555-0123") == "***0123"
    assert mask_phone("(030) 1234 5678") == "***5678"
    assert mask_phone("12") == "***"


def test_mask_text_masks_contacts_but_not_dates_or_ids() -> None:
    text = "row jane.doe@gmail.com called +44 20 7946 0958 at 2026-11-25 23:59:59 for order O00001-0000042"
    masked = mask_text(text)
    assert "jane.doe@gmail.com" not in masked and "j***@g***.com" in masked
    assert "7946 0958" not in masked and "***0958" in masked
    assert "2026-11-25 23:59:59" in masked and "O00001-0000042" in masked
    for identifier in ("E00000-00012931", "S00000-0008123", "C0000295", "order-20240101-0001"):
        assert mask_text(identifier) == identifier
    assert mask_text("call 01701234567 please") == "call ***4567 please"
    assert mask_text("ring (030) 1234-5678") == "ring ***5678"


def test_mask_example_by_column_and_json_safe() -> None:
    row = {
        "customer_id": "C0000007",
        "email": "anna.berg@example.org",
        "phone": "+46 70 123 45 67",
        "created_at": date(2024, 1, 2),
        "unit_price": float("inf"),
        "note": "reach me at anna@x.io",
    }
    out = mask_example(row)
    assert out["customer_id"] == "C0000007"
    assert out["email"] == "a***@e***.org"
    assert out["phone"] == "***4567"
    assert out["created_at"] == "2024-01-02"
    assert out["unit_price"] == "inf"
    assert "anna@x.io" not in out["note"]
    json.dumps(out)  # serialisable as stored in quality_results.examples


def test_defaults_cover_every_contract_table_and_documented_severities() -> None:
    specs = resolve_checks(None)
    assert set(specs) == set(QUALITY_CHECKS)
    assert {s.severity for s in specs.values()} <= {"error", "warning"}
    for table in CONTRACT_TYPES:
        assert f"{table}.schema" in specs
    # the defaults: a volume spike only warns, a negative price stops the run
    assert specs["transactions.last_day_volume"].severity == "warning"
    assert specs["transactions.unit_price_non_negative"].severity == "error"
    assert "0.6" in specs["transactions.guest_line_share"].rule


def test_overrides_change_severity_and_thresholds_and_rule_text() -> None:
    specs = resolve_checks(
        {
            "transactions.last_day_volume": {"severity": "error", "max_ratio": 3},
            "transactions.last_day_not_empty": "warning",
            "browsing_events.anonymous_event_share": {"max_share": 0.95},
            "customers.created_at_not_too_old": {"min_timestamp": "2000-01-01"},
        }
    )
    vol = specs["transactions.last_day_volume"]
    assert vol.severity == "error" and vol.params["max_ratio"] == 3.0 and "3.0" in vol.rule
    assert specs["transactions.last_day_not_empty"].severity == "warning"
    assert specs["browsing_events.anonymous_event_share"].params["max_share"] == 0.95
    assert "2000-01-01" in specs["customers.created_at_not_too_old"].rule
    # the module-level configuration itself is not modified by a run's overrides
    assert QUALITY_CHECKS["transactions.last_day_volume"]["severity"] == "warning"
    assert not resolve_checks({"transactions.freshness": "off"})["transactions.freshness"].enabled


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"transactions.no_such_check": "error"}, "unknown data-quality check 'transactions.no_such_check'"),
        ({"transactions.guest_line_share": {"max_rows": 3}}, "transactions.guest_line_share.max_rows: unknown key"),
        ({"transactions.guest_line_share": {"severity": "fatal"}}, "must be one of error, warning, off"),
        ({"transactions.guest_line_share": {"max_share": 1.5}}, "must be within [0, 1]"),
        ({"transactions.guest_line_share": {"max_share": "lots"}}, "must be a number"),
        ({"transactions.last_day_volume": {"trailing_days": 2.5}}, "whole number"),
        ({"transactions.last_day_volume": {"min_ratio": 6}}, "min_ratio 6.0 > max_ratio 2.0"),
        ({"customers.created_at_not_too_old": {"min_timestamp": "last year"}}, "must be a date"),
        ({"transactions.freshness": 3}, "must be a severity string or an object"),
    ],
)
def test_bad_overrides_name_the_check_and_the_rule(overrides: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        resolve_checks(overrides)
    assert fragment in str(info.value)


def test_data_docs_dir_is_under_the_artifacts_dir_and_safe(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("SEGMENTATION_ARTIFACTS_DIR", str(tmp_path))
    path = data_docs_dir(date(2026, 11, 26), "scheduled__2026-11-26T00:00:00+00:00", "raw_window")
    assert path == tmp_path / "data_docs" / "2026-11-26" / "scheduled__2026-11-26T00_00_00_00_00" / "raw_window"
    assert ".." not in data_docs_dir(date(2026, 11, 26), "../../etc", "output").parts


def test_check_result_describe_names_table_column_rule_observed_and_examples() -> None:
    r = CheckResult(
        "transactions.unit_price_non_negative", "transactions", "unit_price", "unit_price >= 0", "error", False,
        "3 lines", examples=[{"order_id": "O1", "unit_price": -5.0}], status="failed",
    )
    text = r.describe()
    for part in ("transactions.unit_price_non_negative", "[error]", "transactions.unit_price", "unit_price >= 0",
                 "observed 3 lines", '"order_id": "O1"'):
        assert part in text
