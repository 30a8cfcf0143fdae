"""The feeds' arithmetic: the fixed-effects elasticity from price cells, its NULL rules, the demand expectation."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from include.segmentation.explain.demand import bgnbd_params, member_expectations
from include.segmentation.explain.pricing import MIN_OBSERVATIONS, fixed_effects_slope
from include.segmentation.model.lifetime import expected_purchases


def _lines(rng: np.random.Generator, n_products: int, per_product: int, beta: float, price_sd: float) -> pd.DataFrame:
    """Lines with log q = a_product + beta * log p + noise; quantities kept continuous (the algebra is the point)."""
    product = np.repeat(np.arange(n_products), per_product)
    base = rng.uniform(1, 50, n_products)[product]
    price = np.round(base * np.exp(rng.choice([-2, -1, 0, 1, 2], product.size) * price_sd), 2)
    y = rng.normal(0, 1, n_products)[product] + beta * np.log(price) + rng.normal(0, 0.4, product.size)
    return pd.DataFrame({"product_id": [f"P{p}" for p in product], "price": price, "y": y})


def _cells(lines: pd.DataFrame) -> pd.DataFrame:
    g = lines.assign(y2=lines["y"] ** 2).groupby(["product_id", "price"], as_index=False)
    return g.agg(n=("y", "size"), sy=("y", "sum"), syy=("y2", "sum")).astype({"n": "float64"})


def _dummy_ols(lines: pd.DataFrame) -> tuple[float, float]:
    """Line-level OLS with one dummy per product (products with 2+ prices): slope and its standard error."""
    varied = lines.groupby("product_id")["price"].transform("nunique") >= 2
    d = lines[varied]
    dummies = pd.get_dummies(d["product_id"]).to_numpy("float64")
    X = np.column_stack([np.log(d["price"].to_numpy()), dummies])
    y = d["y"].to_numpy()
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    sigma2 = resid @ resid / (len(y) - X.shape[1])
    cov = sigma2 * np.linalg.inv(X.T @ X)
    return float(coef[0]), float(np.sqrt(cov[0, 0]))


def test_cells_give_the_line_level_fixed_effects_estimate_and_se() -> None:
    lines = _lines(np.random.default_rng(1), n_products=25, per_product=40, beta=-1.7, price_sd=0.1)
    single = pd.DataFrame({"product_id": ["ONE"] * 5, "price": [3.0] * 5, "y": np.arange(5.0)})  # one price: no information
    fit = fixed_effects_slope(_cells(pd.concat([lines, single], ignore_index=True)))
    beta, se = _dummy_ols(lines)
    assert fit["elasticity"] == pytest.approx(beta, abs=1e-9)
    assert fit["elasticity_se"] == pytest.approx(se, rel=1e-9)
    assert fit["n_observations"] == len(lines) and fit["n_products"] == 25
    assert abs(beta + 1.7) < 3 * se  # and the estimate is where the data were made


def test_elasticity_is_null_when_price_barely_varies_or_too_few_lines() -> None:
    rng = np.random.default_rng(2)
    flat = fixed_effects_slope(_cells(_lines(rng, n_products=20, per_product=30, beta=-1.0, price_sd=0.002)))
    assert flat["elasticity"] is None and flat["elasticity_se"] is None
    assert flat["log_price_sd"] is not None and flat["log_price_sd"] < 0.02
    few = _lines(rng, n_products=2, per_product=(MIN_OBSERVATIONS - 2) // 2, beta=-1.0, price_sd=0.2)
    assert fixed_effects_slope(_cells(few))["elasticity"] is None
    one_price = pd.DataFrame({"product_id": ["A"] * 50, "price": [2.0] * 50, "y": np.zeros(50)})
    out = fixed_effects_slope(_cells(one_price))
    assert out == {"elasticity": None, "elasticity_se": None, "n_observations": 0, "n_products": 0, "log_price_sd": None}


def test_member_expectations_are_the_bgnbd_conditional_expectation_over_four_weeks() -> None:
    params = {"r": 0.8, "alpha": 6.0, "a": 0.6, "b": 2.5}
    members = pd.DataFrame({"occasions": [1, 4, 10], "first_day": ["2024-01-03", "2024-02-01", "2023-07-10"],
                            "last_day": ["2024-01-03", "2024-05-20", "2024-06-28"]})
    last_day = date(2024, 6, 30)
    got = member_expectations(members, params, last_day, horizon_days=28)
    x = np.array([0.0, 3.0, 9.0])
    t_x = np.array([0, (date(2024, 5, 20) - date(2024, 2, 1)).days, (date(2024, 6, 28) - date(2023, 7, 10)).days]) / 7
    T = np.array([(last_day - date(2024, 1, 3)).days, (last_day - date(2024, 2, 1)).days,
                  (last_day - date(2023, 7, 10)).days]) / 7
    np.testing.assert_allclose(got.to_numpy(), expected_purchases(params, 4.0, x, t_x, T))
    assert got.iloc[2] > got.iloc[0]  # the frequent, recent buyer is expected to buy more
    assert member_expectations(members, None, last_day).isna().all()


def test_bgnbd_params_read_the_run_row_and_refuse_a_missing_model() -> None:
    stored = json.dumps({"model": "bg_nbd", "r": 1, "alpha": 2, "a": 0.5, "b": 3, "gamma_gamma": None})
    assert bgnbd_params(stored) == {"r": 1.0, "alpha": 2.0, "a": 0.5, "b": 3.0}
    assert bgnbd_params(None) is None and bgnbd_params(float("nan")) is None
    assert bgnbd_params(json.dumps({"r": 1})) is None


def test_report_section_escapes_names_and_says_why_an_elasticity_is_missing() -> None:
    from types import SimpleNamespace

    from include.segmentation.explain.report_feeds import feeds_section

    profiles = pd.DataFrame({"segment_id": [1, 2], "segment_name": ["<b>Bold</b>", "Quiet"]})
    price = pd.DataFrame({"segment_id": [1, 2], "category": ["*", "*"], "discounted_revenue_share": [0.5, 0.1],
                          "avg_discount_depth": [0.3, 0.2], "elasticity": [-1.93, None], "elasticity_se": [0.05, None],
                          "n_observations": [4120, 12]})
    demand = pd.DataFrame({"segment_id": [1, 1], "category": ["Shoes", "Books"], "expected_occasions": [10.0, 10.0],
                           "expected_units": [4.0, 9.0], "expected_revenue": [200.0, 50.0]})
    html = feeds_section(SimpleNamespace(profiles=profiles, feeds={"price_response": price, "demand_forecast": demand}))
    assert "&lt;b&gt;Bold&lt;/b&gt;" in html and "<b>Bold</b>" not in html
    assert "-1.93 ± 0.05" in html and "too little price variation (n 12)" in html
    assert html.index("Shoes") < html.index("Books")  # by expected revenue
    assert feeds_section(SimpleNamespace(profiles=profiles, feeds=None)) == ""
