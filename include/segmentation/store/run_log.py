"""Run log: one ``segmentation.segment_runs`` row per run, from 'running' to its final status."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, text

from include.segmentation.store.schema import RUN_STATUSES, segment_runs

_COLUMNS = [c.name for c in segment_runs.columns]


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _coerce(row: dict[str, Any], sqlite: bool) -> dict[str, Any]:
    out: dict[str, Any] = {c: row.get(c) for c in _COLUMNS}
    for key, value in out.items():
        if isinstance(value, dict | list):  # JSON columns: params, k_scores, effective_weights, ...
            out[key] = json.dumps(value, sort_keys=True, default=str)
    if isinstance(out["snapshot_date"], str):
        out["snapshot_date"] = date.fromisoformat(out["snapshot_date"])
    for key in ("started_at", "finished_at", "heartbeat_at"):
        v = out[key]
        if isinstance(v, str):
            v = datetime.fromisoformat(v)
        if isinstance(v, datetime) and sqlite:
            v = v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        out[key] = v
    for key in ("silhouette", "davies_bouldin", "calinski_harabasz"):
        if out[key] is not None:
            out[key] = float(out[key])
    return out


def upsert_run(conn: Connection, row: dict[str, Any], merge: bool = True) -> None:
    """Insert or replace the run's row; ``merge`` keeps stored fields that ``row`` does not set."""
    if row.get("status") not in RUN_STATUSES:
        raise ValueError(f"unknown run status {row.get('status')!r}")
    existing = conn.execute(text("SELECT * FROM segmentation.segment_runs WHERE run_id = :r"), {"r": row["run_id"]})
    current = existing.mappings().first() if merge else None
    merged = {**(dict(current) if current else {}), **{k: v for k, v in row.items() if v is not None}}
    if merged.get("status") != "running" and "finished_at" not in row:
        merged["finished_at"] = _now()
    values = _coerce(merged, conn.dialect.name == "sqlite")
    conn.execute(text("DELETE FROM segmentation.segment_runs WHERE run_id = :r"), {"r": row["run_id"]})
    conn.execute(
        text(f"INSERT INTO segmentation.segment_runs ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"),
        values,
    )


def mark_run(engine: Engine, run_id: str, status: str, message: str | None = None, **fields: Any) -> None:
    """Record a final (or intermediate) status for a run, in its own transaction."""
    with engine.begin() as conn:
        upsert_run(conn, {"run_id": run_id, "status": status, "message": message, **fields})


def get_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """The stored run row, or None."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM segmentation.segment_runs WHERE run_id = :r"), {"r": run_id}).mappings().first()
    return dict(row) if row else None


# Statuses a run can still move on from: 'failed' is set by a stage that Airflow may retry.
LIVE_STATUSES: tuple[str, ...] = ("running", "failed")


def heartbeat(engine: Engine, run_id: str) -> bool:
    """Record a sign of life of a run (every stage beats while it works); a retried run that a stage
    had marked 'failed' is 'running' again. False when the run is closed (published, superseded,
    abandoned, rejected, failed_validation) or unknown: it must not go on."""
    with engine.begin() as conn:
        res = conn.execute(
            text(
                "UPDATE segmentation.segment_runs SET heartbeat_at = :now, status = 'running' "
                "WHERE run_id = :r AND status IN ('running', 'failed')"
            ),
            {"r": run_id, "now": _ts(conn, _now())},
        )
    return bool(res.rowcount)


def _ts(conn: Connection, value: datetime) -> Any:
    return value.strftime("%Y-%m-%d %H:%M:%S") if conn.dialect.name == "sqlite" else value


def close_abandoned_runs(engine: Engine, stale_after: Any) -> list[dict[str, Any]]:
    """Close 'running' runs with no heartbeat for ``stale_after`` (their process is gone) as
    'abandoned'; returns the closed rows (run_id, snapshot_date). A run without a heartbeat yet
    counts from its start."""
    now = _now()
    cutoff = now - stale_after
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT run_id, snapshot_date, heartbeat_at, started_at FROM segmentation.segment_runs "
                "WHERE status = 'running' AND COALESCE(heartbeat_at, started_at) < :cutoff"
            ),
            {"cutoff": _ts(conn, cutoff)},
        ).mappings().all()
        for row in rows:
            last = row["heartbeat_at"] or row["started_at"]
            conn.execute(
                text(
                    "UPDATE segmentation.segment_runs SET status = 'abandoned', finished_at = :now, message = :m "
                    "WHERE run_id = :r AND status = 'running'"
                ),
                {
                    "r": row["run_id"],
                    "now": _ts(conn, now),
                    "m": f"abandoned: no sign of life since {str(last)[:19]} UTC (more than {stale_after}); "
                    "its process is gone. Nothing of it was published; trigger the date again.",
                },
            )
    return [{"run_id": r["run_id"], "snapshot_date": str(r["snapshot_date"])[:10]} for r in rows]
