"""Backfills on the real local stack, the way users start them from the UI.

scripts/stack_up.sh starts Airflow (API server, scheduler with LocalExecutor, DAG processor,
triggerer) on a fresh metadata database and a fresh warehouse database; small synthetic data is
generated with the project CLI; a backfill over five snapshot dates is created with the REST call
the UI's backfill dialog makes (POST /api/v2/backfills, JWT from POST /auth/token), two runs at a
time. Then the published tables are checked, and a second backfill of the same dates that
reprocesses completed runs must leave them identical.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.stack_helpers import DAG_ID, PG_ADMIN_URL, ROOT, LocalStack, day_range_body, running_stack

pytestmark = [pytest.mark.postgres]


def _stack(fn):
    """Marks of the tests that start the local stack."""
    return pytest.mark.slow(pytest.mark.stack(fn))


DATA_END = date(2024, 6, 30)  # last day with synthetic data
SNAPSHOTS = [date(2024, 6, 26) + timedelta(days=i) for i in range(5)]  # S = the run's logical date (UTC)
CUSTOMERS = 1000
MAX_ACTIVE_RUNS = 2


class _AlertSink(BaseHTTPRequestHandler):
    """Local stand-in for the alerting service's incoming webhook."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"path": self.path, "json": json.loads(body)})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def alert_sink():
    _AlertSink.received = []
    server = HTTPServer(("127.0.0.1", 0), _AlertSink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/T0/SECRETPART", _AlertSink.received
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, alert_sink):
    hook_url, _ = alert_sink
    with running_stack(tmp_path_factory.mktemp("stack"), extra_env={"SEGMENTATION_ALERT_WEBHOOK_URL": hook_url}) as st:
        st.cli(
            "generate", "--customers", str(CUSTOMERS), "--days", "400",
            "--end-date", DATA_END.isoformat(), "--seed", "42",
        )
        st.wait_for_dag()
        st.unpause()  # tasks of a paused DAG are never queued, backfill or not
        yield st


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@contextmanager
def _connected(url: str, **engine_kwargs: Any) -> Iterator[sa.Connection]:
    """A connection on an engine of its own, disposed afterwards (each check reads one database once)."""
    engine = sa.create_engine(url, **engine_kwargs)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _all(conn: sa.Connection, sql: str) -> list[Any]:
    return list(conn.execute(sa.text(sql)).all())


def _run_backfill(stack: LocalStack, reprocess: str) -> dict[str, Any]:
    body = day_range_body(SNAPSHOTS[0], SNAPSHOTS[-1], max_active_runs=MAX_ACTIVE_RUNS, reprocess_behavior=reprocess)
    planned = stack.backfill_dry_run(body)
    assert [_parse(d).date() for d in planned] == SNAPSHOTS
    created = stack.create_backfill(body)
    assert created["reprocess_behavior"] == reprocess and created["max_active_runs"] == MAX_ACTIVE_RUNS
    done = stack.wait_backfill(created["id"])
    runs = [r for r in stack.dag_runs() if r["run_type"] == "backfill"]
    tis = {r["dag_run_id"]: stack.task_instances(r["dag_run_id"]) for r in runs}
    return {
        "backfill": done, "runs": runs, "tis": tis,
        "tables": published_tables(stack.warehouse_url), "segment_runs": run_rows(stack.warehouse_url),
    }


# Lineage, not content: every run attempt has its own id (include/segmentation/pipeline/,
# make_run_id), and published rows carry the id of the attempt that published them.
LINEAGE_COLUMNS = {"run_id", "validation_id", "data_docs"}  # data_docs: a path under the attempt id
# Append-only logs: a re-run adds its own rows; compared as distinct content. For quality_results
# only the verdicts are compared: observed values such as the age of the latest record depend on
# each attempt's clock, and an all-NULL check's severity escalates to error once an earlier
# validation has seen values in the column (history-dependent by design, docs/data_quality.md).
AUDIT_LOGS = {"quality_results"}
AUDIT_COLUMNS = {
    "quality_results": ["snapshot_date", "suite", "check_name", "table_name", "column_name", "status", "success"],
}


def published_tables(url: str) -> dict[str, list[tuple]]:
    """What the pipeline publishes, table by table, as a sorted row set: lineage ids and timestamps
    left out (they record which attempt ran and when, not what it published), segment_runs reduced
    to its published rows, audit logs to their distinct rows."""
    out: dict[str, list[tuple]] = {}
    with _connected(url) as conn:
        insp = sa.inspect(conn)
        for table in sorted(insp.get_table_names(schema="segmentation")):
            if table.startswith("stg_"):
                continue
            cols = AUDIT_COLUMNS.get(table) or [
                c["name"] for c in insp.get_columns(table, schema="segmentation")
                if not isinstance(c["type"], sa.DateTime) and c["name"] not in LINEAGE_COLUMNS
            ]
            distinct = "DISTINCT " if table in AUDIT_LOGS else ""
            where = " WHERE status = 'published'" if table == "segment_runs" else ""
            sql = f'SELECT {distinct}{", ".join(cols)} FROM segmentation."{table}"{where}'
            out[table] = sorted((tuple(r) for r in _all(conn, sql)), key=repr)
    return out


def run_rows(url: str) -> list[Any]:
    with _connected(url) as conn:
        return _all(conn, "SELECT run_id, snapshot_date, status FROM segmentation.segment_runs")


def table_differences(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> dict[str, str]:
    """Per table that differs: how many rows only one side has."""
    diffs = {}
    for table in sorted(set(before) | set(after)):
        b, a = before.get(table, []), after.get(table, [])
        if b != a:
            sb, sa_ = set(b), set(a)
            diffs[table] = f"{len(b)} rows before, {len(a)} after; {len(sb - sa_)} only before, {len(sa_ - sb)} only after"
    return diffs


@pytest.fixture(scope="module")
def first_backfill(stack: LocalStack) -> dict[str, Any]:
    return _run_backfill(stack, "none")


@_stack
def test_backfill_publishes_one_snapshot_per_date(stack: LocalStack, first_backfill: dict[str, Any]) -> None:
    runs = first_backfill["runs"]
    assert sorted(_parse(r["logical_date"]).date() for r in runs) == SNAPSHOTS
    failed = {r["dag_run_id"]: r["state"] for r in runs if r["state"] != "success"}
    assert not failed, f"backfill runs not successful: {failed}\n{stack.diagnostics()}"
    # No task needed a retry: a deadlock or a clobbered staging table between overlapping runs would.
    for run_id, tis in first_backfill["tis"].items():
        assert tis, run_id
        retried = [t["task_id"] for t in tis if t["try_number"] != 1 or t["state"] != "success"]
        assert not retried, f"{run_id}: {retried} needed a retry; first attempt:\n" + "\n".join(
            stack.attempt_errors(run_id, task_id, 1) for task_id in retried
        )

    with _connected(stack.warehouse_url) as conn:
        runs_rows = _all(conn, "SELECT run_id, snapshot_date, status, population FROM segmentation.segment_runs")
        history = _all(
            conn,
            "SELECT snapshot_date, run_id, count(*) AS n, count(DISTINCT customer_id) AS d "
            "FROM segmentation.customer_segments_history GROUP BY snapshot_date, run_id",
        )
        current = _all(conn, "SELECT snapshot_date, run_id, count(*) FROM segmentation.customer_segments GROUP BY 1, 2")
        current_vs_history = conn.execute(
            sa.text(
                "SELECT count(*) FROM segmentation.customer_segments c "
                "JOIN segmentation.customer_segments_history h "
                "  ON h.snapshot_date = c.snapshot_date AND h.customer_id = c.customer_id "
                " AND h.segment_id = c.segment_id AND h.run_id = c.run_id"
            )
        ).scalar_one()

    # segment_runs: one attempt per date (no retries above), published; nothing left running.
    assert sorted(r.snapshot_date for r in runs_rows) == SNAPSHOTS
    assert {r.status for r in runs_rows} == {"published"}
    run_of = {r.snapshot_date: r.run_id for r in runs_rows}
    # history: one snapshot per date, written by that date's own run, one row per customer.
    assert sorted(h.snapshot_date for h in history) == SNAPSHOTS
    for h in history:
        assert h.run_id == run_of[h.snapshot_date]
        assert h.n == h.d > 0
        assert h.n <= CUSTOMERS
    # customer_segments: the newest snapshot only, equal to its history rows.
    latest = max(SNAPSHOTS)
    assert len(current) == 1 and current[0][0] == latest and current[0][1] == run_of[latest]
    n_latest = next(h.n for h in history if h.snapshot_date == latest)
    assert current[0][2] == n_latest == current_vs_history


@_stack
def test_backfill_runs_overlap_within_the_cap(first_backfill: dict[str, Any]) -> None:
    spans = [(_parse(r["start_date"]), _parse(r["end_date"])) for r in first_backfill["runs"]]
    overlapping = [(a, b) for a, b in combinations(spans, 2) if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, f"no two backfill runs were active at the same time: {spans}"
    # The backfill's max_active_runs is honoured: never more than that many runs at once.
    for start, _ in spans:
        active = sum(1 for s, e in spans if s <= start < e)
        assert active <= MAX_ACTIVE_RUNS


@_stack
def test_reprocessing_completed_runs_gives_identical_tables(
    stack: LocalStack, first_backfill: dict[str, Any]
) -> None:
    second = _run_backfill(stack, "completed")
    states = {r["dag_run_id"]: r["state"] for r in second["runs"]}
    assert set(states) == set(r["dag_run_id"] for r in first_backfill["runs"])  # the same runs, re-run
    assert set(states.values()) == {"success"}, f"{states}\n{stack.diagnostics()}"
    # Every run really ran again (a later start than in the first backfill).
    first_start = {r["dag_run_id"]: _parse(r["start_date"]) for r in first_backfill["runs"]}
    assert all(_parse(r["start_date"]) > first_start[r["dag_run_id"]] for r in second["runs"])

    # Lineage: each date now has the re-run's attempt published and the first one superseded.
    first_ids = {r.snapshot_date: r.run_id for r in first_backfill["segment_runs"]}
    by_date: dict[date, dict[str, str]] = {}
    for r in second["segment_runs"]:
        by_date.setdefault(r.snapshot_date, {})[r.run_id] = r.status
    assert sorted(by_date) == SNAPSHOTS
    for day, attempts in by_date.items():
        assert attempts[first_ids[day]] == "superseded", day
        assert sorted(attempts.values()) == ["published", "superseded"], (day, attempts)

    # Content: what consumers read is the same.
    before, after = first_backfill["tables"], second["tables"]
    assert before["customer_segments_history"], "nothing was published"
    diffs = table_differences(before, after)
    assert not diffs, "re-running the same dates changed the published tables:\n" + "\n".join(
        f"  segmentation.{t}: {d}" for t, d in diffs.items()
    )


@_stack
def test_stack_state_lives_in_its_own_folder(stack: LocalStack) -> None:
    """The stack keeps pid files, process logs, task logs and its secrets under its state folder."""
    run_dir = stack.run_dir
    for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert (run_dir / f"{name}.pid").read_text().strip().isdigit()
        assert (run_dir / f"{name}.log").stat().st_size > 0
    secrets = Path(stack.state_dir) / "secrets.env"
    assert secrets.stat().st_mode & 0o077 == 0, "secrets.env must be private to its owner"
    assert any((stack.state_dir / "logs").rglob("*.log")), "task logs are written under the state folder"
    # The secrets never reach the process logs.
    values = [line.split("=", 1)[1] for line in secrets.read_text().splitlines() if "=" in line]
    for log in run_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        assert not any(v and v in text for v in values), log.name
    assert DAG_ID in [d["dag_id"] for d in stack.api_json("GET", "/dags")["dags"]]


@_stack
def test_stack_up_is_idempotent(stack: LocalStack) -> None:
    """Running the documented start command again keeps the running components."""
    before = stack.pids()
    out = stack.start()
    assert "all components already running" in out
    assert stack.pids() == before
    health = stack.api_json("GET", "/monitor/health")
    assert {k: health[k]["status"] for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == dict.fromkeys(
        ("metadatabase", "scheduler", "triggerer", "dag_processor"), "healthy"
    )



@_stack
def test_a_failed_run_sends_an_alert(stack: LocalStack, alert_sink) -> None:
    """The DAG's on_failure_callback reaches the configured webhook, without personal data or the URL's secret.
    (Runs last in this module: it leaves a failed run for a date before the data starts.)"""
    hook_url, received = alert_sink
    received.clear()
    day = date(2023, 1, 2)  # no data before 2023-05-28: the run must fail, and say so
    created = stack.create_backfill(day_range_body(day, day, max_active_runs=1))
    stack.wait_backfill(created["id"])
    run = next(r for r in stack.dag_runs() if _parse(r["logical_date"]).date() == day)
    assert run["state"] == "failed"
    failed_tasks = {t["task_id"] for t in stack.task_instances(run["dag_run_id"]) if t["state"] == "failed"}
    assert failed_tasks
    deadline = time.monotonic() + 60
    while not received and time.monotonic() < deadline:
        time.sleep(1)
    assert received, f"no alert reached the webhook\n{stack.diagnostics()}"
    alerts = [r["json"] for r in received]
    assert {r["path"] for r in received} == {"/hooks/T0/SECRETPART"}
    assert {a["task_id"] for a in alerts} == failed_tasks
    for a in alerts:
        assert a["dag_id"] == DAG_ID and a["run_id"] == run["dag_run_id"] and a["error_type"]
        assert a["logical_date"].startswith(day.isoformat())
        assert f"task {a['task_id']} failed" in a["text"]
        assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", json.dumps(a)), "no e-mail addresses in alerts"
    for task_id in failed_tasks:
        assert "SECRETPART" not in stack.attempt_log(run["dag_run_id"], task_id, 1, lines=10_000)
    for log in stack.run_dir.glob("*.log"):
        assert "SECRETPART" not in log.read_text(errors="replace"), log.name

# --- the compose warehouse's initialisation, on a real PostgreSQL -------------------------------


_CATALOG_QUERIES = {
    "columns": "SELECT table_schema, table_name, column_name, ordinal_position, data_type, is_nullable, "
    "numeric_precision, numeric_scale, column_default FROM information_schema.columns "
    "WHERE table_schema IN ('raw', 'evaluation')",
    "constraints": "SELECT tc.table_schema, tc.table_name, tc.constraint_type, "
    "string_agg(kcu.column_name, ',' ORDER BY kcu.ordinal_position) FROM information_schema.table_constraints tc "
    "JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name "
    " AND kcu.table_schema = tc.table_schema WHERE tc.table_schema IN ('raw', 'evaluation') "
    "GROUP BY 1, 2, 3, tc.constraint_name",
    "indexes": "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes "
    "WHERE schemaname IN ('raw', 'evaluation')",
}


def _catalog(url: str) -> dict[str, list[tuple]]:
    """Columns, constraints and indexes of schemas raw and evaluation."""
    with _connected(url) as conn:
        return {k: sorted(tuple(r) for r in _all(conn, sql)) for k, sql in _CATALOG_QUERIES.items()}


def _admin(sql: str) -> None:
    with _connected(PG_ADMIN_URL, isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(sql)


def _denied(engine: sa.Engine, sql: str) -> None:
    """``sql`` fails for lack of privilege."""
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        with engine.begin() as conn:
            conn.execute(sa.text(sql))


def test_compose_warehouse_init_gives_the_contract_and_least_privilege_roles(pg_url: str) -> None:
    """docker/warehouse-init/ run as the postgres image runs it: the same catalog as init-warehouse,
    a writer that reads raw.* and owns segmentation, a reader that sees only what it is granted."""
    from include.segmentation.sources import create_source_contract
    from include.segmentation.store import ensure_segmentation_tables, get_engine

    reference = get_engine(pg_url)
    create_source_contract(reference)
    reference.dispose()

    suffix = uuid.uuid4().hex[:8]
    db, writer, reader = f"custseg_initsql_{suffix}", f"custseg_w_{suffix}", f"custseg_r_{suffix}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    host_url = sa.engine.make_url(PG_ADMIN_URL)
    _admin(f"CREATE DATABASE {db}")
    try:
        admin_db = sa.create_engine(f"{base}/{db}")
        with admin_db.begin() as conn:
            conn.exec_driver_sql((ROOT / "docker" / "warehouse-init" / "01_contract.sql").read_text())
        admin_db.dispose()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PG")},
            "PGHOST": host_url.host or "127.0.0.1", "PGPORT": str(host_url.port or 5432),
            "POSTGRES_USER": host_url.username or "postgres", "POSTGRES_DB": db,
            "WAREHOUSE_WRITER_ROLE": writer, "WAREHOUSE_READER_ROLE": reader,
            "WAREHOUSE_WRITER_PASSWORD": "w-pass", "WAREHOUSE_READER_PASSWORD": "r-pass",
        }
        for _ in range(2):  # idempotent
            proc = subprocess.run(["bash", str(ROOT / "docker" / "warehouse-init" / "02_roles.sh")],
                                  env=env, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stderr
            assert "w-pass" not in proc.stdout + proc.stderr and "r-pass" not in proc.stdout + proc.stderr

        assert _catalog(f"{base}/{db}") == _catalog(pg_url)

        as_writer = get_engine(f"postgresql+psycopg2://{writer}@{host_url.host}:{host_url.port or 5432}/{db}")
        as_reader = sa.create_engine(f"postgresql+psycopg2://{reader}@{host_url.host}:{host_url.port or 5432}/{db}")
        try:
            with as_writer.connect() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM raw.customers")).scalar_one() == 0
            _denied(as_writer, "DELETE FROM raw.customers")
            ensure_segmentation_tables(as_writer)  # the pipeline creates its tables in segmentation
            with as_writer.begin() as conn:
                conn.exec_driver_sql(f"GRANT SELECT ON segmentation.segment_runs TO {reader}")
            with as_reader.connect() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM segmentation.segment_runs")).scalar_one() == 0
            for sql in ("SELECT 1 FROM raw.customers", "SELECT 1 FROM segmentation.customer_segments_history",
                        "DELETE FROM segmentation.segment_runs"):
                _denied(as_reader, sql)
        finally:
            as_writer.dispose()
            as_reader.dispose()
    finally:
        _admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        _admin(f"DROP ROLE IF EXISTS {writer}")
        _admin(f"DROP ROLE IF EXISTS {reader}")
