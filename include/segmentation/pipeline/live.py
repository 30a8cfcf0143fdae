"""Live assignment: between daily runs, give customers with new activity a segment from the published model.

One call (``live_assign``) does, in ONE transaction that holds the publish lock (PostgreSQL:
the publishers' advisory lock, tried without waiting; SQLite: the write lock, waited for at most
``lock_wait_seconds``), so it never interleaves with a daily publish:

1. reads the current snapshot (the date ``customer_segments`` shows) and its model
   (``segment_models``); nothing published, or no stored model: skipped, with the reason;
2. finds the customers with activity in ``[S 00:00 UTC, now)``: orders or returns, identified
   browsing events, sign-ups (``raw.customers.created_at``); they go to a temporary table;
3. computes their features with the daily definitions: the extract's own aggregate expressions
   (``sources/extract.py`` specs) restricted to those customers, over the model's window ending
   at ``now``, then ``build_features`` as of D = the first midnight at or after ``now`` (what the
   daily run of D would compute if nothing else happened before D);
4. assigns each to the nearest centroid of the published model (``PersistedModel.assign``);
5. replaces those customers' rows of ``customer_segments_live`` and drops rows the daily
   snapshot has since superseded (its date >= the live row's ``as_of_date``).

It never re-clusters and never writes a daily table. ``customer_segments_now`` (a view) shows the
live row when it saw data the daily snapshot did not (``as_of_date > snapshot_date``), else the
daily row. Re-running with the same ``now`` rewrites the same rows (idempotent).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from include.segmentation.model import build_features
from include.segmentation.model.persisted import PersistedModel
from include.segmentation.pipeline.types import LiveResult
from include.segmentation.sources.extract import _CUSTOMER_COLUMNS, subset_aggregate_sql
from include.segmentation.store import (
    bulk_insert,
    ensure_published_tables,
    is_sqlite,
    read_sql,
    table_exists,
    ts_param,
)
from include.segmentation.store.publish import PUBLISH_LOCK_KEY, grant_reader
from include.segmentation.store.schema import customer_segments_live

log = logging.getLogger("include.segmentation")

IDS = "live_ids"  # the run's temporary table of customer ids (dropped at commit)
VIEW = "customer_segments_now"
_LIVE_COLUMNS = [c.name for c in customer_segments_live.columns]


class LiveSkipped(Exception):
    """This live run cannot assign anything now (the reason says why); nothing was written."""


def as_of_date(now: datetime) -> date:
    """D: the first midnight (UTC) at or after ``now``; live features are those the daily run of D would compute."""
    day = now.date()
    return day if now.time() == dtime(0) else day + timedelta(days=1)


def _utc(now: datetime | str | None) -> datetime:
    if now is None:
        value = datetime.now(timezone.utc)
    elif isinstance(now, str):
        value = datetime.fromisoformat(now)
    else:
        value = now
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).replace(microsecond=0)


def view_sql(sqlite: bool) -> str:
    """``customer_segments_now``: the live row when it saw newer data than the daily snapshot, else the daily row.

    SQLite views may only name tables of their own (attached) database, unqualified."""
    q = "" if sqlite else "segmentation."
    null_ts = "NULL" if sqlite else "NULL::timestamptz"
    return (
        f"SELECT d.customer_id, d.segment_id, d.segment_name, d.confidence, d.is_outlier, 'daily' AS source, "
        f"d.snapshot_date AS as_of_date, d.snapshot_date AS model_snapshot_date, {null_ts} AS assigned_at "
        f"FROM {q}customer_segments d LEFT JOIN {q}customer_segments_live l "
        "ON l.customer_id = d.customer_id AND l.as_of_date > d.snapshot_date WHERE l.customer_id IS NULL "
        "UNION ALL "
        "SELECT l.customer_id, l.segment_id, l.segment_name, l.confidence, l.is_outlier, 'live' AS source, "
        "l.as_of_date, l.model_snapshot_date, l.assigned_at "
        f"FROM {q}customer_segments_live l LEFT JOIN {q}customer_segments d ON d.customer_id = l.customer_id "
        "WHERE d.customer_id IS NULL OR l.as_of_date > d.snapshot_date"
    )


def ensure_live_objects(engine: Engine) -> None:
    """The published tables (``segment_models``, ``customer_segments_live`` among them), the view, and grants."""
    ensure_published_tables(engine)
    with engine.begin() as conn:
        if is_sqlite(conn):
            conn.exec_driver_sql(f"CREATE VIEW IF NOT EXISTS segmentation.{VIEW} AS {view_sql(True)}")
        else:
            conn.execute(text("SELECT pg_advisory_xact_lock(718204330)"))  # the DDL lock (store.engine)
            conn.exec_driver_sql(f"CREATE OR REPLACE VIEW segmentation.{VIEW} AS {view_sql(False)}")
            grant_reader(conn)


def aggregates_for(conn: Connection, window_start: date, now: datetime) -> pd.DataFrame:
    """One row per customer of the ids table with the extract's aggregates over ``[window_start, now)``.

    Customers without activity in the window (a sign-up who has not bought or browsed) get empty
    aggregates, which ``build_features`` fills as documented (no orders, no sessions, ...)."""
    dialect = conn.dialect.name
    params = {"start": ts_param(conn, window_start), "cutoff": ts_param(conn, now)}
    ids = read_sql(conn, f"SELECT customer_id FROM {IDS}")
    tx = read_sql(conn, subset_aggregate_sql("tx", dialect, IDS), params)
    ev = read_sql(conn, subset_aggregate_sql("ev", dialect, IDS), params)
    attrs = read_sql(
        conn,
        f"SELECT customer_id, {', '.join(_CUSTOMER_COLUMNS)} FROM raw.customers "
        f"WHERE customer_id IN (SELECT customer_id FROM {IDS})",
    )
    out = ids
    for part in (tx, ev, attrs):
        out = out.merge(part, on="customer_id", how="left")
    return out


def _current(conn: Connection) -> tuple[date | None, PersistedModel | None]:
    snap = conn.execute(text("SELECT MAX(snapshot_date) FROM segmentation.customer_segments")).scalar()
    if snap is None:
        return None, None
    s = date.fromisoformat(str(snap)[:10])
    row = conn.execute(text("SELECT model FROM segmentation.segment_models WHERE snapshot_date = :s"), {"s": s}).first()
    return s, (PersistedModel.from_json(str(row[0])) if row is not None else None)


def collect_ids(conn: Connection, cutoff: datetime, now: datetime, customers: Sequence[str] | None) -> None:
    """Create and fill the temporary ids table (in the caller's transaction): the given customers, or
    everyone with activity in ``[cutoff, now)``."""
    if is_sqlite(conn):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{IDS}")
        conn.exec_driver_sql(f"CREATE TEMP TABLE {IDS} (customer_id TEXT PRIMARY KEY)")
    else:
        conn.exec_driver_sql(f"CREATE TEMP TABLE {IDS} (customer_id text PRIMARY KEY) ON COMMIT DROP")
    if customers is not None:
        unique = sorted({str(c) for c in customers})
        if unique:
            conn.execute(text(f"INSERT INTO {IDS} (customer_id) VALUES (:c)"), [{"c": c} for c in unique])
    else:
        conn.execute(
            text(
                f"INSERT INTO {IDS} (customer_id) "
                "SELECT customer_id FROM raw.transactions WHERE customer_id IS NOT NULL "
                "AND ordered_at >= :cutoff AND ordered_at < :now "
                "UNION SELECT customer_id FROM raw.browsing_events WHERE customer_id IS NOT NULL "
                "AND occurred_at >= :cutoff AND occurred_at < :now "
                "UNION SELECT customer_id FROM raw.customers WHERE created_at >= :cutoff AND created_at < :now"
            ),
            {"cutoff": ts_param(conn, cutoff), "now": ts_param(conn, now)},
        )
    conn.exec_driver_sql(f"ANALYZE {IDS}")


def assign_collected(
    conn: Connection, model: PersistedModel, now: datetime, seconds: dict[str, float] | None = None
) -> pd.DataFrame:
    """Features (daily definitions, as of D) and the model's assignment of the customers in the ids table."""
    timing = seconds if seconds is not None else {}
    d = as_of_date(now)
    t0 = time.perf_counter()
    aggregates = aggregates_for(conn, d - timedelta(days=model.window_days), now)
    features = build_features(aggregates, d, model.window_days)
    timing["features"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    assigned = model.assign(features)
    timing["assign"] = round(time.perf_counter() - t0, 3)
    return assigned


def _lock(conn: Connection) -> None:
    """PostgreSQL: take the publishers' lock without waiting (a daily publish holds it: skip)."""
    if not is_sqlite(conn) and not conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": PUBLISH_LOCK_KEY}).scalar():
        raise LiveSkipped("a daily run is publishing a snapshot right now; the next live run assigns with its model")


def _assign(conn: Connection, now: datetime, customers: Sequence[str] | None, run_id: str,
            seconds: dict[str, float]) -> dict[str, Any]:
    """Everything inside the locked transaction; raises LiveSkipped when there is nothing it may do."""
    _lock(conn)
    snapshot, model = _current(conn)
    if snapshot is None:
        raise LiveSkipped("nothing is published yet (customer_segments is empty): live assignment needs a daily snapshot")
    if model is None:
        raise LiveSkipped(f"the current snapshot {snapshot} has no stored model (segment_models): it was published "
                          "before models were stored; the next daily run stores one")
    cutoff = datetime.combine(snapshot, dtime(0), tzinfo=timezone.utc)
    if now < cutoff:
        raise LiveSkipped(f"now ({now:%Y-%m-%d %H:%M:%S} UTC) is before the current snapshot's cut-off ({snapshot} "
                          "00:00 UTC): the daily snapshot already holds everything up to then")
    d = as_of_date(now)
    t0 = time.perf_counter()
    collect_ids(conn, cutoff, now, customers)
    seconds["find"] = round(time.perf_counter() - t0, 3)
    assigned = assign_collected(conn, model, now, seconds)
    t0 = time.perf_counter()
    before = read_sql(conn, f"SELECT customer_id, segment_id, is_outlier FROM segmentation.{VIEW} "
                            f"WHERE customer_id IN (SELECT customer_id FROM {IDS})")
    prior = dict(zip(before["customer_id"].astype(str), before["segment_id"].astype(int), strict=True))
    prior_outlier = dict(zip(before["customer_id"].astype(str), before["is_outlier"].astype(bool), strict=True))
    conn.execute(text(f"DELETE FROM segmentation.customer_segments_live WHERE customer_id IN (SELECT customer_id FROM {IDS})"))
    rows = assigned.reset_index()
    rows["customer_id"] = rows["customer_id"].astype(str)
    rows["assigned_at"] = pd.Timestamp(now)
    rows["as_of_date"] = d.isoformat()
    rows["model_snapshot_date"] = snapshot.isoformat()
    rows["live_run_id"] = run_id
    bulk_insert(conn, "segmentation", "customer_segments_live", rows[_LIVE_COLUMNS])
    pruned = conn.execute(
        text(
            "DELETE FROM segmentation.customer_segments_live WHERE customer_id IN ("
            "SELECT l.customer_id FROM segmentation.customer_segments_live l "
            "JOIN segmentation.customer_segments d ON d.customer_id = l.customer_id "
            "WHERE d.snapshot_date >= l.as_of_date)"
        )
    ).rowcount
    if is_sqlite(conn):
        conn.exec_driver_sql(f"DROP TABLE temp.{IDS}")
    seconds["write"] = round(time.perf_counter() - t0, 3)
    ids = rows["customer_id"].tolist()
    changed = sum(1 for c, s in zip(ids, rows["segment_id"].astype(int), strict=True) if prior.get(c) != s)
    # What audiences see (audiences/membership.py): the segment and the outlier flag (include_outliers).
    moved = sum(1 for c, s, o in zip(ids, rows["segment_id"].astype(int), rows["is_outlier"].astype(bool), strict=True)
                if prior.get(c) != s or prior_outlier.get(c) != o)
    return {
        "snapshot": snapshot, "as_of": d, "customers": len(rows), "new_customers": sum(1 for c in ids if c not in prior),
        "changed_segment": changed, "changed_membership": moved, "pruned": int(pruned or 0),
        "outliers": int(rows["is_outlier"].sum()),
    }


def live_assign(
    engine: Engine,
    now: datetime | str | None = None,
    customers: Sequence[str] | None = None,
    lock_wait_seconds: float = 5.0,
) -> LiveResult:
    """Assign customers with activity since the current snapshot's cut-off (or ``customers``) with its model.

    ``now`` (default: the clock) bounds the data read, so a re-run with the same ``now`` writes the
    same rows. Returns counts; ``status`` is 'skipped' (with ``reason``) when nothing could be done."""
    started = time.perf_counter()
    at = _utc(now)
    run_id = f"live_{at:%Y%m%dT%H%M%S}"
    seconds: dict[str, float] = {}
    result: LiveResult = {
        "status": "skipped", "reason": "", "assigned_at": at.isoformat(), "as_of_date": None,
        "model_snapshot_date": None, "customers": 0, "new_customers": 0, "changed_segment": 0,
        "changed_membership": 0, "pruned": 0, "outliers": 0, "seconds": seconds,
    }
    try:
        with engine.connect() as conn:
            sqlite = is_sqlite(conn)
            if sqlite:  # every SQLite transaction takes the write lock: wait for it at most lock_wait_seconds
                conn.connection.dbapi_connection.execute(f"PRAGMA busy_timeout = {int(lock_wait_seconds * 1000)}")  # type: ignore[union-attr]
            try:
                exists = table_exists(conn, "segmentation", VIEW)
                conn.rollback()
                if not exists:
                    ensure_live_objects(engine)
                with conn.begin():
                    out = _assign(conn, at, customers, run_id, seconds)
            finally:
                if sqlite:
                    conn.connection.dbapi_connection.execute("PRAGMA busy_timeout = 60000")  # type: ignore[union-attr]
    except LiveSkipped as exc:
        result["reason"] = str(exc)
        log.warning("live assignment skipped: %s", exc)
        return result
    except OperationalError as exc:
        if "locked" not in str(exc).lower():
            raise
        result["reason"] = (f"the warehouse is being written (a daily publish?) and stayed locked for "
                            f"{lock_wait_seconds:g} s; the next live run tries again")
        log.warning("live assignment skipped: %s", result["reason"])
        return result
    seconds["total"] = round(time.perf_counter() - started, 3)
    result["status"] = "assigned"
    result["as_of_date"] = out["as_of"].isoformat()
    result["model_snapshot_date"] = out["snapshot"].isoformat()
    for key in ("customers", "new_customers", "changed_segment", "changed_membership", "pruned", "outliers"):
        result[key] = int(out[key])
    result["reason"] = (f"{out['customers']} customer(s) with activity since {out['snapshot']} 00:00 UTC assigned "
                        f"with the model of {out['snapshot']}" if customers is None else
                        f"{out['customers']} given customer(s) assigned with the model of {out['snapshot']}")
    if out["customers"] == 0:
        result["status"] = "skipped"
        result["reason"] = (f"no customer activity since {out['snapshot']} 00:00 UTC up to {at:%Y-%m-%d %H:%M:%S} UTC"
                            if customers is None else "no customers given")
    log.info(
        "live assignment: %s customers (%s new, %s changed segment, %s changed audience membership, %s outliers), "
        "%s superseded rows pruned, model %s, as of %s, %s", out["customers"], out["new_customers"],
        out["changed_segment"], out["changed_membership"], out["outliers"], out["pruned"], out["snapshot"], out["as_of"], seconds,
    )
    return result


def live_stage(engine: Engine, now: str | None = None) -> LiveResult:
    """The ``segment_assignment`` DAG's task: ``live_assign`` at the run's time (ISO string, UTC)."""
    return live_assign(engine, now)
