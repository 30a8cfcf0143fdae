"""The benchmark's naive reference computes the same aggregates as the pipeline's SQL, and runs end to end."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.sources import extract as ex
from include.segmentation.store import read_table

ROOT = Path(__file__).resolve().parents[3]
END = date(2024, 6, 30)
S = END + timedelta(days=1)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["sqlite", "postgres"])
def loaded(request: pytest.FixtureRequest, generated_engine: Callable[..., sa.Engine]) -> sa.Engine:
    """A warehouse of this test's own with 300 generated customers, on each flavour."""
    return generated_engine(request.param, customers=300, days=200, end_date=END, seed=5)


def test_naive_aggregates_equal_the_extract(loaded) -> None:
    naive = _load("naive")
    window = ex.Window(S, 120)
    mine = naive.aggregates_in_pandas(naive.pull_window(loaded, S, window.days))
    out = ex.extract_aggregates(loaded, window)
    with loaded.connect() as conn:
        ref = read_table(conn, *out["aggregates_table"].split("."))
    mine = mine.sort_values("customer_id").reset_index(drop=True)
    ref = ref.sort_values("customer_id").reset_index(drop=True)
    assert len(mine) == len(ref) == out["population"] > 50
    assert mine["customer_id"].tolist() == ref["customer_id"].tolist()
    for col in ref.columns.drop(["customer_id", "gender", "country"]):
        a, b = mine[col], ref[col]
        if col.endswith("_at"):
            assert pd.to_datetime(a, utc=True, format="mixed").equals(pd.to_datetime(b, utc=True, format="mixed")), col
        else:
            np.testing.assert_allclose(pd.to_numeric(a).astype(float).fillna(0), pd.to_numeric(b).astype(float).fillna(0),
                                       rtol=1e-9, err_msg=col)


def test_naive_run_end_to_end_leaves_no_table(loaded) -> None:
    naive = _load("naive")
    result = naive.run_naive(loaded, S, 120, k_min=3, k_max=4, seed=1)
    assert result["customers"] > 50 and result["k"] in (3, 4)
    assert [r["k"] for r in result["per_k"]] == [3, 4]
    assert set(result["seconds"]) == {"pull", "features", "kmeans", "silhouette", "write"}
    assert result["total_seconds"] == pytest.approx(sum(result["seconds"].values()), abs=0.05)
    with loaded.connect() as conn:
        assert not sa.inspect(conn).has_table(naive.SCRATCH_TABLE, schema="segmentation")
