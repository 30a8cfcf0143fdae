"""Audience sync end to end on PostgreSQL and SQLite, against local fake Meta / Google Ads servers.

Covers consent filtering, diffs across two snapshots, add-only and full re-send, partial failures
carried to the next run, interrupted runs re-run safely, history rows, and that no clear-text
identifier reaches a log line, stdout/stderr, a written file or a warehouse table.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from include.segmentation.audiences import (
    Audience,
    AudienceSyncError,
    NothingPublished,
    RetryPolicy,
    google_ads_credentials,
    hash_identifier,
    meta_credentials,
    sync_audience,
    sync_history,
)
from include.segmentation.store import bulk_insert, ensure_segmentation_tables
from tests.fakes.google_ads import FakeGoogleAdsServer
from tests.fakes.meta_ads import FakeMetaServer

SEGMENTS = {0: "Champions", 1: "At risk", 2: "New"}

# customer_id: (email, phone, country, consent)
CUSTOMERS: dict[str, tuple[str | None, str | None, str | None, bool]] = {
    "c01": ("Alice.Smith@Example.com", "+1 650 555 0101", "US", True),
    "c02": ("bob.jones@gmail.com", "(650) 555-0102", "US", True),
    "c03": ("carol.x+ads@gmail.com", "020 7946 0001", "GB", True),
    "c04": ("dave.nomarketing@example.com", "0151 2345678", "DE", False),
    "c05": ("not-an-email", "12", "US", True),
    "c06": ("erin@example.org", "0170 1234567", "DE", True),
    "c07": ("frank@example.fr", None, "FR", True),
    "c08": (None, "06 1234 5678", "IT", True),
}
SNAPSHOT_1 = {"c01": 0, "c02": 0, "c03": 1, "c04": 0, "c05": 0, "c06": 1, "c07": 2, "c08": 0}
# c02 leaves for "New", c07 joins "Champions", c09 is a new customer in "At risk".
SNAPSHOT_2 = {"c01": 0, "c02": 2, "c03": 1, "c04": 0, "c05": 0, "c06": 1, "c07": 0, "c08": 0, "c09": 1}
C09 = ("gina@example.com", "+44 7700 900123", "GB", True)


class Crash(BaseException):
    """Stands for the process dying (worker killed): not an Exception, nothing catches it."""


def sleeps_recorder() -> RetryPolicy:
    return RetryPolicy(max_attempts=4, backoff_base=0.001, backoff_max=0.01, timeout=10, sleep=lambda s: None)


def load_customers(engine, customers: dict[str, tuple]) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM raw.customers"))
        rows = [
            {"customer_id": cid, "created_at": pd.Timestamp("2024-01-01", tz="UTC"), "country": c[2],
             "email": c[0], "phone": c[1], "marketing_consent": c[3]}
            for cid, c in customers.items()
        ]
        bulk_insert(conn, "raw", "customers", pd.DataFrame(rows))


def publish(engine, snapshot: date, assignment: dict[str, int], outliers: frozenset[str] = frozenset()) -> None:
    ensure_segmentation_tables(engine)
    frame = pd.DataFrame(
        [
            {"customer_id": cid, "snapshot_date": snapshot, "segment_id": seg, "segment_name": SEGMENTS[seg],
             "distance": 1.0, "confidence": 0.9, "is_outlier": cid in outliers, "run_id": f"run-{snapshot}"}
            for cid, seg in assignment.items()
        ]
    )
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM segmentation.customer_segments"))
        bulk_insert(conn, "segmentation", "customer_segments", frame)
        bulk_insert(conn, "segmentation", "customer_segments_history", frame)


def expected_hashes(customers: dict[str, tuple], assignment: dict[str, int], segments: set[int],
                    platform: str, kinds: tuple[str, ...] = ("email", "phone")) -> set[str]:
    """What the audience should hold, derived from the fixture data (consent + valid identifiers)."""
    out = set()
    for cid, seg in assignment.items():
        email, phone, country, consent = customers[cid]
        if seg not in segments or not consent:
            continue
        for kind, raw in (("email", email), ("phone", phone)):
            if kind in kinds and raw:
                h = hash_identifier(kind, raw, country, platform)
                if h:
                    out.add(h)
    return out


def meta_setup(meta: FakeMetaServer, **overrides):
    audience = Audience(name="champions_meta", segments=("Champions", 1), destination="meta",
                        audience_id="23850000000000001", **overrides)
    creds = meta_credentials(meta.connection())
    return audience, creds


def google_setup(google: FakeGoogleAdsServer, **overrides):
    audience = Audience(name="champions_google", segments=(0, "At risk"), destination="google_ads",
                        audience_id="555", **overrides)
    creds = google_ads_credentials(google.connection())
    return audience, creds


def run_rows(engine, audience: str) -> list[dict]:
    return list(reversed(sync_history(engine, audience)))


def test_consent_filtering_counts_and_history(engine, meta: FakeMetaServer) -> None:
    load_customers(engine, CUSTOMERS)
    publish(engine, date(2026, 1, 31), SNAPSHOT_1)
    audience, creds = meta_setup(meta)
    summary = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder(), trigger="manual__1")

    expected = expected_hashes(CUSTOMERS, SNAPSHOT_1, {0, 1}, "meta")
    assert meta.hashes() == expected
    assert meta.violations == []
    no_consent = {hash_identifier("email", CUSTOMERS["c04"][0], "DE", "meta"),
                  hash_identifier("phone", CUSTOMERS["c04"][1], "DE", "meta")}
    assert not no_consent & meta.hashes()
    # c01, c02, c03, c04, c05, c06, c08 are in the two segments; c04 has no consent; c05 has only
    # invalid identifiers; c08 has no e-mail.
    assert summary["in_segments"] == 7 and summary["no_consent"] == 1 and summary["eligible"] == 5
    assert summary["invalid_by_kind"] == {"email": 1, "phone": 1} and summary["invalid"] == 2
    assert summary["identifiers"] == len(expected) == summary["added"]
    assert summary["status"] == "success" and summary["removed"] == 0

    (row,) = run_rows(engine, audience.name)
    assert row["status"] == "success" and row["destination"] == "meta" and row["trigger"] == "manual__1"
    assert str(row["snapshot_date"])[:10] == "2026-01-31"
    assert row["eligible"] == 5 and row["invalid"] == 2 and row["added"] == len(expected) and row["failed"] == 0
    assert row["started_at"] is not None and row["finished_at"] is not None
    assert json.loads(row["match_figures"])["num_received"] == len(expected)

    # A second run with nothing changed sends nothing.
    again = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    assert again["added"] == again["removed"] == 0 and again["to_add"] == again["to_remove"] == 0
    assert max(meta.add_counts.values()) == 1


def test_mirror_diff_across_two_snapshots(engine, meta: FakeMetaServer) -> None:
    load_customers(engine, CUSTOMERS)
    publish(engine, date(2026, 1, 31), SNAPSHOT_1)
    audience, creds = meta_setup(meta)
    sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    first = meta.hashes()

    customers = dict(CUSTOMERS)
    customers["c01"] = ("alice.new@example.com", CUSTOMERS["c01"][1], "US", True)  # e-mail changed
    customers["c06"] = CUSTOMERS["c06"][:3] + (False,)  # consent withdrawn
    customers["c09"] = C09
    load_customers(engine, customers)
    publish(engine, date(2026, 2, 28), SNAPSHOT_2)
    summary = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())

    second = expected_hashes(customers, SNAPSHOT_2, {0, 1}, "meta")
    assert meta.hashes() == second
    assert summary["added"] == len(second - first) and summary["removed"] == len(first - second)
    assert summary["added"] == 4  # c01 new e-mail, c07 e-mail, c09 e-mail + phone
    assert summary["removed"] == 5  # c01 old e-mail, c02 e-mail + phone, c06 e-mail + phone
    assert all(n == 1 for n in meta.add_counts.values()), "unchanged members are not sent again"
    with engine.connect() as conn:
        state = {r[0] for r in conn.execute(text(
            "SELECT hashed_id FROM segmentation.audience_members WHERE audience = 'champions_meta'"))}
    assert state == second


def test_add_only_keeps_leavers_but_removes_withdrawn_consent(engine, meta: FakeMetaServer) -> None:
    load_customers(engine, CUSTOMERS)
    publish(engine, date(2026, 1, 31), SNAPSHOT_1)
    audience, creds = meta_setup(meta, mode="add_only")
    sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    first = meta.hashes()

    customers = dict(CUSTOMERS, c09=C09)
    customers["c06"] = CUSTOMERS["c06"][:3] + (False,)
    load_customers(engine, customers)
    publish(engine, date(2026, 2, 28), SNAPSHOT_2)
    summary = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())

    withdrawn = {hash_identifier("email", CUSTOMERS["c06"][0], "DE", "meta"),
                 hash_identifier("phone", CUSTOMERS["c06"][1], "DE", "meta")}
    leaver = {hash_identifier("email", CUSTOMERS["c02"][0], "US", "meta")}
    assert leaver <= meta.hashes(), "add-only keeps customers who left the segments"
    assert not withdrawn & meta.hashes(), "consent withdrawal always removes"
    assert meta.hashes() == (first | expected_hashes(customers, SNAPSHOT_2, {0, 1}, "meta")) - withdrawn
    assert summary["removed"] == 2


def test_full_resend_sends_every_member_again(engine, meta: FakeMetaServer) -> None:
    load_customers(engine, CUSTOMERS)
    publish(engine, date(2026, 1, 31), SNAPSHOT_1)
    audience, creds = meta_setup(meta)
    sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    summary = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder(), full_resend=True)
    expected = expected_hashes(CUSTOMERS, SNAPSHOT_1, {0, 1}, "meta")
    assert summary["added"] == len(expected)
    assert all(meta.add_counts[k] == 2 for k in meta.add_counts)
    assert meta.hashes() == expected


def test_partial_failure_is_retried_by_the_next_run(engine, meta: FakeMetaServer) -> None:
    load_customers(engine, CUSTOMERS)
    publish(engine, date(2026, 1, 31), SNAPSHOT_1)
    audience, creds = meta_setup(meta)
    bad = hash_identifier("email", CUSTOMERS["c03"][0], "GB", "meta")
    meta.reject = {bad}
    first = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    assert first["status"] == "partial" and first["failed"] == 1
    assert bad not in meta.hashes()
    with engine.connect() as conn:
        q = conn.execute(text(
            "SELECT status, error FROM segmentation.audience_sync_queue WHERE hashed_id = :h"), {"h": bad}).one()
    assert q[0] == "failed" and "rejected" in q[1]

    meta.reject = set()
    second = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    assert second["status"] == "success" and second["added"] == 1 and second["retried"] == 1
    assert meta.hashes() == expected_hashes(CUSTOMERS, SNAPSHOT_1, {0, 1}, "meta")
    assert all(n == 1 for n in meta.add_counts.values())
    assert [r["status"] for r in run_rows(engine, audience.name)] == ["partial", "success"]


def test_interrupted_run_is_rerun_without_duplicates_or_lost_removals(engine, meta: FakeMetaServer) -> None:
    load_customers(engine, CUSTOMERS)
    publish(engine, date(2026, 1, 31), SNAPSHOT_1)
    audience, creds = meta_setup(meta, batch_size=2)
    sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    first = meta.hashes()

    customers = dict(CUSTOMERS, c09=C09)
    load_customers(engine, customers)
    publish(engine, date(2026, 2, 28), SNAPSHOT_2)

    def die_after_first_batch(batch_no: int, op: str) -> None:
        raise Crash

    with pytest.raises(Crash):
        sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder(), after_batch=die_after_first_batch)
    assert meta.hashes() != expected_hashes(customers, SNAPSHOT_2, {0, 1}, "meta"), "the run stopped half-way"
    with engine.connect() as conn:
        confirmed = conn.execute(text(
            "SELECT COUNT(*) FROM segmentation.audience_sync_queue WHERE status = 'sent'")).scalar()
        pending = conn.execute(text(
            "SELECT COUNT(*) FROM segmentation.audience_sync_queue WHERE status = 'pending'")).scalar()
    assert confirmed >= 1 and pending >= 1

    summary = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    second = expected_hashes(customers, SNAPSHOT_2, {0, 1}, "meta")
    assert meta.hashes() == second
    assert summary["retried"] == pending == len(first ^ second) - confirmed, "exactly the unconfirmed rows resume"
    assert all(n == 1 for n in meta.add_counts.values()), "nothing added twice"
    assert all(n == 1 for n in meta.remove_counts.values()), "nothing removed twice"
    assert {h for _, h in meta.remove_counts} == first - second, "no removal lost"
    assert [r["status"] for r in run_rows(engine, audience.name)] == ["success", "interrupted", "success"]


def test_google_job_interrupted_before_run_is_redone(engine, google: FakeGoogleAdsServer) -> None:
    load_customers(engine, CUSTOMERS)
    publish(engine, date(2026, 1, 31), SNAPSHOT_1)
    audience, creds = google_setup(google)

    def die_before_job_runs(batch_no: int, op: str) -> None:
        if op == "add":
            raise Crash

    with pytest.raises(Crash):
        sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder(), after_batch=die_before_job_runs)
    assert google.hashes() == set()
    with engine.connect() as conn:
        staged = conn.execute(text(
            "SELECT COUNT(*) FROM segmentation.audience_sync_queue WHERE status = 'staged'")).scalar()
        members = conn.execute(text("SELECT COUNT(*) FROM segmentation.audience_members")).scalar()
    assert staged > 0 and members == 0, "staged operations are not state until the job has run"

    google.reject = {hash_identifier("phone", CUSTOMERS["c08"][1], "IT", "google_ads")}
    summary = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    expected = expected_hashes(CUSTOMERS, SNAPSHOT_1, {0, 1}, "google_ads")
    assert google.hashes() == expected - google.reject
    assert summary["failed"] == 1 and summary["status"] == "partial"
    assert all(n == 1 for n in google.add_counts.values())
    assert [j["status"] for j in google.jobs.values()] == ["PENDING", "SUCCESS"]
    assert google.violations == []
    figures = json.loads(run_rows(engine, audience.name)[-1]["match_figures"])
    assert figures["jobs"]["add"]["match_rate_range"] == "MATCH_RANGE_51_TO_60"

    google.reject = set()
    publish(engine, date(2026, 2, 28), SNAPSHOT_2)
    load_customers(engine, dict(CUSTOMERS, c09=C09))
    sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    assert google.hashes() == expected_hashes(dict(CUSTOMERS, c09=C09), SNAPSHOT_2, {0, 1}, "google_ads")


def test_dry_run_and_mass_removal_guard(engine, meta: FakeMetaServer) -> None:
    many = {f"m{i:02d}": (f"member{i}@example.com", None, "US", True) for i in range(30)}
    customers = dict(CUSTOMERS, **many)
    load_customers(engine, customers)
    first = dict(SNAPSHOT_1, **dict.fromkeys(many, 0))
    publish(engine, date(2026, 1, 31), first)
    audience, creds = meta_setup(meta)
    dry = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder(), dry_run=True)
    assert dry["status"] == "dry_run" and dry["to_add"] == 39 and meta.requests == []
    sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())

    publish(engine, date(2026, 2, 28), {"c07": 0})  # nearly everyone left: a suspicious snapshot
    dry = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder(), dry_run=True)
    assert dry["to_remove"] == 39 and "max_removal_fraction" in run_rows(engine, audience.name)[-1]["message"]
    with pytest.raises(AudienceSyncError, match="would remove 39 of 39.*max_removal_fraction"):
        sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    assert run_rows(engine, audience.name)[-1]["status"] == "failed"
    assert len(meta.hashes()) == 39
    summary = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder(), allow_mass_removal=True)
    assert meta.hashes() == expected_hashes(customers, {"c07": 0}, {0, 1}, "meta")
    assert summary["removed"] == 39


def test_errors_name_table_column_and_rule(engine, meta: FakeMetaServer) -> None:
    audience, creds = meta_setup(meta)
    with pytest.raises(NothingPublished, match="segmentation.customer_segments"):
        sync_audience(engine, audience, credentials=creds)
    load_customers(engine, CUSTOMERS)
    publish(engine, date(2026, 1, 31), SNAPSHOT_1)
    wrong = Audience(name="typo", segments=("Champs", 7), destination="meta", audience_id="23850000000000001")
    with pytest.raises(AudienceSyncError, match="segment_id or segment_name.*'Champions'"):
        sync_audience(engine, wrong, credentials=creds)
    assert meta.requests == []
    assert [r["status"] for r in run_rows(engine, "typo")] == ["failed"]


def test_persistent_platform_outage_fails_the_run_and_the_rerun_completes(engine, meta: FakeMetaServer) -> None:
    load_customers(engine, CUSTOMERS)
    publish(engine, date(2026, 1, 31), SNAPSHOT_1)
    audience, creds = meta_setup(meta)
    meta.script(503, times=100)
    with pytest.raises(Exception, match="after 4 attempts"):
        sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    row = run_rows(engine, audience.name)[-1]
    assert row["status"] == "failed" and "HTTP 503" in row["message"] and meta.access_token not in row["message"]
    meta._script.clear()
    summary = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    assert meta.hashes() == expected_hashes(CUSTOMERS, SNAPSHOT_1, {0, 1}, "meta")
    assert summary["retried"] == summary["added"]


def _clear_texts(customers: dict[str, tuple]) -> set[str]:
    """Every clear-text form of every identifier: raw, trimmed, lower-cased, normalised per platform."""
    from include.segmentation.audiences import normalize_email, normalize_phone

    out: set[str] = set()
    for email, phone, country, _ in customers.values():
        if email:
            out |= {email.strip().lower(), email.split("@")[0].lower()}
            out |= {v for v in (normalize_email(email, "meta"), normalize_email(email, "google_ads")) if v}
        if phone:
            out.add(phone.strip())
            for p in ("meta", "google_ads"):
                v = normalize_phone(phone, country, p)
                if v:
                    out.add(v)
    return {s for s in out if len(s) >= 5}


def test_no_clear_text_identifier_in_logs_files_tables_or_results(
    engine, meta: FakeMetaServer, google: FakeGoogleAdsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    customers = dict(CUSTOMERS, c09=C09)
    load_customers(engine, customers)
    folder = tmp_path / "audiences"
    results = []
    meta_aud, meta_creds = meta_setup(meta)
    google_aud, google_creds = google_setup(google)
    file_meta = Audience(name="file_meta", segments=("*",), destination="file", file_layout="meta")
    file_google = Audience(name="file_google", segments=("*",), destination="file", file_layout="google_ads")
    meta.reject = {hash_identifier("email", CUSTOMERS["c01"][0], "US", "meta")}
    meta.script(429, retry_after="0")
    for snapshot, assignment in ((date(2026, 1, 31), SNAPSHOT_1), (date(2026, 2, 28), SNAPSHOT_2)):
        publish(engine, snapshot, assignment)
        results.append(sync_audience(engine, meta_aud, credentials=meta_creds, policy=sleeps_recorder()))
        results.append(sync_audience(engine, google_aud, credentials=google_creds, policy=sleeps_recorder()))
        for aud in (file_meta, file_google):
            results.append(sync_audience(engine, aud, folder=folder, policy=sleeps_recorder()))

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert len(files) == 8, "add and remove file per run of each file audience"
    add_rows = (folder / "file_google").glob("2026-01-31_*_add.csv")
    (first_add,) = list(add_rows)
    header, *rows = first_add.read_text().splitlines()
    assert header == "Email,Phone" and rows
    expected = expected_hashes(customers, SNAPSHOT_1, {0, 1, 2}, "google_ads")
    assert {c for r in rows for c in r.split(",") if c} == expected

    captured = capsys.readouterr()
    with engine.connect() as conn:
        tables = [
            json.dumps([list(map(str, r)) for r in conn.execute(text(f"SELECT * FROM segmentation.{t}"))])
            for t in ("audience_members", "audience_sync_queue", "audience_sync_runs")
        ]
    haystacks = {
        "log": "\n".join(r.getMessage() for r in caplog.records),
        "stdout": captured.out,
        "stderr": captured.err,
        "results": json.dumps(results, default=str),
        "tables": "\n".join(tables),
        **{str(p): p.read_text() for p in files},
    }
    assert any("champions_meta" in r.getMessage() for r in caplog.records), "the sync does log"
    assert any("retrying" in r.getMessage() for r in caplog.records), "the 429 retry was logged"
    for secret in _clear_texts(customers):
        for where, hay in haystacks.items():
            assert secret.lower() not in hay.lower(), f"clear-text identifier found in {where}"
    for token in (meta.access_token, google.oauth["refresh_token"], google.oauth["client_secret"],
                  google.issued_token, google.developer_token):
        for where, hay in haystacks.items():
            assert token not in hay, f"secret found in {where}"


def test_outliers_can_be_left_out(engine, meta: FakeMetaServer) -> None:
    load_customers(engine, CUSTOMERS)
    publish(engine, date(2026, 1, 31), SNAPSHOT_1, outliers=frozenset({"c01"}))
    audience, creds = meta_setup(meta, include_outliers=False)
    sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    without_c01 = {k: v for k, v in SNAPSHOT_1.items() if k != "c01"}
    assert meta.hashes() == expected_hashes(CUSTOMERS, without_c01, {0, 1}, "meta")


@pytest.mark.parametrize("segments", [(0, 1), ("Champions", "At risk")], ids=["ids_only", "names_only"])
def test_segments_by_id_only_or_name_only(engine, meta: FakeMetaServer, segments: tuple) -> None:
    load_customers(engine, CUSTOMERS)
    publish(engine, date(2026, 1, 31), SNAPSHOT_1)
    _, creds = meta_setup(meta)
    audience = Audience(name="by_one_kind", segments=segments, destination="meta", audience_id="23850000000000001")
    summary = sync_audience(engine, audience, credentials=creds, policy=sleeps_recorder())
    assert meta.hashes() == expected_hashes(CUSTOMERS, SNAPSHOT_1, {0, 1}, "meta")
    assert summary["in_segments"] == 7
