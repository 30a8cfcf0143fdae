"""Too small to segment: rejected with a clear message, the previous snapshot stays current."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta

import pytest

from include.segmentation.errors import PermanentError, TooSmallToSegmentError
from include.segmentation.pipeline import run_pipeline
from include.segmentation.pipeline.segment import size_limits
from include.segmentation.store import get_engine, read_sql

END = date(2024, 6, 30)
S = END + timedelta(days=1)
FAST = {"k_min": 3, "k_max": 8}


def test_size_limits() -> None:
    assert size_limits(5000, 3, 10, 500, 50) == (10, None)
    k, note = size_limits(600, 3, 20, 500, 50)
    assert k == 12 and note is not None and "capped at 12" in note
    with pytest.raises(TooSmallToSegmentError, match="min_population=500"):
        size_limits(499, 3, 10, 500, 50)
    with pytest.raises(TooSmallToSegmentError, match="min_segment_size=300"):
        size_limits(600, 3, 10, 500, 300)


def test_too_small_run_is_rejected_and_previous_snapshot_stays(generated_warehouse: Callable[..., str]) -> None:
    engine = get_engine(generated_warehouse("sqlite", customers=600, days=400, end_date=END, seed=3))
    first = run_pipeline(engine, S - timedelta(days=1), FAST, validate=False)
    with pytest.raises(TooSmallToSegmentError) as err:
        run_pipeline(engine, S, {**FAST, "min_population": 100_000}, validate=False)
    assert isinstance(err.value, PermanentError) and "too small to segment" in str(err.value)
    with engine.connect() as conn:
        runs = read_sql(conn, "SELECT snapshot_date, status, message, effective_weights, lifetime_model "
                              "FROM segmentation.segment_runs ORDER BY snapshot_date")
        current = read_sql(conn, "SELECT DISTINCT snapshot_date FROM segmentation.customer_segments")
    assert runs["status"].tolist() == ["published", "rejected"]
    assert "min_population=100000" in runs["message"].iloc[1]
    assert str(current["snapshot_date"].iloc[0])[:10] == first["snapshot_date"]
    weights = json.loads(runs["effective_weights"].iloc[0])
    assert set(weights) >= {"monetary", "sessions"} and weights["monetary"] > 0
    assert json.loads(runs["lifetime_model"].iloc[0])["model"] == "bg_nbd"
