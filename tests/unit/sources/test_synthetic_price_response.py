"""The generator's opt-in price response: only prices, quantities and discounts change, as planted."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from include.segmentation.sources.synthetic import generate_chunk
from include.segmentation.sources.synthetic.catalogue import catalogue
from include.segmentation.sources.synthetic.pricing import PLANTED_ELASTICITY, PRICE_LEVELS, R_MAX, log_rounded

END = date(2024, 6, 30)
ARGS = (0, 1, 600, 400, END, 5)


@pytest.fixture(scope="module")
def both() -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    return generate_chunk(*ARGS), generate_chunk(*ARGS, price_response=True)


def test_off_by_default_and_only_price_quantity_discount_change(both) -> None:
    default, planted = both
    pd.testing.assert_frame_equal(generate_chunk(*ARGS, price_response=False)["transactions"], default["transactions"])
    for name in ("customers", "browsing_events", "planted_types"):
        pd.testing.assert_frame_equal(default[name], planted[name])
    keep = ["order_id", "line_number", "customer_id", "ordered_at", "product_id", "category"]
    pd.testing.assert_frame_equal(default["transactions"][keep], planted["transactions"][keep])
    assert not default["transactions"]["quantity"].equals(planted["transactions"]["quantity"])


def test_prices_vary_by_period_on_the_planted_levels_and_lines_stay_valid(both) -> None:
    _, planted = both
    tx = planted["transactions"]
    cat = catalogue(ARGS[-1])
    ref = pd.Series(cat.price_cents / 100.0, index=[str(p) for p in cat.product_str])
    ratio = (tx["unit_price"] / tx["product_id"].map(ref)).to_numpy()
    assert np.all(np.min(np.abs(ratio[:, None] - PRICE_LEVELS[None, :]), axis=1) < 0.01)
    assert (tx.groupby("product_id")["unit_price"].nunique() > 1).any()
    assert (tx["discount"] >= 0).all() and (tx["discount"] <= tx["quantity"].abs() * tx["unit_price"] + 1e-9).all()
    assert (tx["quantity"] != 0).all()


def test_quantity_follows_the_planted_elasticity_in_expectation(both) -> None:
    _, planted = both
    tx = planted["transactions"][planted["transactions"]["quantity"] > 0]
    tx = tx.merge(planted["planted_types"], on="customer_id")
    cat = catalogue(ARGS[-1])
    ref = pd.Series(cat.price_cents / 100.0, index=[str(p) for p in cat.product_str])
    paid = (tx["quantity"] * tx["unit_price"] - tx["discount"]) / tx["quantity"]
    x = np.log(paid / (tx["product_id"].map(ref) * R_MAX))
    for kind in ("bargain_hunter", "loyal_high_spender"):
        m = (tx["planted_type"] == kind).to_numpy()
        slope = np.polyfit(x[m], np.log(tx["quantity"][m]), 1)[0]
        assert slope == pytest.approx(PLANTED_ELASTICITY[kind], abs=0.15)


def test_log_rounding_is_unbiased_in_log_space() -> None:
    q_star = np.full(200_000, 2.6)
    q = log_rounded(np.random.default_rng(0), q_star)
    assert set(np.unique(q)) == {2, 3}
    assert np.log(q).mean() == pytest.approx(np.log(2.6), abs=0.003)
    assert (log_rounded(np.random.default_rng(0), np.array([1.0, 4.0])) == [1, 4]).all()
