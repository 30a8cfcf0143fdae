"""Feature and output suites: results stored in the warehouse, Data Docs written, bad frames refused."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from include.segmentation.quality import (
    DataQualityError,
    data_docs_dir,
    validate_features,
    validate_output,
)
from include.segmentation.store import read_sql

S = date(2024, 7, 1)


def _features(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ids = pd.Index([f"C{i:04d}" for i in range(n)], name="customer_id")
    return pd.DataFrame({"recency_days": rng.uniform(0, 90, n), "frequency": rng.integers(0, 9, n).astype(float),
                         "monetary": rng.normal(100, 50, n)}, index=ids)


def _stored(engine, run_id: str, suite: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_sql(conn, "SELECT * FROM segmentation.quality_results WHERE run_id = :r AND suite = :s",
                        {"r": run_id, "s": suite})


def test_good_features_pass_and_are_recorded(engine) -> None:
    results = validate_features(engine, _features(), S, "feat_ok")
    assert all(r.status == "passed" for r in results)
    assert {r.check for r in results} == {"features.not_empty", "features.customer_id_unique", "features.finite.recency_days",
                                          "features.finite.frequency", "features.finite.monetary"}
    assert len(_stored(engine, "feat_ok", "features")) == len(results)
    assert (data_docs_dir(S, "feat_ok", "features") / "index.html").exists()


@pytest.mark.parametrize(
    ("corrupt", "check", "observed"),
    [
        ("nan", "features.finite.monetary", "1 NaN and 0 infinite of 50"),
        ("inf", "features.finite.frequency", "0 NaN and 1 infinite of 50"),
        ("dup", "features.customer_id_unique", "2 rows share a customer_id"),
    ],
)
def test_bad_features_are_refused_with_the_customer_named(engine, corrupt: str, check: str, observed: str) -> None:
    f = _features()
    if corrupt == "nan":
        f.iloc[7, f.columns.get_loc("monetary")] = np.nan
    elif corrupt == "inf":
        f.iloc[7, f.columns.get_loc("frequency")] = np.inf
    else:
        f.index = pd.Index([*f.index[:-1], f.index[7]], name="customer_id")
    with pytest.raises(DataQualityError) as info:
        validate_features(engine, f, S, f"feat_{corrupt}")
    line = next(x for x in str(info.value).splitlines() if x.startswith(f"- {check} "))
    assert observed in line and '"customer_id": "C0007"' in line
    stored = _stored(engine, f"feat_{corrupt}", "features")
    assert stored.set_index("check_name").loc[check, "status"] == "failed"


def test_empty_features_are_refused(engine) -> None:
    with pytest.raises(DataQualityError, match="features.not_empty"):
        validate_features(engine, _features().iloc[:0], S, "feat_empty")


def _assignments(ids: list[str], segments: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"segment_id": segments}, index=pd.Index(ids, name="customer_id"))


def test_good_output_passes(engine) -> None:
    ids = [f"C{i}" for i in range(10)]
    results = validate_output(engine, _assignments(ids, [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]), pd.Index(ids), S, "out_ok")
    assert all(r.status == "passed" for r in results) and len(results) == 3
    assert len(_stored(engine, "out_ok", "output")) == 3


@pytest.mark.parametrize(
    ("ids", "segments", "population", "check", "fragment"),
    [
        (["C0", "C1", "C2"], [1, 1, 2], ["C0", "C1", "C2", "C3"], "output.one_segment_per_customer",
         '"customer_id": "C3"'),
        (["C0", "C1", "C0"], [1, 2, 2], ["C0", "C1"], "output.one_segment_per_customer", "1 with several"),
        (["C0", "C1", "C9"], [1, 1, 2], ["C0", "C1"], "output.no_unknown_customers", '"customer_id": "C9"'),
        (["C0", "C1", "C2"], [1, None, 2], ["C0", "C1", "C2"], "output.segment_id_not_null", "1 assignment(s)"),
    ],
)
def test_bad_output_is_refused(engine, ids, segments, population, check, fragment) -> None:
    with pytest.raises(DataQualityError) as info:
        validate_output(engine, _assignments(ids, segments), pd.Index(population), S, "out_bad")
    line = next(x for x in str(info.value).splitlines() if x.startswith(f"- {check} "))
    assert fragment in line
