"""BG/NBD and Gamma-Gamma: reproduce Fader, Hardie & Lee (2005) on the CDNOW sample; honest failure."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1

from include.segmentation.model.lifetime import expected_purchases, fit_lifetime, summarise_occasions


def _cdnow_calibration(path) -> pd.DataFrame:
    df = pd.read_csv(path, sep=r"\s+", header=None, names=["master", "customer_id", "d", "cds", "spend"])
    df["day"] = pd.to_datetime(df["d"].astype(str), format="%Y%m%d")
    cal = df[df["day"] < "1997-10-01"]
    return summarise_occasions(cal[["customer_id", "day", "spend"]], date(1997, 9, 30))


def test_bgnbd_reproduces_the_paper_on_cdnow(shared_data) -> None:
    summary = _cdnow_calibration(shared_data("cdnow_sample/CDNOW_sample.txt"))
    assert len(summary) == 2357 and summary["x"].sum() == 2457
    out, fit = fit_lifetime(summary)
    assert fit.params is not None and fit.notes == []
    paper = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4}
    for key, want in paper.items():
        assert fit.params[key] == pytest.approx(want, rel=0.005), key
    assert fit.params["model"] == "bg_nbd" and fit.params["time_unit"] == "week"
    assert fit.params["customers"] == 2357
    gg = fit.params["gamma_gamma"]
    assert set(gg) == {"p", "q", "gamma"} and gg["q"] > 1
    assert out.notna().all().all()
    assert ((out["p_alive"] >= 0) & (out["p_alive"] <= 1)).all()
    # one-off buyers are alive by the model's assumption (death only after a purchase)
    assert (out.loc[summary["x"] == 0, "p_alive"] == 1).all()
    assert (out["expected_purchases_90d"] >= 0).all() and (out["predicted_value_12m"] >= 0).all()


def test_too_few_repeat_buyers_leaves_outputs_empty_with_a_note() -> None:
    occ = pd.DataFrame({"customer_id": [str(i) for i in range(100)], "day": ["2024-01-05"] * 100, "spend": 10.0})
    out, fit = fit_lifetime(summarise_occasions(occ, date(2024, 6, 30)))
    assert fit.params is None
    assert fit.notes and "not fitted" in fit.notes[0]
    assert out.isna().all().all() and len(out) == 100


def test_summary_counts_distinct_days_and_measures_T_to_the_last_day() -> None:
    occ = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b"],
        "day": ["2024-01-01", "2024-01-01", "2024-01-15", "2024-01-08"],
        "spend": [5.0, 5.0, 20.0, 7.0],
    })
    s = summarise_occasions(occ, date(2024, 1, 29))
    assert s.loc["a", "x"] == 1 and s.loc["a", "t_x"] == 2 and s.loc["a", "T"] == 4
    assert s.loc["a", "monetary"] == 15.0
    assert s.loc["b", "x"] == 0 and s.loc["b", "T"] == 3
    assert np.isclose(s.loc["b", "monetary"], 7.0)


def expected_purchases_closed_form(
    params: dict[str, float], t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """The paper's closed form with scipy's 2F1: the reference for moderate b (unstable for large b)."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    z = t / (alpha + T + t)
    hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
    first = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.exp(np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
    return np.asarray(first / (1.0 + np.where(x > 0, ratio, 0.0)), dtype="float64")


CDNOW = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}  # the paper's estimates


def test_conditional_expectation_reproduces_the_papers_example() -> None:
    # Fader, Hardie & Lee (2005), section 4: x = 2, t_x = 30.43, T = 38.86 -> 1.226 purchases in 39 weeks.
    got = expected_purchases(CDNOW, 39.0, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert got[0] == pytest.approx(1.226, abs=5e-4)


def test_conditional_expectation_equals_the_closed_form_where_that_is_stable() -> None:
    rng = np.random.default_rng(3)
    T = rng.uniform(0.1, 52, 5000).round(1)
    x, t_x = rng.integers(0, 80, 5000).astype(float), T * rng.uniform(0, 1, 5000)
    for t in (4.0, 90 / 7, 365 / 7):
        np.testing.assert_allclose(
            expected_purchases(CDNOW, t, x, t_x, T), expected_purchases_closed_form(CDNOW, t, x, t_x, T), rtol=1e-7
        )


def test_conditional_expectation_stays_valid_when_almost_nobody_drops_out() -> None:
    # Parameters fitted on Online Retail at S = 2011-11-01: b ~ 7e9; the closed form gave -2,390.
    broken = {"r": 1.1, "alpha": 10.3, "a": 1.17, "b": 7.32e9}
    x, t_x, T = np.array([1.0, 0.0, 20.0]), np.array([0.3, 0.0, 40.0]), np.array([1.0, 0.5, 45.0])
    assert (expected_purchases_closed_form(broken, 4.0, x, t_x, T) < 0).any()  # the failure this guards against
    no_dropout = 4.0 * (broken["r"] + x) / (broken["alpha"] + T)
    np.testing.assert_allclose(expected_purchases(broken, 4.0, x, t_x, T), no_dropout, rtol=1e-6)
    previous = np.zeros(3)
    for b in (1e1, 1e3, 1e5, 1e7, 1e9):  # more b, less drop-out: the expectation grows towards the bound
        got = expected_purchases({**broken, "b": b}, 4.0, x, t_x, T)
        assert np.all(np.isfinite(got)) and np.all(got >= previous - 1e-12) and np.all(got <= no_dropout * (1 + 1e-9))
        previous = got
    at_one = expected_purchases({**broken, "a": 1.0}, 4.0, x, t_x, T)  # a = 1: the limit, not a division by 0
    np.testing.assert_allclose(at_one, expected_purchases({**broken, "a": 1.0 + 1e-6}, 4.0, x, t_x, T), rtol=1e-4)


def test_conditional_expectation_when_a_plus_b_is_below_one() -> None:
    # Fitted on Online Retail at S = 2011-07-01: a ~ 1e-15, b = 0.4, so a + b + x - 1 < 0 for x = 0
    # (the first factor of the series is negative); the result must still equal the closed form.
    x, t_x, T = np.array([0.0, 0.0, 1.0, 5.0]), np.array([0.0, 0.0, 3.0, 10.0]), np.array([1.0, 20.0, 8.0, 30.0])
    for params in ({"r": 0.5, "alpha": 3.0, "a": 1.1e-15, "b": 0.4}, {"r": 0.5, "alpha": 3.0, "a": 0.3, "b": 0.5}):
        got = expected_purchases(params, 4.0, x, t_x, T)
        assert np.all(np.isfinite(got)) and np.all(got >= 0)
        np.testing.assert_allclose(got, expected_purchases_closed_form(params, 4.0, x, t_x, T), rtol=1e-9)
