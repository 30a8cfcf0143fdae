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
    for key in ("params", "k_scores"):
        if out[key] is not None and not isinstance(out[key], str):
            out[key] = json.dumps(out[key], sort_keys=True, default=str)
    if isinstance(out["snapshot_date"], str):
        out["snapshot_date"] = date.fromisoformat(out["snapshot_date"])
    for key in ("started_at", "finished_at"):
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
