"""Names depend only on the snapshot's own data: re-running S after backfilling S - 30 gives the same names.

Segment ids may follow history (they are matched with the previous published snapshot, which the
backfill changes from "none" to S - 30); every customer's segment *name*, the set of names and each
name's fidelity must not. Generated warehouse (2,000 customers), PostgreSQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from include.segmentation.pipeline import run_pipeline
from include.segmentation.store import read_sql

END = date(2024, 6, 30)
S = END + timedelta(days=1)
EARLIER = S - timedelta(days=30)
PARAMS = {"k_min": 3, "k_max": 8}

pytestmark = pytest.mark.slow  # three pipeline runs: about a minute per warehouse flavour


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def loaded(request: pytest.FixtureRequest, generated_engine: Callable[..., sa.Engine]) -> sa.Engine:
    """A warehouse of this test's own with 2,000 generated customers, on each flavour."""
    return generated_engine(request.param, customers=2000, days=400, end_date=END, seed=11)


def _snapshot(engine: sa.Engine, s: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(customer_id, segment_id, segment_name) per customer and (segment_id, name, fidelity) per segment of ``s``."""
    with engine.connect() as conn:
        customers = read_sql(conn, "SELECT customer_id, segment_id, segment_name FROM segmentation.customer_segments_history "
                                   "WHERE snapshot_date = :s ORDER BY customer_id", {"s": s})
        profiles = read_sql(conn, "SELECT segment_id, segment_name, name_fidelity, size FROM segmentation.segment_profiles "
                                  "WHERE snapshot_date = :s ORDER BY segment_name", {"s": s})
    customers["segment_id"] = customers["segment_id"].astype(int)
    profiles["segment_id"] = profiles["segment_id"].astype(int)
    return customers, profiles


# Yesterday's model is carried over (warm start, kept k, held customers) only from a snapshot at most
# CARRY_OVER_MAX_GAP_DAYS older (model/stability.py): S - 30 is not, so S is fitted afresh from its own
# data both times. The naming itself does not depend on ids
# (tests/unit/model/test_identity.py::test_names_do_not_depend_on_ids).
def test_rerunning_after_a_backfill_gives_the_same_names(loaded: sa.Engine) -> None:
    run_pipeline(loaded, S, PARAMS, validate=False)
    before, before_profiles = _snapshot(loaded, S)

    out = run_pipeline(loaded, EARLIER, PARAMS, validate=False)  # backfill an earlier date
    assert out["current"] is False
    earlier, _ = _snapshot(loaded, EARLIER)
    assert len(earlier) > 0

    rerun = run_pipeline(loaded, S, PARAMS, validate=False)  # re-run S: its previous snapshot is now S - 30
    after, after_profiles = _snapshot(loaded, S)
    with loaded.connect() as conn:
        message = conn.execute(sa.text("SELECT message FROM segmentation.segment_runs WHERE run_id = :r"),
                               {"r": rerun["run_id"]}).scalar_one()
    assert "fitted afresh: the previous snapshot (" + EARLIER.isoformat() + ") is 30 days older" in message

    assert list(after["customer_id"]) == list(before["customer_id"])
    changed = before["segment_name"] != after["segment_name"]
    assert not changed.any(), (
        f"{int(changed.sum())} customers changed name: "
        f"{before[changed].groupby(['segment_name']).size().to_dict()} -> "
        f"{after[changed].groupby(['segment_name']).size().to_dict()}"
    )
    assert set(after_profiles["segment_name"]) == set(before_profiles["segment_name"])
    assert after_profiles["segment_name"].is_unique
    pd.testing.assert_frame_equal(
        before_profiles[["segment_name", "name_fidelity", "size"]].astype(str).reset_index(drop=True),
        after_profiles[["segment_name", "name_fidelity", "size"]].astype(str).reset_index(drop=True),
    )
    # The same customers are together (ids may be renumbered): one-to-one mapping between old and new ids.
    pairs = pd.DataFrame({"old": before["segment_id"], "new": after["segment_id"]}).drop_duplicates()
    assert pairs["old"].is_unique and pairs["new"].is_unique
    renumbered = int((pairs["old"] != pairs["new"]).sum())
    print(f"\n{loaded.dialect.name}: {len(pairs)} segments, {renumbered} renumbered by the backfill; "
          f"names {sorted(after_profiles['segment_name'])}")
