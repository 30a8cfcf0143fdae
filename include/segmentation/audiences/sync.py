"""Audience sync: membership from the published segments, diffs against accepted state, sending, history.

One run of one audience:

1. Read the latest published snapshot (``segmentation.customer_segments``) joined to
   ``raw.customers`` for consent and identifiers. Only customers with ``marketing_consent`` true
   count; their e-mails/phones are normalised by the destination platform's rules and hashed
   (:mod:`include.segmentation.audiences.identifiers`). Invalid identifiers are counted, not sent.
2. Diff the resulting set of (kind, hash) against ``segmentation.audience_members`` — what the
   destination has *accepted*. Adds = members not accepted yet; removes (mirror mode) = accepted
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from sqlalchemy import Connection, Engine, Integer, Text, bindparam, text

from include.segmentation.audiences.config import Audience, AudienceConfigError
from include.segmentation.audiences.credentials import CredentialsError, GoogleAdsCredentials, MetaCredentials
from include.segmentation.audiences.destinations import OPS, DestinationError, RetryPolicy, build_destination
from include.segmentation.audiences.identifiers import hash_identifier, is_blank
from include.segmentation.errors import SegmentationError
from include.segmentation.store import bulk_insert, ensure_audience_tables, table_exists, ts_param

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (id_type, hashed_id)
# The removal safety limit (Audience.max_removal_fraction) ignores runs removing fewer than this:
# small audiences legitimately lose half their members.
MASS_REMOVAL_MIN = 20


class AudienceSyncError(SegmentationError, RuntimeError):
    """The sync cannot go on; the message names the audience, table, column and rule."""


class NothingPublished(AudienceSyncError):
    """No published segments to sync yet."""


@dataclass
class Membership:
    """Who the audience should contain now, and the counts behind it."""

    snapshot_date: str
    members: set[Key] = field(default_factory=set)
    in_segments: int = 0
    no_consent: int = 0
    eligible: int = 0
    invalid: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)


@dataclass
class Diff:
    """What a run must send."""

    adds: list[Key]
    removes: list[Key]
    consent_removals: int = 0


def _now() -> datetime:
    return datetime.now(timezone.utc)


def latest_snapshot(conn: Connection) -> str:
    """Snapshot date of ``segmentation.customer_segments`` (the latest published one)."""
    if not table_exists(conn, "segmentation", "customer_segments"):
        raise NothingPublished("table segmentation.customer_segments does not exist: no segments published yet")
    if not table_exists(conn, "raw", "customers"):
        raise AudienceSyncError("table raw.customers does not exist: consent and identifiers come from it")
    value = conn.execute(text("SELECT MAX(snapshot_date) FROM segmentation.customer_segments")).scalar()
    if value is None:
        raise NothingPublished("table segmentation.customer_segments is empty: no segments published yet")
    return str(value)[:10]


def _segment_filter(conn: Connection, audience: Audience) -> tuple[list[int], list[str]]:
    """Configured segment ids and names, checked against the published snapshot."""
    if audience.all_segments:
        return [], []
    ids = [s for s in audience.segments if isinstance(s, int)]
    names = [s for s in audience.segments if isinstance(s, str)]
    rows = conn.execute(text("SELECT DISTINCT segment_id, segment_name FROM segmentation.customer_segments")).all()
    present_ids = {int(r[0]) for r in rows}
    present_names = {str(r[1]) for r in rows}
    found = [i for i in ids if i in present_ids] + [n for n in names if n in present_names]
    if not found:
        published = ", ".join(f"{int(r[0])} {r[1]!r}" for r in sorted(rows, key=lambda r: int(r[0])))
        raise AudienceSyncError(
            f"audience {audience.name!r}: none of segments {list(audience.segments)} matches "
            f"segmentation.customer_segments.segment_id or segment_name (published: {published or 'none'}); "
            "refusing to sync an empty audience"
        )
    lost = [s for s in audience.segments if s not in found]
    if lost:
        log.warning("audience %s: configured segments %s are not in the published snapshot", audience.name, lost)
    return ids, names


def build_membership(conn: Connection, audience: Audience) -> Membership:
    """Hash the identifiers of the audience's consenting customers in the latest snapshot."""
    snapshot = latest_snapshot(conn)
    ids, names = _segment_filter(conn, audience)
    where = []
    if not audience.all_segments:
        where.append("(s.segment_id IN :ids OR s.segment_name IN :names)")
    if not audience.include_outliers:
        where.append("s.is_outlier = :no")
    sql = (
        "SELECT c.email, c.phone, c.country, c.marketing_consent "
        "FROM segmentation.customer_segments s LEFT JOIN raw.customers c ON c.customer_id = s.customer_id"
        + (" WHERE " + " AND ".join(where) if where else "")
    )
    stmt = text(sql)
    params: dict[str, Any] = {}
    if not audience.all_segments:
        # Typed, so that an empty list still compares with the right column type on PostgreSQL.
        stmt = stmt.bindparams(bindparam("ids", expanding=True, type_=Integer),
                               bindparam("names", expanding=True, type_=Text))
        params.update(ids=ids, names=names)
    if not audience.include_outliers:
        params["no"] = False
    m = Membership(snapshot_date=snapshot, invalid=dict.fromkeys(audience.identifiers, 0),
                   missing=dict.fromkeys(audience.identifiers, 0))
    for email, phone, country, consent in conn.execute(stmt, params):
        m.in_segments += 1
        if not consent:
            m.no_consent += 1
            continue
        got = False
        for kind in audience.identifiers:
            raw = email if kind == "email" else phone
            if is_blank(raw):
                m.missing[kind] += 1
                continue
            hashed = hash_identifier(kind, raw, country, audience.platform)
            if hashed is None:
                m.invalid[kind] += 1
                continue
            m.members.add((kind, hashed))
            got = True
        if got:
            m.eligible += 1
    return m


def _withdrawn_consent(conn: Connection, audience: Audience) -> set[Key]:
    """Hashes of customers without marketing consent (removed even in add-only mode)."""
    out: set[Key] = set()
    rows = conn.execute(
        text("SELECT email, phone, country FROM raw.customers WHERE marketing_consent = :no"), {"no": False}
    )
    for email, phone, country in rows:
        for kind in audience.identifiers:
            raw = email if kind == "email" else phone
            if not is_blank(raw):
                hashed = hash_identifier(kind, raw, country, audience.platform)
                if hashed is not None:
                    out.add((kind, hashed))
    return out


def load_state(conn: Connection, audience: Audience) -> set[Key]:
    """The hashed identifiers the destination has accepted for this audience and target."""
    rows = conn.execute(
        text("SELECT id_type, hashed_id FROM segmentation.audience_members WHERE audience = :a AND target = :t"),
        {"a": audience.name, "t": audience.target},
    )
    return {(str(r[0]), str(r[1])) for r in rows}


def plan_diff(audience: Audience, members: set[Key], state: set[Key], *, full_resend: bool = False,
              withdrawn: set[Key] | None = None) -> Diff:
    """Adds and removes for one run (sorted, so batches are deterministic)."""
    adds = members if full_resend else members - state
    if audience.mode == "mirror":
        removes = state - members
        consent = len(removes & (withdrawn or set()))
    else:
        removes = (state & (withdrawn or set())) - members
        consent = len(removes)
    return Diff(adds=sorted(adds), removes=sorted(removes), consent_removals=consent)


def plan_batches(diff: Diff, batch_size: int) -> list[tuple[str, str, list[str]]]:
    """(op, id_type, hashes) batches: removes first, one identifier kind per batch."""
    batches: list[tuple[str, str, list[str]]] = []
    for op, keys in (("remove", diff.removes), ("add", diff.adds)):
        by_kind: dict[str, list[str]] = {}
        for kind, hashed in keys:
            by_kind.setdefault(kind, []).append(hashed)
        for kind in sorted(by_kind):
            hashes = by_kind[kind]
            for i in range(0, len(hashes), batch_size):
                batches.append((op, kind, hashes[i:i + batch_size]))
    return batches


# --- history -----------------------------------------------------------------------------------

_RUN_COLUMNS = (
    "snapshot_date", "in_segments", "no_consent", "eligible", "identifiers", "invalid", "to_add", "to_remove",
    "added", "removed", "failed", "retried", "status", "finished_at", "match_figures", "message",
)


def _start_run(engine: Engine, audience: Audience, run_id: str, *, full_resend: bool, dry_run: bool,
               trigger: str | None) -> None:
    with engine.begin() as conn:
        now = ts_param(conn, _now())
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
        ).scalar()
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


# --- queue and state ---------------------------------------------------------------------------

def _write_queue(engine: Engine, audience: Audience, run_id: str,
                 batches: list[tuple[str, str, list[str]]]) -> int:
    """Replace the audience's queue with this run's diff (all ``pending``); return how many are retries."""
    with engine.begin() as conn:
        prev = conn.execute(
            text(
                "SELECT op, id_type, hashed_id FROM segmentation.audience_sync_queue "
                "WHERE audience = :a AND target = :t AND status IN ('pending', 'staged', 'failed')"
            ),
            {"a": audience.name, "t": audience.target},
        )
        unfinished = {(str(r[0]), str(r[1]), str(r[2])) for r in prev}
        conn.execute(
            text("DELETE FROM segmentation.audience_sync_queue WHERE audience = :a AND target = :t"),
            {"a": audience.name, "t": audience.target},
        )
        rows = [
            (op, kind, h, batch_no)
            for batch_no, (op, kind, hashes) in enumerate(batches)
            for h in hashes
        ]
        if rows:
            frame = pd.DataFrame(rows, columns=["op", "id_type", "hashed_id", "batch_no"])
            frame["batch_no"] = frame["batch_no"].astype("int64")
            frame["audience"] = audience.name
            frame["target"] = audience.target
            frame["run_id"] = run_id
            frame["status"] = "pending"
            frame["error"] = pd.Series([None] * len(frame), dtype=object)
            frame["updated_at"] = pd.Timestamp(_now())
            bulk_insert(conn, "segmentation", "audience_sync_queue", frame,
                        ["audience", "target", "id_type", "hashed_id", "op", "run_id", "batch_no", "status",
                         "error", "updated_at"])
        return sum(1 for op, kind, h, _ in rows if (op, kind, h) in unfinished)


_KEY_CHUNK = 5_000  # hashes per IN list (well under SQLite's variable limit)


def _queue_keys(conn: Connection, audience: Audience, run_id: str, op: str, status: str,
                batch_no: int | None = None) -> list[Key]:
    """Keys of this run's queue rows of ``op`` in ``status`` (optionally one batch)."""
    sql = (
        "SELECT id_type, hashed_id FROM segmentation.audience_sync_queue WHERE run_id = :r "
        "AND audience = :a AND target = :t AND op = :op AND status = :st"
    )
    params: dict[str, Any] = {"a": audience.name, "t": audience.target, "r": run_id, "op": op, "st": status}
    if batch_no is not None:
        sql += " AND batch_no = :b"
        params["b"] = batch_no
    return [(str(r[0]), str(r[1])) for r in conn.execute(text(sql), params)]


def _delete_members(conn: Connection, audience: Audience, keys: list[Key]) -> None:
    """Delete ``keys`` from audience_members by primary key, in chunks."""
    stmt = text(
        "DELETE FROM segmentation.audience_members WHERE audience = :a AND target = :t AND id_type = :k "
        "AND hashed_id IN :hs"
    ).bindparams(bindparam("hs", expanding=True, type_=Text))
    by_kind: dict[str, list[str]] = {}
    for kind, hashed in keys:
        by_kind.setdefault(kind, []).append(hashed)
    for kind, hashes in by_kind.items():
        for i in range(0, len(hashes), _KEY_CHUNK):
            conn.execute(stmt, {"a": audience.name, "t": audience.target, "k": kind, "hs": hashes[i:i + _KEY_CHUNK]})


def _apply_state(conn: Connection, audience: Audience, run_id: str, op: str, status: str,
                 batch_no: int | None = None) -> None:
    """Apply confirmed queue rows (``status``, optionally one batch) of ``op`` to audience_members.

    Key lists are read and applied explicitly (primary-key deletes, bulk insert) so that the cost
    stays linear on both dialects, whatever the planner knows about freshly loaded tables.
    """
    keys = _queue_keys(conn, audience, run_id, op, status, batch_no)
    if not keys:
        return
    _delete_members(conn, audience, keys)
    if op == "add":
        frame = pd.DataFrame(keys, columns=["id_type", "hashed_id"])
        frame.insert(0, "audience", audience.name)
        frame.insert(1, "target", audience.target)
        frame["added_at"] = pd.Timestamp(_now())
        frame["run_id"] = run_id
        bulk_insert(conn, "segmentation", "audience_members", frame,
                    ["audience", "target", "id_type", "hashed_id", "added_at", "run_id"])


def _mark_failed(conn: Connection, audience: Audience, run_id: str, id_type: str, failed: dict[str, str]) -> None:
    if not failed:
        return
    conn.execute(
        text(
            "UPDATE segmentation.audience_sync_queue SET status = 'failed', error = :e, updated_at = :now "
            "WHERE audience = :a AND target = :t AND run_id = :r AND id_type = :k AND hashed_id = :h"
        ),
        [
            {"e": reason[:300], "now": ts_param(conn, _now()), "a": audience.name, "t": audience.target,
             "r": run_id, "k": id_type, "h": h}
            for h, reason in failed.items()
        ],
    )


def _commit_batch(engine: Engine, audience: Audience, run_id: str, batch_no: int, op: str, id_type: str,
                  failed: dict[str, str], per_batch: bool) -> int:
    """Record one batch's outcome; returns how many of its rows are now confirmed/staged."""
    with engine.begin() as conn:
        _mark_failed(conn, audience, run_id, id_type, failed)
        new_status = "sent" if per_batch else "staged"
        n = conn.execute(
            text(
                "UPDATE segmentation.audience_sync_queue SET status = :s, updated_at = :now "
                "WHERE audience = :a AND target = :t AND run_id = :r AND batch_no = :b AND status = 'pending'"
            ),
            {"s": new_status, "now": ts_param(conn, _now()), "a": audience.name, "t": audience.target,
             "r": run_id, "b": batch_no},
        ).rowcount
        if per_batch:
            _apply_state(conn, audience, run_id, op, "sent", batch_no)
    return n


def _commit_staged(engine: Engine, audience: Audience, run_id: str, op: str) -> int:
    """After a job ran / a file was written: staged rows of ``op`` become state; returns their count."""
    with engine.begin() as conn:
        _apply_state(conn, audience, run_id, op, "staged")
        return conn.execute(
            text(
                "UPDATE segmentation.audience_sync_queue SET status = 'sent', updated_at = :now "
                "WHERE audience = :a AND target = :t AND run_id = :r AND op = :op AND status = 'staged'"
            ),
            {"now": ts_param(conn, _now()), "a": audience.name, "t": audience.target, "r": run_id, "op": op},
        ).rowcount


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
            withdrawn = _withdrawn_consent(conn, audience) if state else set()
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
        summary.update(counts, invalid_by_kind=dict(membership.invalid))
        log.info(
            "audience %s (%s, %s): snapshot %s, %d in segments, %d without consent, %d eligible, %d hashed ids, "
            "%d invalid %s; to add %d, to remove %d (%d for withdrawn consent), accepted so far %d",
            audience.name, audience.destination, audience.mode, membership.snapshot_date, membership.in_segments,
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
                        finished_at=_now(), message="dry run: nothing sent" + (f"; {guard}" if too_many else ""))
            summary.update(status="dry_run", added=0, removed=0, failed=0, retried=0)
            return summary
        if too_many:
            raise AudienceSyncError(guard)

        batches = plan_batches(diff, audience.effective_batch_size)
        retried = _write_queue(engine, audience, run_id, batches)
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
                    n = _commit_batch(engine, audience, run_id, batch_no, op, kind, result.failed,
                                      dest.commit_per_batch)
                    if dest.commit_per_batch:
                        added, removed = (added + n, removed) if op == "add" else (added, removed + n)
                    log.info("audience %s: %s batch %d (%s, %d ids) recorded, %d rejected", audience.name, op,
                             batch_no, kind, len(hashes), len(result.failed))
                    if after_batch is not None:
                        after_batch(batch_no, op)
                figures.update(dest.complete(op))
                if not dest.commit_per_batch:
                    n = _commit_staged(engine, audience, run_id, op)
                    added, removed = (added + n, removed) if op == "add" else (added, removed + n)
            dest_figures = getattr(dest, "figures", None)
            if isinstance(dest_figures, dict):
                figures.update(dest_figures)
            if getattr(dest, "files", None):
                figures["files"] = list(dest.files)
        finally:
            dest.close()
        status = "partial" if failed else "success"
        message = (f"{failed} identifier(s) rejected by the destination; they are retried by the next run"
                   if failed else None)
        _update_run(engine, run_id, added=added, removed=removed, failed=failed, status=status, finished_at=_now(),
                    match_figures=json.dumps(figures, default=str, sort_keys=True), message=message)
        summary.update(status=status, added=added, removed=removed, failed=failed, retried=retried)
        log.info("audience %s: %s; added %d, removed %d, rejected %d, retried %d", audience.name, status, added,
                 removed, failed, retried)
        return summary
    except Exception as exc:
        _update_run(engine, run_id, status="failed", finished_at=_now(), message=_safe_message(exc))
        raise


def _safe_message(exc: BaseException) -> str:
    """Our own errors in full; others by type and first line only (drivers append bound parameters)."""
    if isinstance(exc, AudienceSyncError | DestinationError | CredentialsError | AudienceConfigError):
        return str(exc)[:1000]
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}"


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
