"""Audience sync: one run of one audience, from the published segments to the destination, and its history.

One run of one audience:

1. Membership (:mod:`.membership`): each customer's current segment (``customer_segments_now``,
   live or daily, when the live view exists; else the latest published snapshot) joined to ``raw.customers``;
   only customers with ``marketing_consent`` count, their identifiers normalised and hashed.
2. Diff (:mod:`.plan`) against ``segmentation.audience_members`` — what the destination has
   *accepted* (:mod:`.state`). Adds = members not accepted yet; removes (mirror mode) = accepted
   hashes no longer members. Add-only mode never removes segment leavers, but still removes
   customers who withdrew marketing consent. ``full_resend`` re-sends every member.
3. Write the diff to ``segmentation.audience_sync_queue`` as ``pending`` (one transaction),
   then send it batch by batch. State changes only when the platform confirmed a batch (Meta) or
   the job ran / file was written (Google Ads, file), in the same transaction that marks the
   queue rows ``sent``. Rows the platform rejected are ``failed`` and stay out of the state, so
   the next run's diff sends them again. A run that dies half-way leaves its unconfirmed rows
   out of the state too: re-running sends exactly those (adds *and* removes) and nothing that
   was already confirmed.
4. Record counts, status, times and the platform's figures in ``segmentation.audience_sync_runs``.

Works on PostgreSQL and SQLite. No clear-text identifier is stored, logged or returned.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine, text

from include.segmentation.audiences.config import Audience, AudienceConfigError
from include.segmentation.audiences.credentials import CredentialsError, GoogleAdsCredentials, MetaCredentials
from include.segmentation.audiences.destinations import OPS, DestinationError, RetryPolicy, build_destination
from include.segmentation.audiences.membership import (
    AudienceSyncError,
    build_membership,
    latest_snapshot,
    withdrawn_consent,
)
from include.segmentation.audiences.plan import plan_batches, plan_diff
from include.segmentation.audiences.state import commit_batch, commit_staged, load_state, utc_now, write_queue
from include.segmentation.store import ensure_audience_tables, ts_param

log = logging.getLogger(__name__)

# The removal safety limit (Audience.max_removal_fraction) ignores runs removing fewer than this:
# small audiences legitimately lose half their members.
MASS_REMOVAL_MIN = 20


# --- run record --------------------------------------------------------------------------------

_RUN_COLUMNS = (
    "snapshot_date", "in_segments", "no_consent", "eligible", "identifiers", "invalid", "to_add", "to_remove",
    "added", "removed", "failed", "retried", "status", "finished_at", "match_figures", "message",
)


def _start_run(engine: Engine, audience: Audience, run_id: str, *, full_resend: bool, dry_run: bool,
               trigger: str | None) -> None:
    """Insert the run's ``running`` row; earlier runs of this audience still ``running`` died: mark them."""
    with engine.begin() as conn:
        now = ts_param(conn, utc_now())
        stale = conn.execute(
            text(
                "UPDATE segmentation.audience_sync_runs SET status = 'interrupted', finished_at = :now, "
                "message = 'the run stopped before finishing; its unconfirmed changes are re-sent by a later run' "
                "WHERE audience = :a AND target = :t AND status = 'running'"
            ),
            {"now": now, "a": audience.name, "t": audience.target},
        ).rowcount
        if stale:
            log.warning("audience %s: %d earlier run(s) had stopped half-way; marked interrupted", audience.name, stale)
        number = conn.execute(
            text("SELECT COALESCE(MAX(run_number), 0) + 1 FROM segmentation.audience_sync_runs WHERE audience = :a"),
            {"a": audience.name},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO segmentation.audience_sync_runs (run_id, audience, destination, target, run_number, mode, "
                "full_resend, dry_run, status, started_at, trigger) "
                "VALUES (:r, :a, :d, :t, :n, :m, :f, :dr, 'running', :now, :tr)"
            ),
            {"r": run_id, "a": audience.name, "d": audience.destination, "t": audience.target, "n": int(number),
             "m": audience.mode, "f": bool(full_resend), "dr": bool(dry_run), "now": now, "tr": trigger},
        )


def _update_run(engine: Engine, run_id: str, **values: Any) -> None:
    """Set columns of the run's row (names outside ``_RUN_COLUMNS`` are ignored), in its own transaction."""
    cols = [c for c in values if c in _RUN_COLUMNS]
    if not cols:
        return
    with engine.begin() as conn:
        params = {c: values[c] for c in cols}
        if "finished_at" in params:
            params["finished_at"] = ts_param(conn, params["finished_at"])
        params["run_id"] = run_id
        sets = ", ".join(f"{c} = :{c}" for c in cols)
        conn.execute(text(f"UPDATE segmentation.audience_sync_runs SET {sets} WHERE run_id = :run_id"), params)


# --- one run -----------------------------------------------------------------------------------

def sync_audience(
    engine: Engine,
    audience: Audience,
    *,
    credentials: MetaCredentials | GoogleAdsCredentials | None = None,
    full_resend: bool = False,
    dry_run: bool = False,
    allow_mass_removal: bool = False,
    trigger: str | None = None,
    policy: RetryPolicy | None = None,
    folder: Path | None = None,
    session: requests.Session | None = None,
    after_batch: Callable[[int, str], None] | None = None,
) -> dict[str, Any]:
    """Bring one audience in step with the latest published snapshot; returns a small summary.

    ``after_batch(batch_no, op)`` is called after each batch is recorded (progress reporting).
    Raises :class:`AudienceSyncError` / ``DestinationError`` after recording the run as failed.
    """
    ensure_audience_tables(engine)
    with engine.connect() as conn:
        latest_snapshot(conn)  # nothing published yet: raise NothingPublished before recording a run
    run_id = uuid.uuid4().hex
    _start_run(engine, audience, run_id, full_resend=full_resend, dry_run=dry_run, trigger=trigger)
    summary: dict[str, Any] = {"audience": audience.name, "destination": audience.destination, "run_id": run_id}
    try:
        with engine.connect() as conn:
            membership = build_membership(conn, audience)
            state = load_state(conn, audience)
            withdrawn = withdrawn_consent(conn, audience) if state else set()
        diff = plan_diff(audience, membership.members, state, full_resend=full_resend, withdrawn=withdrawn)
        counts = {
            "snapshot_date": membership.snapshot_date,
            "in_segments": membership.in_segments,
            "no_consent": membership.no_consent,
            "eligible": membership.eligible,
            "identifiers": len(membership.members),
            "invalid": sum(membership.invalid.values()),
            "to_add": len(diff.adds),
            "to_remove": len(diff.removes),
        }
        input_notes = membership.data_notes()  # duplicated customer ids and what was done with them
        summary.update(counts, source=membership.source, invalid_by_kind=dict(membership.invalid),
                       duplicate_customers=membership.duplicate_customers,
                       ambiguous_consent=membership.ambiguous_consent,
                       ambiguous_identifiers=membership.ambiguous_identifiers)
        log.info(
            "audience %s (%s, %s): snapshot %s (read from %s), %d in segments, %d without consent, %d eligible, %d hashed ids, "
            "%d invalid %s; to add %d, to remove %d (%d for withdrawn consent), accepted so far %d",
            audience.name, audience.destination, audience.mode, membership.snapshot_date, membership.source,
            membership.in_segments,
            membership.no_consent, membership.eligible, len(membership.members), counts["invalid"],
            membership.invalid, len(diff.adds), len(diff.removes), diff.consent_removals, len(state),
        )
        too_many = (
            audience.mode == "mirror" and not allow_mass_removal and audience.max_removal_fraction is not None
            and len(diff.removes) >= MASS_REMOVAL_MIN
            and len(diff.removes) > audience.max_removal_fraction * len(state)
        )
        guard = (
            f"audience {audience.name!r}: would remove {len(diff.removes)} of {len(state)} accepted identifiers "
            f"(> max_removal_fraction {audience.max_removal_fraction}); check the segment definitions or "
            "trigger with allow_mass_removal"
        )
        if dry_run:
            _update_run(engine, run_id, **counts, added=0, removed=0, failed=0, retried=0, status="dry_run",
                        finished_at=utc_now(), message="dry run: nothing sent" + (f"; {guard}" if too_many else "")
                        + (f"; {input_notes}" if input_notes else ""))
            summary.update(status="dry_run", added=0, removed=0, failed=0, retried=0)
            return summary
        if too_many:
            raise AudienceSyncError(guard)

        batches = plan_batches(diff, audience.effective_batch_size)
        retried = write_queue(engine, audience, run_id, batches)
        _update_run(engine, run_id, **counts, retried=retried)
        added = removed = failed = 0
        figures: dict[str, Any] = {}
        dest = build_destination(audience, run_id=run_id, snapshot_date=membership.snapshot_date,
                                 credentials=credentials, policy=policy, folder=folder, session=session)
        try:
            for op in OPS:
                for batch_no, (bop, kind, hashes) in enumerate(batches):
                    if bop != op:
                        continue
                    result = dest.send(op, kind, hashes)
                    failed += len(result.failed)
                    n = commit_batch(engine, audience, run_id, batch_no, op, kind, result.failed,
                                     dest.commit_per_batch)
                    if dest.commit_per_batch:
                        added, removed = (added + n, removed) if op == "add" else (added, removed + n)
                    log.info("audience %s: %s batch %d (%s, %d ids) recorded, %d rejected", audience.name, op,
                             batch_no, kind, len(hashes), len(result.failed))
                    if after_batch is not None:
                        after_batch(batch_no, op)
                figures.update(dest.complete(op))
                if not dest.commit_per_batch:
                    n = commit_staged(engine, audience, run_id, op)
                    added, removed = (added + n, removed) if op == "add" else (added, removed + n)
            dest_figures = getattr(dest, "figures", None)
            if isinstance(dest_figures, dict):
                figures.update(dest_figures)
            dest_files = getattr(dest, "files", None)
            if dest_files:
                figures["files"] = list(dest_files)
        finally:
            dest.close()
        status = "partial" if failed else "success"
        message = (f"{failed} identifier(s) rejected by the destination; they are retried by the next run"
                   if failed else None)
        if input_notes:
            message = f"{message}; {input_notes}" if message else input_notes
        _update_run(engine, run_id, added=added, removed=removed, failed=failed, status=status, finished_at=utc_now(),
                    match_figures=json.dumps(figures, default=str, sort_keys=True), message=message)
        summary.update(status=status, added=added, removed=removed, failed=failed, retried=retried)
        log.info("audience %s: %s; added %d, removed %d, rejected %d, retried %d", audience.name, status, added,
                 removed, failed, retried)
        return summary
    except Exception as exc:
        _update_run(engine, run_id, status="failed", finished_at=utc_now(), message=_safe_message(exc))
        raise


def _safe_message(exc: BaseException) -> str:
    """Our own errors in full; others by type and first line only (drivers append bound parameters)."""
    if isinstance(exc, AudienceSyncError | DestinationError | CredentialsError | AudienceConfigError):
        return str(exc)[:1000]
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}"


# --- history -----------------------------------------------------------------------------------

def sync_history(engine: Engine, audience: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Latest rows of ``segmentation.audience_sync_runs`` (optionally of one audience), newest first."""
    ensure_audience_tables(engine)
    sql = "SELECT * FROM segmentation.audience_sync_runs"
    params: dict[str, Any] = {"n": int(limit)}
    if audience:
        sql += " WHERE audience = :a"
        params["a"] = audience
    sql += " ORDER BY started_at DESC, audience, run_number DESC LIMIT :n"
    with engine.connect() as conn:
        result = conn.execute(text(sql), params)
        return [dict(r._mapping) for r in result]


def summarize(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Totals over audience summaries (what the DAG reports)."""
    out: dict[str, Any] = {"audiences": 0, "added": 0, "removed": 0, "failed": 0, "invalid": 0, "statuses": {}}
    for r in results:
        out["audiences"] += 1
        for k in ("added", "removed", "failed", "invalid"):
            out[k] += int(r.get(k) or 0)
        st = str(r.get("status"))
        out["statuses"][st] = out["statuses"].get(st, 0) + 1
    return out
