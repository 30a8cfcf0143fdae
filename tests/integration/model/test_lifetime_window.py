"""The lifetime model's inputs aggregated in the warehouse equal the paper's definitions computed in pandas.

``read_purchase_customers`` (one row per customer out of the warehouse) + ``summarise_customers`` must
give the same x, t_x, T and mean spend per occasion as ``summarise_occasions`` over the window's raw
purchase lines, on both warehouse flavours.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.model.lifetime import summarise_customers, summarise_occasions
from include.segmentation.pipeline.ingest import read_purchase_customers
from include.segmentation.store import read_sql

END = date(2024, 6, 30)
S = END + timedelta(days=1)
WINDOW = 180


@pytest.mark.parametrize("flavour", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_warehouse_summary_equals_the_pandas_summary(flavour: str, generated_engine: Callable[..., sa.Engine]) -> None:
    engine = generated_engine(flavour, customers=400, days=400, end_date=END, seed=3)
    with engine.connect() as conn:
        lines = read_sql(conn, "SELECT customer_id, ordered_at, quantity, unit_price, discount FROM raw.transactions "
                               "WHERE customer_id IS NOT NULL")
    at = pd.to_datetime(lines["ordered_at"], utc=True)
    start = pd.Timestamp(S - timedelta(days=WINDOW), tz="UTC")
    lines = lines[(at >= start) & (at < pd.Timestamp(S, tz="UTC")) & (pd.to_numeric(lines["quantity"]) > 0)]
    occasions = pd.DataFrame({
        "customer_id": lines["customer_id"].astype(str),
        "day": pd.to_datetime(lines["ordered_at"], utc=True).dt.tz_convert(None).dt.normalize(),
        "spend": pd.to_numeric(lines["quantity"]) * pd.to_numeric(lines["unit_price"]) - pd.to_numeric(lines["discount"]),
    })
    want = summarise_occasions(occasions, S - timedelta(days=1)).sort_index()
    got = summarise_customers(read_purchase_customers(engine, S, WINDOW), S - timedelta(days=1)).sort_index()
    assert len(got) > 100 and (got["x"] > 0).sum() > 20
    pd.testing.assert_index_equal(got.index, want.index)
    pd.testing.assert_frame_equal(got[["x", "t_x", "T"]], want[["x", "t_x", "T"]], check_exact=True)
    pd.testing.assert_series_equal(got["monetary"], want["monetary"], rtol=1e-9)
