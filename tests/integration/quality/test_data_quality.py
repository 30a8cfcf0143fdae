"""Data quality on real warehouses: clean data passes, each bad input of the issue's catalogue fails.

Every catalogue test starts from a clean synthetic warehouse (``generated_warehouse``: generated once
per session and cloned, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL, a file copy on SQLite),
corrupts it one way, runs ``validate_raw_window`` and checks that the error names the table, column
and rule, that example rows are masked, and that every result was stored in
``segmentation.quality_results``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.quality import DataQualityError, data_docs_dir, validate_raw_window
from include.segmentation.store import get_engine, read_sql, ts_param

END = date(2024, 6, 30)
S = END + timedelta(days=1)
WINDOW = 90
LAST_DAY = S - timedelta(days=1)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["postgres", "sqlite"])
def good(request: pytest.FixtureRequest, generated_engine: Callable[..., sa.Engine]) -> sa.Engine:
    """A fresh copy of the clean synthetic warehouse, on each flavour (``ONLY_POSTGRES``/``ONLY_SQLITE``
    narrow a test to one); dropped afterwards, so a test may corrupt it freely."""
    return generated_engine(request.param, customers=300, days=120, end_date=END, seed=11)


ONLY_POSTGRES = pytest.mark.parametrize("good", ["postgres"], indirect=True)
ONLY_SQLITE = pytest.mark.parametrize("good", ["sqlite"], indirect=True)


# ----------------------------------------------------------------------------------------- helpers


def _exec(engine: sa.Engine, *statements: str, **params) -> None:
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(sa.text(sql), params)


def _one(engine: sa.Engine, sql: str, **params) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(sql), params).mappings().first())


def _customer_line(engine: sa.Engine) -> dict:
    """A customer (non-guest) purchase line inside the window."""
    return _one(
        engine,
        "SELECT order_id, line_number, customer_id FROM raw.transactions WHERE customer_id IS NOT NULL "
        "AND quantity > 0 AND ordered_at >= :a AND ordered_at < :b ORDER BY order_id, line_number LIMIT 1",
        a=ts_param(engine, S - timedelta(days=WINDOW)), b=ts_param(engine, S),
    )


def _stored(engine: sa.Engine, run_id: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_sql(conn, "SELECT * FROM segmentation.quality_results WHERE run_id = :r", {"r": run_id})


def _fails(engine: sa.Engine, check: str, where: str, rule: str, **overrides) -> DataQualityError:
    """Validate, expect a DataQualityError that names ``check``, ``where`` (table.column) and ``rule``."""
    run_id = f"run_{uuid.uuid4().hex[:8]}"
    with pytest.raises(DataQualityError) as info:
        validate_raw_window(engine, S, WINDOW, run_id, overrides or None)
    exc = info.value
    message = str(exc)
    failed_line = next(line for line in message.splitlines() if line.startswith(f"- {check} "))
    assert where in failed_line and rule in failed_line and "observed" in failed_line, failed_line
    result = next(r for r in exc.results if r.check == check)
    assert result.failed and result.severity == "error" and not result.success
    stored = _stored(engine, run_id)
    assert len(stored) == len(exc.results)  # every check's result, not only the failures
    row = stored[stored["check_name"] == check].iloc[0]
    assert row["status"] == "failed" and row["severity"] == "error"
    assert row["table_name"] == result.table and row["rule"] == result.rule
    assert exc.data_docs is not None and exc.data_docs.exists()
    assert exc.data_docs == data_docs_dir(S, run_id, "raw_window") / "index.html"
    return exc


def _result(results, check: str):
    return next(r for r in results if r.check == check)


# ------------------------------------------------------------------------------------- clean data


def test_clean_synthetic_data_passes_stores_results_and_writes_data_docs(good, caplog) -> None:
    run_id = "clean_run"
    with caplog.at_level(logging.INFO, logger="include.segmentation"):
        results = validate_raw_window(good, S, WINDOW, run_id)
    assert not [r.describe() for r in results if r.failed and r.severity == "error"]
    # every table has its schema and data checks, and the window was really read
    assert _result(results, "transactions.window_not_empty").observed_value > 1000
    assert _result(results, "browsing_events.window_not_empty").observed_value > 1000
    assert _result(results, "customers.not_empty").observed_value == 300
    assert 0.02 < _result(results, "transactions.guest_line_share").observed_value < 0.2
    assert len([r for r in results if ".schema." in r.check]) == 27
    stored = _stored(good, run_id)
    assert len(stored) == len(results) and stored["validation_id"].nunique() == 1
    assert set(stored["suite"]) == {
        "raw_customers", "raw_transactions", "raw_browsing_events",
    }
    assert set(stored["status"]) <= {"passed", "failed", "skipped"}
    index = data_docs_dir(S, run_id, "raw_window") / "index.html"
    assert index.exists() and (index.parent / "validations").is_dir()
    html = "".join(p.read_text(errors="ignore") for p in index.parent.rglob("*.html"))
    assert "raw_transactions" in html and "unit_price_non_negative" in html
    assert str(index) in caplog.text  # the log says where the Data Docs are
    # a second validation of the same run is stored beside the first, not over it
    validate_raw_window(good, S, WINDOW, run_id)
    assert _stored(good, run_id)["validation_id"].nunique() == 2


def test_source_without_browsing_events_passes_with_a_warning(good) -> None:
    _exec(good, "DELETE FROM raw.browsing_events")
    results = validate_raw_window(good, S, WINDOW, "no_events")
    present = _result(results, "browsing_events.table_not_empty")
    assert present.failed and present.severity == "warning" and "no browsing data" in present.observed
    skipped = [r for r in results if r.table == "browsing_events" and r.status == "skipped"]
    assert len(skipped) > 15 and all(r.success for r in skipped)
    assert not [r for r in results if r.failed and r.severity == "error"]


@ONLY_POSTGRES
def test_overrides_are_validated_before_anything_runs(good) -> None:
    with pytest.raises(ValueError, match="unknown data-quality check 'transactions.nope'"):
        validate_raw_window(good, S, WINDOW, "bad_override", {"transactions.nope": "error"})
    with pytest.raises(ValueError, match="window_days must be at least 1"):
        validate_raw_window(good, S, 0, "bad_window")


# ------------------------------------------------------------------------------ bad-input catalogue


@ONLY_POSTGRES
def test_null_customer_id_in_customers_is_an_error_with_masked_examples(good) -> None:
    _exec(
        good,
        "ALTER TABLE raw.customers DROP CONSTRAINT customers_pkey",
        "ALTER TABLE raw.customers ALTER COLUMN customer_id DROP NOT NULL",
        "INSERT INTO raw.customers (customer_id, created_at, email, phone, marketing_consent) "
        "VALUES (NULL, '2024-01-05 10:00:00+00', 'jane.doe@example.com', '+49 170 5550123', false)",
    )
    exc = _fails(good, "customers.customer_id_not_null", "customers.customer_id", "customer_id is never null")
    result = _result(exc.results, "customers.customer_id_not_null")
    assert result.observed.startswith("1 customer")
    assert result.examples == [
        {"customer_id": None, "created_at": "2024-01-05 10:00:00+00:00", "birth_year": None, "country": None,
         "email": "j***@e***.com", "phone": "***0123", "marketing_consent": False}
    ]
    # the uniqueness check ran in the warehouse now that no constraint guarantees it, and passed
    assert _result(exc.results, "customers.customer_id_unique").observed == "0 duplicated key value(s)"
    # e-mails and phones never in clear: message, stored results, Data Docs
    stored = _stored(good, _stored_run(good))
    everything = str(exc) + stored.to_json() + "".join(
        p.read_text(errors="ignore") for p in exc.data_docs.parent.rglob("*.html"))
    assert "jane.doe@example.com" not in everything and "5550123" not in everything
    assert "j***@e***.com" in str(exc)


def _stored_run(engine: sa.Engine) -> str:
    """The run id of the latest stored validation."""
    return _one(engine, "SELECT run_id FROM segmentation.quality_results ORDER BY checked_at DESC LIMIT 1")["run_id"]


@ONLY_POSTGRES
def test_duplicate_order_lines(good) -> None:
    line = _customer_line(good)
    _exec(
        good,
        "ALTER TABLE raw.transactions DROP CONSTRAINT transactions_order_line_key",
        "INSERT INTO raw.transactions SELECT * FROM raw.transactions WHERE order_id = :o AND line_number = :n",
        o=line["order_id"], n=line["line_number"],
    )
    exc = _fails(good, "transactions.order_line_unique", "transactions.order_id, line_number",
                 "(order_id, line_number) is unique")
    result = _result(exc.results, "transactions.order_line_unique")
    assert result.observed == "1 duplicated key value(s)"
    assert result.examples == [{"order_id": line["order_id"], "line_number": line["line_number"], "copies": 2}]


def test_negative_unit_price(good) -> None:
    line = _customer_line(good)
    _exec(good, "UPDATE raw.transactions SET unit_price = -5 WHERE order_id = :o AND line_number = :n",
          o=line["order_id"], n=line["line_number"])
    exc = _fails(good, "transactions.unit_price_non_negative", "transactions.unit_price", "unit_price >= 0")
    result = _result(exc.results, "transactions.unit_price_non_negative")
    assert result.observed == "1 line"
    assert [(e["order_id"], e["unit_price"]) for e in result.examples] == [(line["order_id"], -5.0)]


@ONLY_POSTGRES
def test_negative_unit_price_on_guest_lines_only_warns(good) -> None:
    _exec(good, "UPDATE raw.transactions SET unit_price = -11062.06 WHERE order_id = (SELECT MIN(order_id) "
                "FROM raw.transactions WHERE customer_id IS NULL AND ordered_at >= :a)",
          a=ts_param(good, S - timedelta(days=WINDOW)))
    results = validate_raw_window(good, S, WINDOW, "guest_price")
    guest = _result(results, "transactions.guest_unit_price_non_negative")
    assert guest.failed and guest.severity == "warning" and guest.examples
    assert _result(results, "transactions.discount_within_line_value").status == "passed"


@ONLY_POSTGRES
def test_discount_above_line_value(good) -> None:
    line = _customer_line(good)
    _exec(good, "UPDATE raw.transactions SET discount = ABS(quantity) * unit_price + 10 "
                "WHERE order_id = :o AND line_number = :n", o=line["order_id"], n=line["line_number"])
    exc = _fails(good, "transactions.discount_within_line_value", "transactions.discount",
                 "discount <= |quantity| * unit_price")
    assert _result(exc.results, "transactions.discount_within_line_value").examples[0]["order_id"] == line["order_id"]


@ONLY_POSTGRES
def test_quantity_zero(good) -> None:
    line = _customer_line(good)
    _exec(good, "UPDATE raw.transactions SET quantity = 0 WHERE order_id = :o AND line_number = :n",
          o=line["order_id"], n=line["line_number"])
    exc = _fails(good, "transactions.quantity_not_zero", "transactions.quantity", "quantity <> 0")
    assert _result(exc.results, "transactions.quantity_not_zero").examples[0]["quantity"] == 0


def test_unknown_event_type(good) -> None:
    event = _one(good, "SELECT event_id FROM raw.browsing_events WHERE occurred_at >= :a ORDER BY event_id LIMIT 1",
                 a=ts_param(good, S - timedelta(days=WINDOW)))
    _exec(good, "UPDATE raw.browsing_events SET event_type = 'teleport' WHERE event_id = :e", e=event["event_id"])
    exc = _fails(good, "browsing_events.event_type_known", "browsing_events.event_type", "event_type in the documented set")
    assert _result(exc.results, "browsing_events.event_type_known").examples[0]["event_type"] == "teleport"


def test_timestamps_after_the_cutoff_in_the_future(good) -> None:
    line = _customer_line(good)
    future = datetime.now(timezone.utc) + timedelta(days=30)
    _exec(good, "UPDATE raw.transactions SET ordered_at = :t WHERE order_id = :o AND line_number = :n",
          t=ts_param(good, future), o=line["order_id"], n=line["line_number"])
    exc = _fails(good, "transactions.ordered_at_not_in_future", "transactions.ordered_at", "ordered_at not later than now")
    result = _result(exc.results, "transactions.ordered_at_not_in_future")
    assert result.observed == "1 line (whole table)" and result.examples[0]["order_id"] == line["order_id"]


@ONLY_POSTGRES
def test_timestamps_absurdly_old(good) -> None:
    line = _customer_line(good)
    _exec(good, "UPDATE raw.transactions SET ordered_at = :t WHERE order_id = :o AND line_number = :n",
          t=ts_param(good, datetime(1970, 1, 1, tzinfo=timezone.utc)), o=line["order_id"], n=line["line_number"])
    _fails(good, "transactions.ordered_at_not_too_old", "transactions.ordered_at", "ordered_at not before 1995-01-01")


def _orphan_lines(engine: sa.Engine, every: int) -> int:
    """Point every ``every``-th customer line of the window at a customer id that does not exist."""
    with engine.connect() as conn:
        keys = read_sql(conn, "SELECT order_id, line_number FROM raw.transactions WHERE customer_id IS NOT NULL "
                              "AND ordered_at >= :a AND ordered_at < :b ORDER BY order_id, line_number",
                        {"a": ts_param(engine, S - timedelta(days=WINDOW)), "b": ts_param(engine, S)})
    chosen = keys.iloc[::every]
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE raw.transactions SET customer_id = 'GHOST-' || order_id WHERE order_id = :o AND line_number = :n"),
            [{"o": r.order_id, "n": int(r.line_number)} for r in chosen.itertuples()],
        )
    return len(chosen)


def test_orphaned_customer_ids_beyond_the_threshold(good) -> None:
    n = _orphan_lines(good, every=10)  # ~10 % of customer lines, threshold 1 %
    assert n > 50
    exc = _fails(good, "transactions.customer_ids_known", "transactions.customer_id",
                 "customer_id is not in raw.customers <= 0.01")
    result = _result(exc.results, "transactions.customer_ids_known")
    assert 0.08 < result.observed_value < 0.12 and "of identified lines" in result.observed
    assert result.examples and all(e["customer_id"].startswith("GHOST-") for e in result.examples)


@ONLY_POSTGRES
def test_orphaned_customer_ids_below_the_threshold_pass(good) -> None:
    _orphan_lines(good, every=100000)  # a single line
    results = validate_raw_window(good, S, WINDOW, "one_orphan")
    known = _result(results, "transactions.customer_ids_known")
    assert known.status == "passed" and 0 < known.observed_value < 0.01


def test_missing_column_is_caught_by_name_before_any_sql_error(good) -> None:
    _exec(good, "ALTER TABLE raw.browsing_events RENAME COLUMN event_type TO kind")
    exc = _fails(good, "browsing_events.schema.event_type", "browsing_events.event_type", "column event_type exists")
    assert _result(exc.results, "browsing_events.schema.event_type").observed.startswith("column missing")
    skipped = [r for r in exc.results if r.status == "skipped"]
    assert len(skipped) > 40 and all("schema check failed for raw.browsing_events" in r.observed for r in skipped)
    assert "could not be evaluated" not in str(exc)


@ONLY_POSTGRES
def test_column_of_the_wrong_type(good) -> None:
    _exec(good, "ALTER TABLE raw.transactions ALTER COLUMN quantity TYPE text USING quantity::text")
    exc = _fails(good, "transactions.schema.quantity", "transactions.quantity", "column quantity exists with a integer type")
    assert _result(exc.results, "transactions.schema.quantity").observed == "type TEXT, not a integer type"


def test_empty_last_day(good) -> None:
    _exec(good, "DELETE FROM raw.transactions WHERE ordered_at >= :d", d=ts_param(good, LAST_DAY))
    exc = _fails(good, "transactions.last_day_not_empty", "transactions.ordered_at",
                 "at least 1 line(s) on the window's last day")
    result = _result(exc.results, "transactions.last_day_not_empty")
    # the calendar names the weekday and what is normal for it (the generator trades every day)
    assert result.observed.startswith(f"0 lines on {LAST_DAY:%A} {LAST_DAY.isoformat()}; {LAST_DAY:%A}s averaged ")
    assert "expected: closed day" not in result.observed
    assert result.examples and LAST_DAY.isoformat() not in [str(e["day"])[:10] for e in result.examples]
    # a source with closing days: the run's parameters make it a warning and switch the band off
    results = validate_raw_window(good, S, WINDOW, "closed_day", {"transactions.last_day_not_empty": "warning",
                                                                  "transactions.last_day_volume": "off"})
    closed = _result(results, "transactions.last_day_not_empty")
    assert closed.failed and closed.severity == "warning"
    assert _result(results, "transactions.last_day_volume").status == "skipped"
    stored = _stored(good, "closed_day").set_index("check_name")
    assert stored.loc["transactions.last_day_volume", "status"] == "skipped"
    assert pd.isna(stored.loc["transactions.last_day_volume", "success"])


def _spike(engine: sa.Engine, factor: int) -> None:
    copies = " UNION ALL ".join(f"SELECT {k} AS k" for k in range(1, factor))
    _exec(
        engine,
        "INSERT INTO raw.transactions (order_id, line_number, customer_id, ordered_at, product_id, category, "
        "quantity, unit_price, discount) SELECT t.order_id || '-x' || c.k, t.line_number, t.customer_id, t.ordered_at, "
        f"t.product_id, t.category, t.quantity, t.unit_price, t.discount FROM raw.transactions t CROSS JOIN ({copies}) c "
        "WHERE t.ordered_at >= :d",
        d=ts_param(engine, LAST_DAY),
    )


def test_tenfold_volume_spike_warns_by_default_and_can_be_made_an_error(good) -> None:
    before = _result(validate_raw_window(good, S, WINDOW, "before_spike"), "transactions.last_day_volume")
    _spike(good, 10)
    results = validate_raw_window(good, S, WINDOW, "spike")  # no exception: a warning
    spike = _result(results, "transactions.last_day_volume")
    assert spike.failed and spike.severity == "warning"
    assert spike.observed_value == pytest.approx(before.observed_value * 10, rel=0.15)
    stored = _stored(good, "spike")
    row = stored[stored["check_name"] == "transactions.last_day_volume"].iloc[0]
    assert row["status"] == "failed" and row["severity"] == "warning"
    assert f"{LAST_DAY:%A}s averaged" in spike.observed and "above the 2x warning" in spike.observed
    _fails(good, "transactions.last_day_volume", "transactions.ordered_at", "x normal for that weekday",
           **{"transactions.last_day_volume": "error"})


def test_all_null_column_fails_once_the_source_has_provided_values(good) -> None:
    validate_raw_window(good, S, WINDOW, "baseline")  # history: category had values
    _exec(good, "UPDATE raw.transactions SET category = NULL")
    exc = _fails(good, "transactions.category_populated", "transactions.category", "category is not entirely NULL")
    assert _result(exc.results, "transactions.category_populated").observed.startswith("NULL on 100.00% of lines")


@ONLY_POSTGRES
def test_all_null_column_of_a_source_that_never_had_values_only_warns(good) -> None:
    _exec(good, "UPDATE raw.transactions SET category = NULL")  # no earlier validation saw a category
    results = validate_raw_window(good, S, WINDOW, "never_populated")
    cat = _result(results, "transactions.category_populated")
    assert cat.failed and cat.severity == "warning" and "never populated" in cat.observed


@ONLY_POSTGRES
def test_password_never_leaks(good, caplog) -> None:
    url = good.url.set(password="s3cr3t-Pw-42")  # trust authentication ignores it; GX must not see it
    engine = get_engine(url)
    line = _customer_line(engine)
    _exec(engine, "UPDATE raw.transactions SET quantity = 0 WHERE order_id = :o AND line_number = :n",
          o=line["order_id"], n=line["line_number"])
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(DataQualityError) as info:
            validate_raw_window(engine, S, WINDOW, "pw_run")
    docs = "".join(p.read_text(errors="ignore") for p in info.value.data_docs.parent.rglob("*") if p.is_file())
    stored = _stored(engine, "pw_run").to_json()
    for text in (str(info.value), caplog.text, docs, stored):
        assert "s3cr3t-Pw-42" not in text
    engine.dispose()


# ------------------------------------------------------------------------------------ real data


def test_online_retail_sample_passes_with_documented_warnings(engine) -> None:
    from include.segmentation.sources import load_online_retail

    load_online_retail(engine, FIXTURES / "online_retail_small.csv")
    results = validate_raw_window(engine, date(2011, 10, 8), 365, "online_retail")
    warnings = {r.check for r in results if r.failed}
    assert not [r.describe() for r in results if r.failed and r.severity == "error"]
    # what Online Retail lacks or carries: no events, no category/e-mail/phone/..., a negative-price guest line
    assert {"browsing_events.table_not_empty", "transactions.category_populated", "customers.email_populated",
            "transactions.guest_unit_price_non_negative"} <= warnings
    guest = _result(results, "transactions.guest_unit_price_non_negative")
    assert guest.examples[0]["order_id"] == "A563186"
    assert json.loads(_stored(engine, "online_retail").query("check_name == @guest.check")["examples"].iloc[0])


@ONLY_SQLITE
def test_a_suite_that_cannot_run_is_a_failed_check_not_a_crash(good, monkeypatch) -> None:
    from include.segmentation.quality import raw_window

    real = raw_window.plan_table

    def broken(table, *args, **kwargs):
        plan = real(table, *args, **kwargs)
        if table == "transactions":
            plan.query = plan.query.replace("FROM raw.transactions t", "FROM raw.no_such_table t")
        return plan

    monkeypatch.setattr(raw_window, "plan_table", broken)
    with pytest.raises(DataQualityError) as info:
        validate_raw_window(good, S, WINDOW, "broken_suite")
    unit_price = _result(info.value.results, "transactions.unit_price_non_negative")
    assert unit_price.failed and unit_price.observed.startswith("could not be evaluated:")
    assert "no_such_table" in unit_price.observed
    assert _result(info.value.results, "browsing_events.event_type_known").status == "passed"
    assert len(_stored(good, "broken_suite")) == len(info.value.results)
