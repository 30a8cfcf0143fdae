"""Audience destinations: hashed-identifier files, Meta Custom Audiences, Google Ads Customer Match.

Every destination takes batches of SHA-256 hashes of one identifier kind (``email``/``phone``) for
one operation (``add``/``remove``) and reports which hashes the platform rejected. Two kinds of
commit exist, and the sync engine relies on them:

- ``commit_per_batch = True`` (Meta): a batch is final once its request succeeded, so the engine
  records it as sent right away; a crash later never re-sends it.
- ``commit_per_batch = False`` (Google Ads, file): batches are *staged* (operations added to an
  OfflineUserDataJob; rows kept for the file) and only take effect in :meth:`complete`
  (``:run`` the job; write the file atomically). The engine records them as sent after that.

HTTP calls retry on 429, 5xx and connection errors with exponential backoff, honouring
``Retry-After`` (capped by the policy). No message built here contains a token or an identifier.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests

from include.segmentation.audiences.config import MAX_BATCH, Audience
from include.segmentation.audiences.credentials import GoogleAdsCredentials, MetaCredentials
from include.segmentation.audiences.identifiers import is_sha256_hex
from include.segmentation.errors import SegmentationError
from include.segmentation.settings import audiences_dir

log = logging.getLogger(__name__)

OPS: tuple[str, ...] = ("remove", "add")
META_SCHEMAS: dict[str, str] = {"email": "EMAIL_SHA256", "phone": "PHONE_SHA256"}
GOOGLE_FIELDS: dict[str, str] = {"email": "hashedEmail", "phone": "hashedPhoneNumber"}
FILE_HEADERS: dict[str, dict[str, str]] = {
    # Google Ads customer data file: English headers "Email", "Phone" (SHA-256 values accepted).
    "google_ads": {"email": "Email", "phone": "Phone"},
    # Meta customer list file: identifier headers "email", "phone" (SHA-256 values accepted).
    "meta": {"email": "email", "phone": "phone"},
}
# Graph API error codes that mean "slow down / try again" (rate limits, temporary outages).
META_TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80003, 80004})
_GOOGLE_JOB = re.compile(r"^customers/\d{1,20}/offlineUserDataJobs/-?\d{1,20}$")


class DestinationError(SegmentationError, RuntimeError):
    """A destination request failed for good; the message holds no token and no identifier."""


@dataclass
class RetryPolicy:
    """How often and how long to wait between attempts (tests make the delays tiny)."""

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    timeout: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.backoff_max))
        return min(self.backoff_base * (2 ** (attempt - 1)), self.backoff_max)


@dataclass
class BatchResult:
    """What the platform said about one batch: rejected hashes (hash -> reason) and its figures."""

    failed: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def _error_summary(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return (resp.text or "")[:200]
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        parts = [str(err.get(k)) for k in ("code", "status", "type", "error_subcode") if err.get(k) is not None]
        msg = str(err.get("message") or "")[:300]
        return " ".join(parts + [msg]).strip()
    return json.dumps(body)[:300]


def _default_retryable(resp: requests.Response) -> bool:
    return resp.status_code in (408, 429) or resp.status_code >= 500


def request_with_retry(
    session: requests.Session,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    what: str,
    secrets: Iterable[str] = (),
    retryable: Callable[[requests.Response], bool] = _default_retryable,
    **kwargs: Any,
) -> requests.Response:
    """Send one request, retrying transient failures with backoff; raise :class:`DestinationError`."""
    secrets = tuple(secrets)
    last = ""
    for attempt in range(1, policy.max_attempts + 1):
        retry_after: float | None = None
        try:
            resp = session.request(method, url, timeout=policy.timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = f"{type(exc).__name__}"
        else:
            if resp.status_code < 400:
                return resp
            last = f"HTTP {resp.status_code}: {_error_summary(resp)}"
            if not retryable(resp):
                raise DestinationError(scrub(f"{what} failed: {last}", secrets))
            retry_after = _retry_after(resp)
        if attempt < policy.max_attempts:
            wait = policy.delay(attempt, retry_after)
            log.warning("%s: attempt %d/%d failed (%s); retrying in %.3gs", what, attempt, policy.max_attempts,
                        scrub(last, secrets), wait)
            policy.sleep(wait)
    raise DestinationError(scrub(f"{what} failed after {policy.max_attempts} attempts: {last}", secrets))


def _check_hashes(hashes: list[str], what: str) -> None:
    bad = sum(1 for h in hashes if not is_sha256_hex(h))
    if bad:
        raise DestinationError(f"{what}: {bad} value(s) are not SHA-256 lower-case hex; refusing to send")


class FileDestination:
    """Writes add and remove files of hashed identifiers in a platform's upload layout.

    Files: ``<folder>/<audience>/<snapshot>_<run_id>_{add,remove}.csv``, written atomically
    (temporary file + rename) in :meth:`complete`. Each row carries one hashed identifier under
    its column (``Email``/``Phone`` for Google Ads, ``email``/``phone`` for Meta).
    """

    commit_per_batch = False
    max_batch = MAX_BATCH["file"]

    def __init__(self, audience: Audience, run_id: str, snapshot_date: str, folder: Path | None = None) -> None:
        self.name = "file"
        self.layout = audience.file_layout
        self.kinds = audience.identifiers
        base = Path(folder or audience.folder or audiences_dir())
        self.folder = base / (audience.audience_id or audience.name)
        self.run_id = run_id
        self.snapshot_date = snapshot_date
        self._rows: dict[str, list[tuple[str, str]]] = {op: [] for op in OPS}
        self.files: list[str] = []

    def send(self, op: str, id_type: str, hashes: list[str]) -> BatchResult:
        """Stage a batch for the op's file."""
        _check_hashes(hashes, f"file {op}")
        self._rows[op].extend((id_type, h) for h in hashes)
        return BatchResult()

    def complete(self, op: str) -> dict[str, Any]:
        """Write the op's file (also when empty: an empty remove file says 'nothing to remove')."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.snapshot_date}_{self.run_id}_{op}.csv"
        tmp = path.with_suffix(".csv.tmp")
        headers = FILE_HEADERS[self.layout]
        cols = [headers[k] for k in self.kinds]
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(cols)
            for id_type, h in self._rows[op]:
                writer.writerow([h if k == id_type else "" for k in self.kinds])
        os.replace(tmp, path)
        self.files.append(str(path))
        rows = len(self._rows[op])
        self._rows[op] = []
        return {f"{op}_file_rows": rows}

    def close(self) -> None:
        """Nothing to release."""


class MetaDestination:
    """Meta Marketing API: ``POST``/``DELETE /{api_version}/{audience_id}/users``.

    Payload ``{"schema": "EMAIL_SHA256" | "PHONE_SHA256", "data": [hash, ...]}`` as a form field
    with ``access_token``; at most 10,000 records a request. Entries Meta lists in
    ``invalid_entry_samples`` are reported as failed; ``num_received`` and ``num_invalid_entries``
    are summed into the run's match figures.
    """

    commit_per_batch = True
    max_batch = MAX_BATCH["meta"]

    def __init__(
        self,
        audience: Audience,
        credentials: MetaCredentials,
        policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.name = "meta"
        self.creds = credentials
        self.policy = policy or RetryPolicy()
        self.session = session or requests.Session()
        self.url = f"{credentials.base_url}/{credentials.api_version}/{audience.audience_id}/users"
        self.figures: dict[str, int] = {"num_received": 0, "num_invalid_entries": 0}

    def _retryable(self, resp: requests.Response) -> bool:
        if _default_retryable(resp):
            return True
        try:
            err = resp.json().get("error", {})
        except (ValueError, AttributeError):
            return False
        return bool(err.get("is_transient")) or err.get("code") in META_TRANSIENT_CODES

    def send(self, op: str, id_type: str, hashes: list[str]) -> BatchResult:
        """Add or remove one batch of hashes of one kind."""
        if len(hashes) > self.max_batch:
            raise DestinationError(f"meta {op}: batch of {len(hashes):,} exceeds the limit of {self.max_batch:,}")
        _check_hashes(hashes, f"meta {op}")
        payload = {"schema": META_SCHEMAS[id_type], "data": hashes}
        resp = request_with_retry(
            self.session,
            "POST" if op == "add" else "DELETE",
            self.url,
            policy=self.policy,
            what=f"meta {op} {id_type} batch",
            secrets=self.creds.secrets(),
            retryable=self._retryable,
            data={"payload": json.dumps(payload, separators=(",", ":")), "access_token": self.creds.access_token},
        )
        try:
            body = resp.json()
        except ValueError:
            body = {}
        received = int(body.get("num_received") or 0)
        invalid = int(body.get("num_invalid_entries") or 0)
        self.figures["num_received"] += received
        self.figures["num_invalid_entries"] += invalid
        samples = body.get("invalid_entry_samples") or {}
        sent = set(hashes)
        failed: dict[str, str] = {}
        if isinstance(samples, Mapping):
            for key, reason in samples.items():
                if key in sent:
                    failed[key] = f"meta rejected: {str(reason)[:120]}"
        elif isinstance(samples, list):
            failed = {k: "meta rejected" for k in samples if isinstance(k, str) and k in sent}
        return BatchResult(failed=failed, figures={"num_received": received, "num_invalid_entries": invalid})

    def complete(self, op: str) -> dict[str, Any]:
        """Nothing to finish: Meta applies each request on its own."""
        return {}

    def close(self) -> None:
        """Release the HTTP session."""
        self.session.close()


class GoogleAdsDestination:
    """Google Ads Customer Match through OfflineUserDataJobService (REST).

    Per op one job: ``customers/{id}/offlineUserDataJobs:create`` (type
    ``CUSTOMER_MATCH_USER_LIST``, the user list in ``customerMatchUserListMetadata``; add jobs
    carry consent GRANTED, since only customers with marketing consent are sent), then
    ``{job}:addOperations`` with ``create``/``remove`` operations of ``userIdentifiers``
    (``hashedEmail``/``hashedPhoneNumber``) and ``enablePartialFailure``, then ``{job}:run``.
    Headers: ``Authorization: Bearer``, ``developer-token``, ``login-customer-id``.
    """

    commit_per_batch = False
    max_batch = MAX_BATCH["google_ads"]

    def __init__(
        self,
        audience: Audience,
        credentials: GoogleAdsCredentials,
        policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.name = "google_ads"
        self.creds = credentials
        self.policy = policy or RetryPolicy()
        self.session = session or requests.Session()
        self.customer_id, self.user_list = audience.google_list_resource(credentials.customer_id)
        self.api = f"{credentials.base_url}/{credentials.api_version}"
        self.jobs: dict[str, str] = {}
        self._token: str | None = credentials.access_token
        self.figures: dict[str, Any] = {"jobs": {}}

    def _secrets(self) -> tuple[str, ...]:
        return self.creds.secrets() + ((self._token,) if self._token else ())

    def _access_token(self) -> str:
        if self._token:
            return self._token
        resp = request_with_retry(
            self.session, "POST", self.creds.token_url, policy=self.policy, what="google oauth token refresh",
            secrets=self.creds.secrets(),
            data={
                "grant_type": "refresh_token",
                "client_id": self.creds.client_id,
                "client_secret": self.creds.client_secret,
                "refresh_token": self.creds.refresh_token,
            },
        )
        token = resp.json().get("access_token")
        if not token:
            raise DestinationError("google oauth token refresh returned no access_token")
        self._token = str(token)
        return self._token

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._access_token()}",
            "developer-token": self.creds.developer_token,
            "Content-Type": "application/json",
        }
        if self.creds.login_customer_id:
            headers["login-customer-id"] = self.creds.login_customer_id
        return headers

    def _post(self, path: str, body: Mapping[str, Any], what: str) -> dict[str, Any]:
        resp = request_with_retry(
            self.session, "POST", f"{self.api}/{path}", policy=self.policy, what=what, secrets=self._secrets(),
            headers=self._headers(), data=json.dumps(body, separators=(",", ":")),
        )
        try:
            out = resp.json()
        except ValueError:
            out = {}
        return out if isinstance(out, dict) else {}

    def _job(self, op: str) -> str:
        if op not in self.jobs:
            metadata: dict[str, Any] = {"userList": self.user_list}
            if op == "add":
                metadata["consent"] = {"adUserData": "GRANTED", "adPersonalization": "GRANTED"}
            body = {"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": metadata}}
            out = self._post(f"customers/{self.customer_id}/offlineUserDataJobs:create", body, f"google {op} job create")
            name = str(out.get("resourceName") or "")
            if not _GOOGLE_JOB.match(name):
                raise DestinationError(f"google {op} job create returned no valid resourceName")
            self.jobs[op] = name
        return self.jobs[op]

    def send(self, op: str, id_type: str, hashes: list[str]) -> BatchResult:
        """Add one batch of create/remove operations to the op's job."""
        if len(hashes) > self.max_batch:
            raise DestinationError(f"google {op}: batch of {len(hashes):,} exceeds the limit of {self.max_batch:,}")
        _check_hashes(hashes, f"google {op}")
        job = self._job(op)
        key = "create" if op == "add" else "remove"
        fld = GOOGLE_FIELDS[id_type]
        body = {
            "enablePartialFailure": True,
            "operations": [{key: {"userIdentifiers": [{fld: h}]}} for h in hashes],
        }
        out = self._post(f"{job}:addOperations", body, f"google {op} {id_type} batch")
        return BatchResult(failed=_google_partial_failures(out, hashes))

    def complete(self, op: str) -> dict[str, Any]:
        """Run the op's job (if any operation was added) and read its status and match rate range."""
        job = self.jobs.get(op)
        if not job:
            return {}
        self._post(f"{job}:run", {}, f"google {op} job run")
        info: dict[str, Any] = {"job": job}
        query = (
            "SELECT offline_user_data_job.status, offline_user_data_job.operation_metadata.match_rate_range "
            f"FROM offline_user_data_job WHERE offline_user_data_job.resource_name = '{job}'"
        )
        try:
            out = self._post(f"customers/{self.customer_id}/googleAds:search", {"query": query}, f"google {op} job status")
            row = (out.get("results") or [{}])[0].get("offlineUserDataJob", {})
            info["status"] = row.get("status")
            rng = (row.get("operationMetadata") or {}).get("matchRateRange")
            if rng:
                info["match_rate_range"] = rng
        except DestinationError as exc:
            info["status_error"] = str(exc)[:200]
        self.figures["jobs"][op] = info
        return {f"{op}_job": info}

    def close(self) -> None:
        """Release the HTTP session."""
        self.session.close()


def _google_partial_failures(body: Mapping[str, Any], hashes: list[str]) -> dict[str, str]:
    """Map a ``partialFailureError`` onto the hashes of the failed operations."""
    pfe = body.get("partialFailureError")
    if not isinstance(pfe, Mapping) or not pfe.get("code"):
        return {}
    failed: dict[str, str] = {}
    located = False
    for detail in pfe.get("details") or []:
        for err in (detail or {}).get("errors") or []:
            index = None
            for el in ((err.get("location") or {}).get("fieldPathElements") or []):
                if el.get("fieldName") == "operations" and "index" in el:
                    index = int(el["index"])
                    break
            if index is None or not 0 <= index < len(hashes):
                continue
            located = True
            code = err.get("errorCode") or {}
            reason = ",".join(str(v) for v in code.values()) if isinstance(code, Mapping) else str(code)
            failed[hashes[index]] = f"google rejected: {reason or str(err.get('message', ''))[:120]}"
    if not located:
        # An error the platform did not tie to an operation: treat the whole batch as failed.
        msg = str(pfe.get("message") or "partial failure")[:120]
        failed = {h: f"google rejected batch: {msg}" for h in hashes}
    return failed


def build_destination(
    audience: Audience,
    *,
    run_id: str,
    snapshot_date: str,
    credentials: MetaCredentials | GoogleAdsCredentials | None = None,
    policy: RetryPolicy | None = None,
    folder: Path | None = None,
    session: requests.Session | None = None,
) -> FileDestination | MetaDestination | GoogleAdsDestination:
    """The destination client for ``audience`` (credentials are required for meta and google_ads)."""
    if audience.destination == "file":
        return FileDestination(audience, run_id, snapshot_date, folder)
    if audience.destination == "meta":
        if not isinstance(credentials, MetaCredentials):
            raise DestinationError(f"audience {audience.name!r}: Meta credentials are required")
        return MetaDestination(audience, credentials, policy, session)
    if audience.destination == "google_ads":
        if not isinstance(credentials, GoogleAdsCredentials):
            raise DestinationError(f"audience {audience.name!r}: Google Ads credentials are required")
        return GoogleAdsDestination(audience, credentials, policy, session)
    raise DestinationError(f"audience {audience.name!r}: unknown destination {audience.destination!r}")
