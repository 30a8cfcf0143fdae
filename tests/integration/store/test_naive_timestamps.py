"""Naive timestamps (``timestamp without time zone``, e.g. a bring-your-own-data view) are read as UTC.

Every PostgreSQL warehouse session is pinned to UTC, so the database's time zone setting cannot
move a line across the snapshot boundary S 00:00 UTC in either direction.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa

from include.segmentation.sources import create_source_contract
from include.segmentation.sources.extract import Window, extract_aggregates
from include.segmentation.store import get_engine, read_sql

S = date(2024, 7, 1)
INSIDE = datetime(2024, 6, 30, 20, 0, tzinfo=timezone.utc)  # 4 h before S: in the window
AFTER = datetime(2024, 7, 1, 5, 0, tzinfo=timezone.utc)  # 5 h after S: never in snapshot S


def _prepare(pg_url: str, tz: str) -> None:
    """raw.transactions becomes a view exposing ordered_at as naive UTC wall time; the database's
    time zone is set to ``tz``."""
    engine = get_engine(pg_url)
    create_source_contract(engine)
    db = sa.make_url(pg_url).database
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO raw.customers (customer_id, created_at, marketing_consent) VALUES "
                "('c_in', '2023-01-01T00:00:00Z', true), ('c_after', '2023-01-01T00:00:00Z', true)"
            )
        )
        for order, (customer, at) in enumerate([("c_in", INSIDE), ("c_after", AFTER)]):
            conn.execute(
                sa.text(
                    "INSERT INTO raw.transactions (order_id, line_number, customer_id, ordered_at, product_id, "
                    "category, quantity, unit_price, discount) VALUES (:o, 1, :c, :t, 'p1', 'x', 1, 10, 0)"
                ),
                {"o": f"o{order}", "c": customer, "t": at},
            )
        conn.exec_driver_sql("ALTER TABLE raw.transactions RENAME TO transactions_base")
        conn.exec_driver_sql(
            "CREATE VIEW raw.transactions AS SELECT order_id, line_number, customer_id, "
            "(ordered_at AT TIME ZONE 'UTC')::timestamp without time zone AS ordered_at, product_id, category, "
            "quantity, unit_price, discount FROM raw.transactions_base"
        )
        conn.exec_driver_sql(f"ALTER DATABASE \"{db}\" SET timezone TO '{tz}'")
    engine.dispose()


@pytest.mark.parametrize("tz", ["Etc/GMT-14", "Etc/GMT+12"], ids=["utc+14", "utc-12"])
def test_naive_timestamps_are_read_as_utc_whatever_the_database_time_zone(pg_url: str, tz: str) -> None:
    _prepare(pg_url, tz)
    engine = get_engine(pg_url)  # new sessions: they would start in the database's time zone
    try:
        out = extract_aggregates(engine, Window(S, 365), key="tz")
        with engine.connect() as conn:
            got = read_sql(conn, f"SELECT customer_id FROM {out['aggregates_table']}")
            # the 20:00 UTC line of S-1 is in, the 05:00 UTC line of S is not in snapshot S
            assert sorted(got["customer_id"]) == ["c_in"]
            assert conn.exec_driver_sql("SHOW timezone").scalar_one() == "UTC"
        raw = sa.create_engine(pg_url)  # a plain session does get the database's zone
        with raw.connect() as plain:
            assert plain.exec_driver_sql("SHOW timezone").scalar_one() == tz
        raw.dispose()
    finally:
        engine.dispose()
