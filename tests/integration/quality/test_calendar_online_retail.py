"""Issue 19 on the real Online Retail data: the shop never trades on Saturdays.

Every daily run 2011-11-30 .. 2011-12-09 (Sunday runs included, whose last day is a Saturday) must
publish with default settings; a Thursday removed from the middle of a trading week is still caught.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.segmentation.pipeline import run_pipeline
from include.segmentation.quality import DataQualityError
from include.segmentation.sources import load_online_retail
from include.segmentation.store import get_engine, ts_param

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DATA = "online_retail/online_retail.csv.gz"


def _observed(engine: sa.Engine, run_id: str, check: str) -> tuple[str, str]:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, observed FROM segmentation.quality_results "
                                   "WHERE run_id = :r AND check_name = :c"), {"r": run_id, "c": check}).first()
    assert row is not None, (run_id, check)
    return str(row[0]), str(row[1])


@pytest.mark.timeout(3600)  # eleven full runs on 500k lines
def test_online_retail_daily_runs_publish_and_a_missing_weekday_is_caught(
        pg_url: str, shared_data: Callable[[str], Path]) -> None:
    path = shared_data(DATA)
    engine = get_engine(pg_url)
    load_online_retail(engine, path)
    published: dict[date, str] = {}
    for k in range(10):
        s = date(2011, 11, 30) + timedelta(days=k)
        out = run_pipeline(engine, s)  # default parameters
        assert out["snapshot_date"] == s.isoformat()
        published[s] = out["run_id"]
    with engine.connect() as conn:
        runs = {str(r[0])[:10]: r[1] for r in conn.execute(sa.text(
            "SELECT snapshot_date, status FROM segmentation.segment_runs"))}
    assert all(runs[s.isoformat()] == "published" for s in published), runs
    sunday = date(2011, 12, 4)  # last day Saturday 2011-12-03: a closed day, expected empty
    status, observed = _observed(engine, published[sunday], "transactions.last_day_not_empty")
    assert status == "passed"
    assert observed.startswith("0 lines on Saturday 2011-12-03; Saturdays had 0 lines in each of the last 8 weeks")
    assert observed.endswith("expected: closed day")
    status, observed = _observed(engine, published[sunday], "transactions.freshness")
    assert status == "passed" and "usual gap between trading days 2 day(s)" in observed
    # a Thursday missing from the middle of a trading week: the Friday run stops at validation
    thursday = date(2011, 12, 8)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM raw.transactions WHERE ordered_at >= :a AND ordered_at < :b"),
                     {"a": ts_param(engine, thursday), "b": ts_param(engine, thursday + timedelta(days=1))})
    with pytest.raises(DataQualityError) as info:
        run_pipeline(engine, thursday + timedelta(days=1))
    assert "- transactions.last_day_not_empty [error]" in str(info.value)
    assert "0 lines on Thursday 2011-12-08; Thursdays averaged" in str(info.value)
    engine.dispose()
