"""Issue 12.2 end to end on SQLite: Infinity in a numeric column stops the run at validation and the
published snapshot stays as it was (PostgreSQL: ``test_quality_catalogue_e2e.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from include.segmentation.store import get_engine, ts_param
from tests.integration.quality import test_quality_catalogue_e2e as e2e

pytestmark = [pytest.mark.slow]


@pytest.fixture
def wh(generated_warehouse: Callable[..., str]) -> Iterator[sa.Engine]:
    engine = get_engine(generated_warehouse("sqlite", customers=800, days=150, end_date=e2e.LAST_DAY, seed=5,
                                            prepare=e2e._publish))
    yield engine
    engine.dispose()


def test_infinite_unit_price_on_sqlite(wh) -> None:
    line = e2e._line(wh)
    e2e._exec(wh, "UPDATE raw.transactions SET unit_price = 1e999 WHERE order_id = :o AND line_number = :n",
              o=line["order_id"], n=line["line_number"])
    e2e._assert_stopped(wh, "transactions.unit_price_finite", "transactions.unit_price", line["order_id"])


def test_infinite_dwell_seconds_on_sqlite(wh) -> None:
    e2e._exec(wh, "UPDATE raw.browsing_events SET dwell_seconds = -1e999 WHERE event_id = "
                  "(SELECT MIN(event_id) FROM raw.browsing_events WHERE occurred_at >= :a)",
              a=ts_param(wh, e2e.LAST_DAY))
    e2e._assert_stopped(wh, "browsing_events.dwell_seconds_finite", "browsing_events.dwell_seconds")
