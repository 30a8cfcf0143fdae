"""BG/NBD and Gamma-Gamma: reproduce Fader, Hardie & Lee (2005) on the CDNOW sample; honest failure."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from include.segmentation.model.lifetime import fit_lifetime, summarise_occasions


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
