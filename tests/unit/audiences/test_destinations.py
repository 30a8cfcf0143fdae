"""Destination clients against local fake Meta / Google Ads servers: format, batching, retries, partial failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from include.segmentation.audiences import (
    Audience,
    AudienceConfigError,
    CredentialsError,
    DestinationError,
    Diff,
    FileDestination,
    GoogleAdsDestination,
    MetaDestination,
    RetryPolicy,
    google_ads_credentials,
    meta_credentials,
    plan_batches,
    sha256_hex,
    validate_audience,
)
from tests.fakes.google_ads import FakeGoogleAdsServer
from tests.fakes.meta_ads import FakeMetaServer

META_AUDIENCE = Audience(name="vip_meta", segments=(1,), destination="meta", audience_id="23850000000000001")
GOOGLE_AUDIENCE = Audience(name="vip_google", segments=(1,), destination="google_ads", audience_id="555")


def hashes(n: int, prefix: str = "user") -> list[str]:
    return sorted(sha256_hex(f"{prefix}{i}@example.com") for i in range(n))


class Sleeps:
    """Records the delays asked for instead of sleeping (no timed assertions)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def meta_client(server: FakeMetaServer, sleeps: Sleeps | None = None, attempts: int = 5) -> MetaDestination:
    creds = meta_credentials(server.connection())
    policy = RetryPolicy(max_attempts=attempts, backoff_base=0.01, backoff_max=30, timeout=10,
                         sleep=sleeps or Sleeps())
    return MetaDestination(META_AUDIENCE, creds, policy)


def google_client(server: FakeGoogleAdsServer, sleeps: Sleeps | None = None, **extra) -> GoogleAdsDestination:
    conn = server.connection(login_customer_id="111-222-3333", **extra)
    policy = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=30, timeout=10, sleep=sleeps or Sleeps())
    return GoogleAdsDestination(GOOGLE_AUDIENCE, google_ads_credentials(conn), policy)


# --- Meta -------------------------------------------------------------------------------------

def test_meta_batches_respect_the_10000_record_limit(meta: FakeMetaServer) -> None:
    ids = hashes(10_001)
    batches = plan_batches(Diff(adds=[("email", h) for h in ids], removes=[]), META_AUDIENCE.effective_batch_size)
    assert [len(b[2]) for b in batches] == [10_000, 1]
    client = meta_client(meta)
    for op, kind, chunk in batches:
        assert client.send(op, kind, chunk).failed == {}
    assert meta.violations == []
    assert meta.batch_sizes == [10_000, 1]
    assert meta.hashes() == set(ids)
    assert client.figures == {"num_received": 10_001, "num_invalid_entries": 0}


def test_meta_refuses_an_oversized_batch_and_config_rejects_it(meta: FakeMetaServer) -> None:
    with pytest.raises(DestinationError, match="exceeds the limit of 10,000"):
        meta_client(meta).send("add", "email", hashes(10_001))
    assert meta.requests == []
    with pytest.raises(AudienceConfigError, match="'batch_size'.*at most 10,000"):
        validate_audience(Audience(name="x", segments=(1,), destination="meta", audience_id="1", batch_size=10_001))


def test_meta_remove_uses_delete_and_phone_schema(meta: FakeMetaServer) -> None:
    ids = hashes(5, "phone")
    client = meta_client(meta)
    client.send("add", "phone", ids)
    client.send("remove", "phone", ids[:2])
    assert meta.hashes() == set(ids[2:])
    assert [r.method for r in meta.requests] == ["POST", "DELETE"]
    payload = json.loads(parse_qs(meta.requests[1].body.decode())["payload"][0])
    assert payload == {"schema": "PHONE_SHA256", "data": ids[:2]}
    assert "access_token" not in meta.requests[0].path


def test_meta_429_honours_retry_after_then_succeeds(meta: FakeMetaServer) -> None:
    sleeps = Sleeps()
    meta.script(429, times=2, retry_after="7")
    result = meta_client(meta, sleeps).send("add", "email", hashes(3))
    assert result.failed == {}
    assert sleeps.calls == [7.0, 7.0]
    assert [r.status for r in meta.requests] == [429, 429, 200]
    assert len(meta.hashes()) == 3


def test_meta_retry_after_is_capped_by_policy(meta: FakeMetaServer) -> None:
    sleeps = Sleeps()
    meta.script(429, retry_after="3600")
    meta_client(meta, sleeps).send("add", "email", hashes(1))
    assert sleeps.calls == [30.0]


def test_meta_500_backs_off_exponentially(meta: FakeMetaServer) -> None:
    sleeps = Sleeps()
    meta.script(500, times=3)
    meta_client(meta, sleeps).send("add", "email", hashes(2))
    assert sleeps.calls == pytest.approx([0.01, 0.02, 0.04])
    assert len(meta.hashes()) == 2


def test_meta_rate_limit_error_code_is_retried(meta: FakeMetaServer) -> None:
    meta.script(400, body={"error": {"message": "User request limit reached", "type": "OAuthException", "code": 17}})
    assert meta_client(meta).send("add", "email", hashes(1)).failed == {}
    assert [r.status for r in meta.requests] == [400, 200]


def test_meta_persistent_500_fails_without_leaking_the_token(meta: FakeMetaServer) -> None:
    meta.script(500, times=10, body={"error": {"message": f"echo {meta.access_token}", "code": 2}})
    with pytest.raises(DestinationError) as info:
        meta_client(meta, attempts=3).send("add", "email", hashes(1))
    assert "after 3 attempts" in str(info.value) and "HTTP 500" in str(info.value)
    assert meta.access_token not in str(info.value)
    assert len(meta.requests) == 3
    assert meta.hashes() == set()


def test_meta_bad_token_is_not_retried(meta: FakeMetaServer) -> None:
    creds = meta_credentials({**meta.connection(), "password": "wrong-token"})
    client = MetaDestination(META_AUDIENCE, creds, RetryPolicy(sleep=Sleeps()))
    with pytest.raises(DestinationError, match="190"):
        client.send("add", "email", hashes(1))
    assert len(meta.requests) == 1


def test_meta_partial_failure_names_the_rejected_hashes(meta: FakeMetaServer) -> None:
    ids = hashes(6)
    meta.reject = {ids[1], ids[4]}
    result = meta_client(meta).send("add", "email", ids)
    assert set(result.failed) == {ids[1], ids[4]}
    assert meta.hashes() == set(ids) - {ids[1], ids[4]}
    assert result.figures == {"num_received": 6, "num_invalid_entries": 2}


def test_refuses_to_send_anything_but_sha256(meta: FakeMetaServer) -> None:
    with pytest.raises(DestinationError, match="not SHA-256"):
        meta_client(meta).send("add", "email", ["jane@example.com"])
    assert meta.requests == []


# --- Google Ads -------------------------------------------------------------------------------

def test_google_job_flow_headers_and_batches(google: FakeGoogleAdsServer) -> None:
    client = google_client(google)
    adds = hashes(7)
    for op, kind, chunk in plan_batches(Diff(adds=[("email", h) for h in adds], removes=[]), 3):
        assert client.send(op, kind, chunk).failed == {}
    assert google.hashes() == set(), "operations must not apply before the job runs"
    info = client.complete("add")
    assert google.hashes() == set(adds)
    assert info["add_job"]["status"] == "SUCCESS" and info["add_job"]["match_rate_range"] == "MATCH_RANGE_51_TO_60"
    assert google.batch_sizes == [3, 3, 1]
    client.send("remove", "email", adds[:2])
    client.complete("remove")
    assert google.hashes() == set(adds[2:])
    assert google.violations == []
    paths = [r.path for r in google.requests]
    assert paths[0] == "/token"
    assert sum(p.endswith("offlineUserDataJobs:create") for p in paths) == 2
    api = [r for r in google.requests if r.path != "/token"]
    assert all(r.headers["authorization"] == f"Bearer {google.issued_token}" for r in api)
    assert all(r.headers["login-customer-id"] == "1112223333" for r in api)
    consents = [job["consent"] for job in google.jobs.values()]
    assert consents == [{"adUserData": "GRANTED", "adPersonalization": "GRANTED"}, None]


def test_google_partial_failure_maps_operation_indexes(google: FakeGoogleAdsServer) -> None:
    ids = hashes(5)
    google.reject = {ids[0], ids[3]}
    client = google_client(google)
    result = client.send("add", "phone", ids)
    assert set(result.failed) == {ids[0], ids[3]}
    assert all("INVALID_SHA256_FORMAT" in reason for reason in result.failed.values())
    client.complete("add")
    assert google.hashes() == {ids[1], ids[2], ids[4]}


def test_google_retries_429_and_503(google: FakeGoogleAdsServer) -> None:
    sleeps = Sleeps()
    google.script(429, retry_after="2", path_contains=":addOperations")
    google.script(503, path_contains=":run")
    client = google_client(google, sleeps)
    client.send("add", "email", hashes(2))
    client.complete("add")
    assert sleeps.calls == [2.0, 0.01]
    assert len(google.hashes()) == 2


def test_google_refuses_more_than_100000_identifiers_per_request(google: FakeGoogleAdsServer) -> None:
    with pytest.raises(DestinationError, match="exceeds the limit of 100,000"):
        google_client(google).send("add", "email", ["0" * 64] * 100_001)
    assert google.requests == []


def test_google_static_access_token(google: FakeGoogleAdsServer) -> None:
    google.static_token = "static-access-token"
    conn = {"password": "static-access-token",
            "extra": {"developer_token": google.developer_token, "login_customer_id": "1112223333",
                      "base_url": google.url}}
    audience = Audience(name="g", segments=(1,), destination="google_ads",
                        audience_id=f"customers/{google.customer_id}/userLists/555")
    client = GoogleAdsDestination(audience, google_ads_credentials(conn), RetryPolicy(sleep=Sleeps()))
    client.send("add", "email", hashes(1))
    client.complete("add")
    assert len(google.hashes()) == 1
    assert all(r.path != "/token" for r in google.requests)


# --- file -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("layout", "header"), [("google_ads", ["Email", "Phone"]), ("meta", ["email", "phone"])])
def test_file_layouts(tmp_path: Path, layout: str, header: list[str]) -> None:
    audience = Audience(name="f", segments=("*",), file_layout=layout)
    dest = FileDestination(audience, "run1", "2026-01-31", tmp_path)
    e, p = hashes(2), hashes(1, "phone")
    dest.send("add", "email", e)
    dest.send("add", "phone", p)
    dest.complete("add")
    dest.complete("remove")
    add_file = tmp_path / "f" / "2026-01-31_run1_add.csv"
    rows = list(csv.reader(add_file.open()))
    assert rows[0] == header
    assert rows[1:] == [[e[0], ""], [e[1], ""], ["", p[0]]]
    assert list(csv.reader((tmp_path / "f" / "2026-01-31_run1_remove.csv").open())) == [header]
    assert not list((tmp_path / "f").glob("*.tmp"))


# --- credentials ------------------------------------------------------------------------------

def test_credentials_errors_name_connection_and_field_and_hide_secrets() -> None:
    with pytest.raises(CredentialsError, match="'meta_ads'.*'password'"):
        meta_credentials({"password": None, "extra": {}})
    with pytest.raises(CredentialsError, match="'google_ads'.*developer_token"):
        google_ads_credentials({"extra": {}})
    with pytest.raises(CredentialsError, match="missing: client_secret, refresh_token"):
        google_ads_credentials({"extra": {"developer_token": "d", "client_id": "c"}})
    creds = google_ads_credentials({"extra": json.dumps({"developer_token": "dev-secret", "client_id": "c",
                                                         "client_secret": "s3cret", "refresh_token": "r3fresh"})})
    assert "dev-secret" not in repr(creds) and "s3cret" not in repr(creds) and "r3fresh" not in repr(creds)
    assert "tok-123" not in repr(meta_credentials({"password": "tok-123"}))
