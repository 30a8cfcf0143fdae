"""Fake Meta Marketing API: the Custom Audience users endpoint, checked against the documentation.

``POST /{api_version}/{custom_audience_id}/users`` adds, ``DELETE`` removes. Form fields:
``payload`` = JSON ``{"schema": "EMAIL_SHA256" | "PHONE_SHA256" | [...], "data": [...]}`` and
``access_token``. At most 10,000 records a request; each record a SHA-256 lower-case hex string.
The response carries ``audience_id``, ``session_id``, ``num_received``, ``num_invalid_entries``
and ``invalid_entry_samples``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.http_fake import SHA256_HEX, FakeAudienceServer

MAX_RECORDS = 10_000
SCHEMAS = {"EMAIL_SHA256", "PHONE_SHA256"}
_PATH = re.compile(r"^/(v\d+\.\d+)/(\d+)/users$")


class FakeMetaServer(FakeAudienceServer):
    """Keeps each audience's members; can reject chosen hashes as invalid entries."""

    def __init__(self, access_token: str = "meta-test-token", audience_ids: Iterable[str] = ("23850000000000001",),
                 api_version: str = "v25.0") -> None:
        super().__init__()
        self.access_token = access_token
        self.api_version = api_version
        self.members: dict[str, set[tuple[str, str]]] = {a: set() for a in audience_ids}

    def route(self, method: str, path: str, headers: Mapping[str, str], body: bytes):
        m = _PATH.match(path.split("?", 1)[0])
        if not m:
            return self.violation(f"unknown endpoint {method} {path}")
        version, audience_id = m.groups()
        if version != self.api_version:
            return self.violation(f"api version {version} (expected {self.api_version})")
        if method not in ("POST", "DELETE"):
            return self.violation(f"method {method} not allowed on /users")
        if "?" in path and "access_token" in path:
            return self.violation("access_token must not travel in the URL")
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self.violation("body must be form-encoded")
        form = parse_qs(body.decode(), keep_blank_values=True)
        token = (form.get("access_token") or [""])[0]
        if token != self.access_token:
            return 400, {}, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException",
                                       "code": 190}}
        if audience_id not in self.members:
            return 400, {}, {"error": {"message": "Unsupported post request.", "type": "GraphMethodException",
                                       "code": 100}}
        try:
            payload = json.loads((form.get("payload") or [""])[0])
        except json.JSONDecodeError:
            return self.violation("payload is not JSON")
        schema = payload.get("schema")
        data = payload.get("data")
        if isinstance(schema, list):
            return self.violation("this fake only takes single-key schemas")
        if schema not in SCHEMAS:
            return self.violation(f"schema {schema!r} not one of {sorted(SCHEMAS)}")
        if not isinstance(data, list) or not data:
            return self.violation("data must be a non-empty list")
        if len(data) > MAX_RECORDS:
            return self.violation(f"{len(data)} records in one request (max {MAX_RECORDS})")
        bad = [d for d in data if not isinstance(d, str) or not SHA256_HEX.match(d)]
        if bad:
            return self.violation(f"{len(bad)} records are not SHA-256 lower-case hex")
        with self.lock:
            self.batch_sizes.append(len(data))
            invalid = {d: "Invalid hashed value" for d in data if d in self.reject}
            for d in data:
                if d in invalid:
                    continue
                key = (schema, d)
                if method == "POST":
                    self.members[audience_id].add(key)
                    self.add_counts[key] += 1
                else:
                    self.members[audience_id].discard(key)
                    self.remove_counts[key] += 1
        return 200, {}, {
            "audience_id": audience_id,
            "session_id": str(len(self.requests) + 1),
            "num_received": len(data),
            "num_invalid_entries": len(invalid),
            "invalid_entry_samples": invalid,
        }

    def connection(self, **extra: Any) -> dict[str, Any]:
        """An Airflow connection (as ``meta_credentials`` takes it) pointing at this server; ``extra`` overrides."""
        return {"password": self.access_token, "extra": {"base_url": self.url, **extra}}

    def hashes(self, audience_id: str = "23850000000000001") -> set[str]:
        """All hashes currently in the audience."""
        with self.lock:
            return {h for _, h in self.members[audience_id]}
