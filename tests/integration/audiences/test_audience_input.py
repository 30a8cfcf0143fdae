"""Audience sync validates what it reads: ``raw.customers`` may be a bring-your-own-data view with no
primary key. A duplicated customer id with conflicting consent is not consenting (ambiguous consent
is no consent), conflicting identifiers are not sent, the customer is counted once, and the
duplicates are reported in the sync run's message and counts."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import text

from include.segmentation.audiences import (
    Audience,
    RetryPolicy,
    hash_identifier,
    meta_credentials,
    sync_audience,
    sync_history,
)
from include.segmentation.store import bulk_insert, ensure_segmentation_tables
from tests.fakes.meta_ads import FakeMetaServer

# (customer_id, email, consent): c1 is clean; c2 appears twice, consenting and not; c3 twice with
# the same consent but two e-mails; c4 twice, identical (a harmless duplicate); c5 has NULL consent.
ROWS = [
    ("c1", "one@example.com", True),
    ("c2", "two@example.com", True),
    ("c2", "two@example.com", False),
    ("c3", "three@example.com", True),
    ("c3", "other3@example.com", True),
    ("c4", "four@example.com", True),
    ("c4", "four@example.com", True),
    ("c5", "five@example.com", None),
]


def _h(email: str) -> str:
    h = hash_identifier("email", email, "US", "meta")
    assert h is not None
    return h


def _load(engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE raw.customers")  # as a view would: no primary key, nullable consent
        conn.exec_driver_sql(
            "CREATE TABLE raw.customers (customer_id TEXT, created_at TIMESTAMP, birth_year INTEGER, gender TEXT, "
            "country TEXT, city TEXT, email TEXT, phone TEXT, marketing_consent BOOLEAN)"
        )
        for cid, email, consent in ROWS:
            conn.execute(
                text("INSERT INTO raw.customers (customer_id, country, email, marketing_consent) VALUES (:c, 'US', :e, :m)"),
                {"c": cid, "e": email, "m": consent},
            )
    ensure_segmentation_tables(engine)
    frame = pd.DataFrame(
        [
            {"customer_id": cid, "snapshot_date": date(2026, 1, 31), "segment_id": 0, "segment_name": "Champions",
             "distance": 1.0, "confidence": 0.9, "is_outlier": False, "run_id": "run-1"}
            for cid in ("c1", "c2", "c3", "c4", "c5")
        ]
    )
    with engine.begin() as conn:
        bulk_insert(conn, "segmentation", "customer_segments", frame)
        bulk_insert(conn, "segmentation", "customer_segments_history", frame)


@pytest.mark.parametrize("warehouse_url", ["sqlite", "postgres"], indirect=True)
def test_duplicate_customers_with_conflicting_consent_are_not_synced(engine, meta: FakeMetaServer) -> None:
    _load(engine)
    audience = Audience(name="champions_meta", segments=("Champions",), destination="meta",
                        audience_id="23850000000000001", identifiers=("email",))
    policy = RetryPolicy(max_attempts=2, backoff_base=0.001, backoff_max=0.01, timeout=10, sleep=lambda s: None)
    summary = sync_audience(engine, audience, credentials=meta_credentials(meta.connection()), policy=policy)

    assert meta.hashes() == {_h("one@example.com"), _h("four@example.com")}
    assert summary["in_segments"] == 5  # each customer once, duplicates or not
    assert summary["eligible"] == 2 and summary["identifiers"] == 2 and summary["added"] == 2
    assert summary["no_consent"] == 2  # c2 (conflicting consent) and c5 (NULL consent)
    assert summary["duplicate_customers"] == 3
    assert summary["ambiguous_consent"] == 1 and summary["ambiguous_identifiers"] == 1
    (row,) = sync_history(engine, audience.name)
    assert row["in_segments"] == 5 and row["no_consent"] == 2 and row["added"] == 2
    assert "3 customer id(s) appear more than once" in row["message"]
    assert "treated as not consenting" in row["message"]
