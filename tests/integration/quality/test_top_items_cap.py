"""Issue 12.6 in the product feed: one extreme customer must not distort a segment's lifts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.explain.top_items import contribution_cap, top_items
from include.segmentation.sources import Window
from include.segmentation.store import get_engine, ts_param

END = date(2024, 6, 30)
S = END + timedelta(days=1)
WINDOW = Window(S, 90)
STAGED = "segmentation.stg_cap_test"

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["postgres", "sqlite"])
def wh(request: pytest.FixtureRequest, generated_warehouse: Callable[..., str]) -> Iterator[sa.Engine]:
    engine = get_engine(generated_warehouse(request.param, customers=300, days=120, end_date=END, seed=11))
    with engine.begin() as conn:  # two segments: even and odd buyers of the window
        conn.execute(sa.text(f"CREATE TABLE {STAGED} (customer_id TEXT, segment_id INTEGER)"))
        ids = conn.execute(sa.text("SELECT DISTINCT customer_id FROM raw.transactions WHERE customer_id IS NOT NULL "
                                   "AND ordered_at >= :a ORDER BY customer_id"),
                           {"a": ts_param(engine, WINDOW.start)}).scalars().all()
        conn.execute(sa.text(f"INSERT INTO {STAGED} VALUES (:c, :s)"),
                     [{"c": c, "s": k % 2} for k, c in enumerate(ids)])
    yield engine
    engine.dispose()


def _lifts(engine: sa.Engine) -> tuple[pd.DataFrame, float]:
    with engine.connect() as conn:
        out = top_items(conn, STAGED, WINDOW, "category", top_n=50, min_buyers=1)
        cap = contribution_cap(conn, STAGED, WINDOW, "category")
    return out[(out["ranking"] == "lift") & (out["segment_id"] == 0)].set_index("item_id"), cap


def test_one_extreme_customer_does_not_flatten_the_segment_lifts(wh) -> None:
    before, cap = _lifts(wh)
    with wh.connect() as conn:
        line = conn.execute(sa.text(
            f"SELECT t.order_id, t.line_number, t.category FROM raw.transactions t JOIN {STAGED} a "
            "ON a.customer_id = t.customer_id WHERE a.segment_id = 0 AND t.quantity > 0 AND t.ordered_at >= :a "
            "ORDER BY t.order_id LIMIT 1"), {"a": ts_param(wh, WINDOW.start)}).mappings().first()
    with wh.begin() as conn:
        conn.execute(sa.text("UPDATE raw.transactions SET unit_price = 1e9 WHERE order_id = :o AND line_number = :n"),
                     {"o": line["order_id"], "n": line["line_number"]})
    after, cap_after = _lifts(wh)
    assert cap_after == pytest.approx(cap, rel=0.05)  # the cap is the data's own scale, the outlier barely moves it
    others = [c for c in before.index if c != line["category"] and c in after.index]
    assert others
    # uncapped, 1e9 would make every other category's share of segment 0 (and its lift) ~0
    for cat in others:
        assert float(after.loc[cat, "lift"]) > 0.5 * float(before.loc[cat, "lift"]), cat
    assert float(after.loc[line["category"], "revenue"]) <= float(before.loc[line["category"], "revenue"]) + cap_after + 0.01
