"""Fake Google Ads API (REST): OAuth token refresh and OfflineUserDataJobService for Customer Match.

Checked against the documentation: headers ``Authorization: Bearer``, ``developer-token``,
``login-customer-id`` (digits); ``customers/{id}/offlineUserDataJobs:create`` with
``job.type = CUSTOMER_MATCH_USER_LIST`` and ``customerMatchUserListMetadata.userList``;
``{job}:addOperations`` with ``operations`` of exactly one of ``create``/``remove`` holding
``userIdentifiers`` (1..20, each exactly one of ``hashedEmail``/``hashedPhoneNumber``, SHA-256
lower-case hex), at most 100,000 identifiers a request; ``{job}:run``; ``googleAds:search``.
Operations only take effect when the job runs, as on the platform.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.http_fake import SHA256_HEX, FakeAudienceServer

MAX_IDENTIFIERS_PER_REQUEST = 100_000
MAX_IDENTIFIERS_PER_OPERATION = 20
_CREATE = re.compile(r"^/(v\d+)/customers/(\d+)/offlineUserDataJobs:create$")
_JOB_OP = re.compile(r"^/(v\d+)/(customers/(\d+)/offlineUserDataJobs/(\d+)):(addOperations|run)$")
_SEARCH = re.compile(r"^/(v\d+)/customers/(\d+)/googleAds:search$")
_FIELDS = {"hashedEmail": "email", "hashedPhoneNumber": "phone"}


class FakeGoogleAdsServer(FakeAudienceServer):
    """Keeps user list members; applies operations when a job runs; can reject chosen hashes."""

    def __init__(self, *, developer_token: str = "dev-token-test", login_customer_id: str | None = "1112223333",
                 customer_id: str = "1234567890", user_list_ids: Iterable[str] = ("555",),
                 api_version: str = "v26", client_id: str = "cid.apps.test", client_secret: str = "client-secret-test",
                 refresh_token: str = "refresh-token-test") -> None:
        super().__init__()
        self.developer_token = developer_token
        self.login_customer_id = login_customer_id
        self.customer_id = customer_id
        self.api_version = api_version
        self.oauth = {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token}
        self.issued_token = "ya29.fake-access-token"
        self.static_token: str | None = None
        self.lists: dict[str, set[tuple[str, str]]] = {
            f"customers/{customer_id}/userLists/{i}": set() for i in user_list_ids
        }
        self.jobs: dict[str, dict] = {}
        self.max_identifiers = MAX_IDENTIFIERS_PER_REQUEST

    # -- helpers -----------------------------------------------------------------------------
    def _auth_ok(self, headers: Mapping[str, str]):
        tokens = {self.issued_token} | ({self.static_token} if self.static_token else set())
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in tokens:
            return 401, {}, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad credentials"}}
        if headers.get("developer-token") != self.developer_token:
            return 401, {}, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad developer token"}}
        if self.login_customer_id is not None:
            lci = headers.get("login-customer-id", "")
            if lci != self.login_customer_id:
                return self.violation(f"login-customer-id header {lci!r} (expected {self.login_customer_id})")
        if not headers.get("content-type", "").startswith("application/json"):
            return self.violation("body must be JSON")
        return None

    def route(self, method: str, path: str, headers: Mapping[str, str], body: bytes):
        if method != "POST":
            return self.violation(f"method {method} not allowed")
        if path == "/token":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            if form.get("grant_type") != "refresh_token" or any(form.get(k) != v for k, v in self.oauth.items()):
                return 400, {}, {"error": "invalid_grant"}
            return 200, {}, {"access_token": self.issued_token, "expires_in": 3599, "token_type": "Bearer"}
        denied = self._auth_ok(headers)
        if denied:
            return denied
        try:
            data = json.loads(body or b"{}")
        except json.JSONDecodeError:
            return self.violation("body is not JSON")
        if m := _CREATE.match(path):
            return self._create(m.group(1), m.group(2), data)
        if m := _JOB_OP.match(path):
            version, job, cid, _, verb = m.groups()
            if version != self.api_version:
                return self.violation(f"api version {version}")
            if job not in self.jobs:
                return 404, {}, {"error": {"code": 404, "status": "NOT_FOUND", "message": "job not found"}}
            return self._add(job, data) if verb == "addOperations" else self._run(job)
        if m := _SEARCH.match(path):
            q = str(data.get("query", ""))
            found = re.search(r"resource_name = '(customers/\d+/offlineUserDataJobs/\d+)'", q)
            if not found or found.group(1) not in self.jobs:
                return self.violation("search query does not name a known job")
            job = self.jobs[found.group(1)]
            return 200, {}, {"results": [{"offlineUserDataJob": {
                "resourceName": found.group(1), "status": job["status"],
                "operationMetadata": {"matchRateRange": "MATCH_RANGE_51_TO_60"} if job["status"] == "SUCCESS" else {},
            }}]}
        return self.violation(f"unknown endpoint {path}")

    def _create(self, version: str, cid: str, data: Mapping) -> tuple:
        if version != self.api_version:
            return self.violation(f"api version {version}")
        if cid != self.customer_id:
            return self.violation(f"customer id {cid}")
        job = data.get("job") or {}
        if job.get("type") != "CUSTOMER_MATCH_USER_LIST":
            return self.violation(f"job type {job.get('type')!r}")
        meta = job.get("customerMatchUserListMetadata") or {}
        user_list = meta.get("userList")
        if user_list not in self.lists:
            return self.violation(f"userList {user_list!r} unknown")
        consent = meta.get("consent")
        if consent is not None and set(consent.values()) - {"GRANTED"}:
            return 400, {}, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                       "message": "CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS"}}
        with self.lock:
            name = f"customers/{cid}/offlineUserDataJobs/{9000 + len(self.jobs)}"
            self.jobs[name] = {"status": "PENDING", "user_list": user_list, "ops": [], "consent": consent}
        return 200, {}, {"resourceName": name}

    def _add(self, job_name: str, data: Mapping) -> tuple:
        job = self.jobs[job_name]
        if job["status"] != "PENDING":
            return 400, {}, {"error": {"code": 400, "status": "FAILED_PRECONDITION", "message": "job not pending"}}
        if data.get("enablePartialFailure") is not True:
            return self.violation("enablePartialFailure must be true for partial failure reporting")
        ops = data.get("operations")
        if not isinstance(ops, list) or not ops:
            return self.violation("operations must be a non-empty list")
        parsed: list[tuple[str, str, str]] = []
        total = 0
        for i, op in enumerate(ops):
            kinds = [k for k in ("create", "remove", "removeAll") if k in op]
            if len(kinds) != 1 or kinds[0] == "removeAll":
                return self.violation(f"operation {i}: exactly one of create/remove")
            ids = (op[kinds[0]] or {}).get("userIdentifiers") or []
            if not 1 <= len(ids) <= MAX_IDENTIFIERS_PER_OPERATION:
                return self.violation(f"operation {i}: 1..{MAX_IDENTIFIERS_PER_OPERATION} userIdentifiers")
            for ident in ids:
                keys = [k for k in ident if k in _FIELDS]
                if len(keys) != 1 or len(ident) != 1:
                    return self.violation(f"operation {i}: each identifier has exactly one hashed field")
                value = ident[keys[0]]
                if not isinstance(value, str) or not SHA256_HEX.match(value):
                    return self.violation(f"operation {i}: {keys[0]} is not SHA-256 lower-case hex")
                parsed.append((kinds[0], _FIELDS[keys[0]], value))
            total += len(ids)
        if total > self.max_identifiers:
            return self.violation(f"{total} identifiers in one request (max {self.max_identifiers})")
        errors = []
        with self.lock:
            self.batch_sizes.append(total)
            for i, (verb, kind, value) in enumerate(parsed):
                if value in self.reject:
                    errors.append({
                        "errorCode": {"offlineUserDataJobError": "INVALID_SHA256_FORMAT"},
                        "message": "The SHA256 encoded value is malformed.",
                        "location": {"fieldPathElements": [{"fieldName": "operations", "index": i},
                                                           {"fieldName": verb}]},
                    })
                else:
                    job["ops"].append((verb, kind, value))
        if not errors:
            return 200, {}, {}
        return 200, {}, {"partialFailureError": {
            "code": 3, "message": f"{len(errors)} operation(s) failed",
            "details": [{"@type": f"type.googleapis.com/google.ads.googleads.{self.api_version}.errors.GoogleAdsFailure",
                         "errors": errors}],
        }}

    def _run(self, job_name: str) -> tuple:
        with self.lock:
            job = self.jobs[job_name]
            if job["status"] != "PENDING":
                return 400, {}, {"error": {"code": 400, "status": "FAILED_PRECONDITION", "message": "already run"}}
            members = self.lists[job["user_list"]]
            for verb, kind, value in job["ops"]:
                if verb == "create":
                    members.add((kind, value))
                    self.add_counts[(kind, value)] += 1
                else:
                    members.discard((kind, value))
                    self.remove_counts[(kind, value)] += 1
            job["status"] = "SUCCESS"
        return 200, {}, {"name": f"{job_name.split('/offline')[0]}/operations/{job_name.rsplit('/', 1)[1]}"}

    def connection(self, **extra: Any) -> dict[str, Any]:
        """An Airflow connection (as ``google_ads_credentials`` takes it) for this server, OAuth included.

        ``extra`` overrides or adds connection extras (e.g. a ``login_customer_id`` with dashes).
        """
        return {"extra": {"developer_token": self.developer_token, "login_customer_id": self.login_customer_id,
                          "customer_id": self.customer_id, "base_url": self.url, "token_url": f"{self.url}/token",
                          **self.oauth, **extra}}

    def hashes(self, user_list_id: str = "555") -> set[str]:
        """All hashes currently in the user list."""
        with self.lock:
            return {h for _, h in self.lists[f"customers/{self.customer_id}/userLists/{user_list_id}"]}
