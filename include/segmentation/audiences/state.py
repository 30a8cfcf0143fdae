"""Sync state: the queue of one run's changes and the members the destination has accepted.

``segmentation.audience_sync_queue`` holds a run's diff, row by row ``pending`` -> ``staged``
(sent, waiting for a Google Ads job or file) -> ``sent``, or ``failed`` when the platform rejected
it. ``segmentation.audience_members`` is what the destination has *accepted*: it changes only
in the transaction that marks queue rows ``sent``, so rows not confirmed (rejected, or a run that
died half-way) stay out of it and the next run's diff sends them again.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Text, bindparam, text

from include.segmentation.audiences.config import Audience
from include.segmentation.audiences.membership import Key
from include.segmentation.store import bulk_insert, ts_param

_KEY_CHUNK = 5_000  # hashes per IN list (well under SQLite's variable limit)


def utc_now() -> datetime:
    """Now, timezone-aware UTC: the time stamped on queue, member and run rows."""
    return datetime.now(timezone.utc)


def load_state(conn: Connection, audience: Audience) -> set[Key]:
    """The hashed identifiers the destination has accepted for this audience and target."""
    rows = conn.execute(
        text("SELECT id_type, hashed_id FROM segmentation.audience_members WHERE audience = :a AND target = :t"),
        {"a": audience.name, "t": audience.target},
    )
    return {(str(r[0]), str(r[1])) for r in rows}


def write_queue(engine: Engine, audience: Audience, run_id: str,
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
            frame["updated_at"] = pd.Timestamp(utc_now())
            bulk_insert(conn, "segmentation", "audience_sync_queue", frame,
                        ["audience", "target", "id_type", "hashed_id", "op", "run_id", "batch_no", "status",
                         "error", "updated_at"])
        return sum(1 for op, kind, h, _ in rows if (op, kind, h) in unfinished)


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
        frame["added_at"] = pd.Timestamp(utc_now())
        frame["run_id"] = run_id
        bulk_insert(conn, "segmentation", "audience_members", frame,
                    ["audience", "target", "id_type", "hashed_id", "added_at", "run_id"])


def _mark_failed(conn: Connection, audience: Audience, run_id: str, id_type: str, failed: dict[str, str]) -> None:
    """Mark this run's queue rows of ``failed`` (hash -> platform reason) as ``failed``, with the reason."""
    if not failed:
        return
    conn.execute(
        text(
            "UPDATE segmentation.audience_sync_queue SET status = 'failed', error = :e, updated_at = :now "
            "WHERE audience = :a AND target = :t AND run_id = :r AND id_type = :k AND hashed_id = :h"
        ),
        [
            {"e": reason[:300], "now": ts_param(conn, utc_now()), "a": audience.name, "t": audience.target,
             "r": run_id, "k": id_type, "h": h}
            for h, reason in failed.items()
        ],
    )


def commit_batch(engine: Engine, audience: Audience, run_id: str, batch_no: int, op: str, id_type: str,
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
            {"s": new_status, "now": ts_param(conn, utc_now()), "a": audience.name, "t": audience.target,
             "r": run_id, "b": batch_no},
        ).rowcount
        if per_batch:
            _apply_state(conn, audience, run_id, op, "sent", batch_no)
    return n


def commit_staged(engine: Engine, audience: Audience, run_id: str, op: str) -> int:
    """After a job ran / a file was written: staged rows of ``op`` become state; returns their count."""
    with engine.begin() as conn:
        _apply_state(conn, audience, run_id, op, "staged")
        return conn.execute(
            text(
                "UPDATE segmentation.audience_sync_queue SET status = 'sent', updated_at = :now "
                "WHERE audience = :a AND target = :t AND run_id = :r AND op = :op AND status = 'staged'"
            ),
            {"now": ts_param(conn, utc_now()), "a": audience.name, "t": audience.target, "r": run_id, "op": op},
        ).rowcount


