"""The PostgreSQL extract (three concurrent aggregates, then a join) against the single reference statement.

The reference is the portable one-statement SQL that SQLite runs; on PostgreSQL both must give
the same aggregates, customer for customer, and the same guest / anonymous counts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from include.segmentation.sources import extract as ex
from include.segmentation.store import bulk_insert, read_table
from tests.integration.sources.extract_reference import reference_aggregates

pytestmark = pytest.mark.postgres

END = date(2024, 6, 30)
S = END + timedelta(days=1)


@pytest.fixture
def pg_loaded(generated_engine: Callable[..., Engine]) -> tuple[Engine, ex.Window]:
    engine = generated_engine("postgres", customers=400, days=200, end_date=END, seed=11)
    # Edge cases the generator may not produce: a customer with only returns, a NULL category,
    # an event without dwell time, a customer unknown to raw.customers, rows exactly on the bounds.
    window = ex.Window(S, 90)
    lines = pd.DataFrame(
        {
            "order_id": ["E1", "E1", "E2", "E3", "E4"],
            "line_number": [1, 2, 1, 1, 1],
            "customer_id": ["edge_returns", "edge_returns", "edge_ghost", "edge_ghost", None],
            "ordered_at": pd.to_datetime(
                [f"{window.start} 00:00:00", f"{S - timedelta(days=1)} 23:59:59", f"{S} 00:00:00",
                 f"{S - timedelta(days=3)} 10:00:00", f"{S - timedelta(days=3)} 10:00:00"], utc=True),
            "product_id": ["P1", "P2", "P3", "P4", "P5"],
            "category": ["Books", None, "Toys", None, "Toys"],
            "quantity": [-2, -1, 3, 2, 1],
            "unit_price": [9.99, 5.0, 1.0, 2.5, 3.0],
            "discount": [0.0, 0.5, 0.0, 0.25, 0.0],
        }
    )
    events = pd.DataFrame(
        {
            "event_id": ["EV1", "EV2", "EV3"],
            "session_id": ["SX", "SX", "SY"],
            "customer_id": ["edge_ghost", "edge_ghost", None],
            "occurred_at": pd.to_datetime([f"{S - timedelta(days=2)} 08:00:00"] * 3, utc=True),
            "event_type": ["product_view", "add_to_cart", "search"],
            "product_id": ["P4", "P4", None],
            "category": ["Toys", "Toys", None],
            "search_query": [None, None, "lego"],
            "dwell_seconds": [12.5, np.nan, 3.0],
        }
    )
    with engine.begin() as conn:
        bulk_insert(conn, "raw", "transactions", lines)
        bulk_insert(conn, "raw", "browsing_events", events)
    return engine, window


def _reference(engine, window: ex.Window) -> tuple[pd.DataFrame, int, int]:
    with engine.connect() as conn:
        return reference_aggregates(conn, window)


def test_postgres_extract_equals_reference_statement(pg_loaded) -> None:
    engine, window = pg_loaded
    ref, guests, anonymous = _reference(engine, window)
    out = ex.extract_aggregates(engine, window)
    with engine.connect() as conn:
        got = read_table(conn, *out["aggregates_table"].split("."))
        leftovers = conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'segmentation' "
                 "AND table_name LIKE 'stg%'")).scalars().all()
    assert sorted(leftovers) == ["stg_aggregates_20240701"]  # the intermediate tables are dropped
    assert out["population"] == len(ref) == len(got) > 100
    assert out["excluded_guest_lines"] == guests > 0
    assert out["excluded_anonymous_events"] == anonymous > 0
    assert {"edge_returns", "edge_ghost"} <= set(got["customer_id"])
    ref = ref.sort_values("customer_id").reset_index(drop=True)
    got = got.sort_values("customer_id").reset_index(drop=True)
    assert list(got.columns) == list(ref.columns)
    for col in ref.columns:
        a, b = ref[col], got[col]
        if col in ("customer_id", "gender", "country"):
            assert a.fillna("<NULL>").tolist() == b.fillna("<NULL>").tolist(), col
        elif col.endswith("_at"):
            assert pd.to_datetime(a, utc=True).equals(pd.to_datetime(b, utc=True)), col
        else:
            np.testing.assert_allclose(
                pd.to_numeric(a).astype(float), pd.to_numeric(b).astype(float), rtol=1e-12, equal_nan=True, err_msg=col
            )
    returns_only = got.set_index("customer_id").loc["edge_returns"]
    assert returns_only["orders"] == 0 and returns_only["return_lines"] == 2
    assert returns_only["returned_value"] == pytest.approx(2 * 9.99 + 5.0)
    ghost = got.set_index("customer_id").loc["edge_ghost"]
    assert ghost["sessions"] == 1 and ghost["categories"] == 0 and pd.isna(ghost["created_at"])


def test_postgres_extract_rejects_a_bad_work_mem(pg_loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, window = pg_loaded
    monkeypatch.setenv("SEGMENTATION_EXTRACT_WORK_MEM", "1GB; DROP TABLE raw.customers")
    with pytest.raises(ValueError, match="SEGMENTATION_EXTRACT_WORK_MEM"):
        ex.extract_aggregates(engine, window)
    monkeypatch.setenv("SEGMENTATION_EXTRACT_WORK_MEM", "64MB")
    assert ex.pg_extract_settings()["work_mem"] == "64MB"
    assert ex.extract_aggregates(engine, window)["population"] > 100
