"""Helpers for the tests that run the real local Airflow stack (scripts/stack_up.sh / stack_down.sh).

A :class:`LocalStack` has its own state folder, free ports, metadata database and warehouse
database, so it never touches a developer's stack; ``stop()`` drops both databases.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
DAG_ID = "customer_segmentation"
LOG_PORT_OFFSETS = (713, 714)  # scheduler and triggerer log servers, see scripts/stack_env.sh


def _port_free(port: int, host: str = "0.0.0.0") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_stack_port() -> int:
    """A port P with P, P+713 and P+714 free (API server and the two log servers)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + max(LOG_PORT_OFFSETS) < 65536 and all(_port_free(port + o) for o in (0, *LOG_PORT_OFFSETS)):
            return port
    raise RuntimeError("no free port block for the stack")


def _alive_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _admin_exec(sql: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        admin.dispose()


def clean_env() -> dict[str, str]:
    """The caller's environment without the test session's Airflow and warehouse settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "CUSTSEG_"))}
    env.pop("WAREHOUSE_URL", None)
    env.pop("PYTHONPATH", None)
    return env


@dataclass
class LocalStack:
    """One isolated instance of the documented local stack."""

    state_dir: Path
    port: int = field(default_factory=free_stack_port)
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    extra_env: dict[str, str] = field(default_factory=dict)
    _token: str | None = None

    @property
    def meta_db(self) -> str:
        return f"custseg_stack_meta_{self.suffix}"

    @property
    def warehouse_db(self) -> str:
        return f"custseg_stack_wh_{self.suffix}"

    @property
    def warehouse_url(self) -> str:
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.warehouse_db

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    def env(self) -> dict[str, str]:
        env = clean_env()
        env.update(
            {
                "CUSTSEG_STACK_DIR": str(self.state_dir),
                # The tests drive the DAGs themselves: keep them paused so no scheduled run interferes.
                "CUSTSEG_UNPAUSE_DAGS": "",
                "CUSTSEG_PORT": str(self.port),
                "CUSTSEG_META_DB": self.meta_db,
                "CUSTSEG_WAREHOUSE_DB": self.warehouse_db,
                "CUSTSEG_SKIP_SETUP": "1",
                "CUSTSEG_STOP_GRACE": "15",
                # Reports and data docs that runs write stay with this stack.
                "SEGMENTATION_ARTIFACTS_DIR": str(self.state_dir / "artifacts"),
                # Tests drive runs by backfills only: no scheduled run for "today" appears mid-test.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            }
        )
        # A developer may point the tests at another DAG folder (e.g. while the DAG is being written).
        if os.environ.get("CUSTSEG_TEST_DAGS_FOLDER"):
            env["CUSTSEG_DAGS_FOLDER"] = os.environ["CUSTSEG_TEST_DAGS_FOLDER"]
        env.update(self.extra_env)
        return env

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 420) -> str:
        """Run scripts/stack_up.sh; return its output."""
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "stack_up.sh")],
            env=self.env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"stack_up.sh failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc.stdout

    def pids(self) -> dict[str, int]:
        """Component name -> pid, from the pid files."""
        return {p.stem: int(p.read_text().strip()) for p in self.run_dir.glob("*.pid")}

    def stop(self) -> None:
        """Run scripts/stack_down.sh --purge, check nothing of the stack survived, drop the warehouse."""
        leaders = self.pids() if self.run_dir.exists() else {}
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "stack_down.sh"), "--purge"],
            env=self.env(), cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        _admin_exec(f"DROP DATABASE IF EXISTS {self.meta_db} WITH (FORCE)")
        _admin_exec(f"DROP DATABASE IF EXISTS {self.warehouse_db} WITH (FORCE)")
        if proc.returncode != 0:
            raise RuntimeError(f"stack_down.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        survivors = [pid for pid in leaders.values() if _alive_group(pid)]
        if survivors:
            raise RuntimeError(f"stack_down.sh left process groups running: {survivors}")

    def cli(self, *args: str, timeout: float = 600) -> str:
        """Run the project CLI against this stack's warehouse."""
        env = clean_env()
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.run(
            [sys.executable, "-m", "include.segmentation.cli", "--warehouse", self.warehouse_url, *args],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cli {args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return proc.stdout

    # --- REST API (what the UI calls) --------------------------------------------------------
    def token(self, username: str = "admin", password: str = "admin") -> str:
        """JWT from POST /auth/token (SimpleAuthManager), as the UI's login form does."""
        r = requests.post(f"{self.url}/auth/token", json={"username": username, "password": password}, timeout=30)
        r.raise_for_status()
        return r.json()["access_token"]

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if self._token is None:
            self._token = self.token()
        headers = {"Authorization": f"Bearer {self._token}"}
        return requests.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=60, **kwargs)

    def api_json(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.api(method, path, **kwargs)
        if r.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {r.status_code}: {r.text[:2000]}")
        return r.json()

    def wait_for_dag(self, dag_id: str = DAG_ID, timeout: float = 180) -> dict[str, Any]:
        """Wait until the DAG processor has parsed ``dag_id``; fail fast on an import error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.api("GET", f"/dags/{dag_id}")
            if r.status_code == 200:
                return r.json()
            errors = self.api_json("GET", "/importErrors").get("import_errors", [])
            if errors:
                raise AssertionError(f"DAG import errors: {[e.get('filename') for e in errors]}\n{errors[0].get('stack_trace', '')[-3000:]}")
            time.sleep(2)
        raise AssertionError(f"DAG {dag_id} not parsed after {timeout}s")

    def unpause(self, dag_id: str = DAG_ID) -> None:
        self.api_json("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def backfill_dry_run(self, body: dict[str, Any]) -> list[str]:
        out = self.api_json("POST", "/backfills/dry_run", json=body)
        return [b["logical_date"] for b in out["backfills"]]

    def create_backfill(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.api_json("POST", "/backfills", json=body)

    def wait_backfill(self, backfill_id: int, timeout: float = 900) -> dict[str, Any]:
        """Poll GET /backfills/{id} until the scheduler marks it complete."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            b = self.api_json("GET", f"/backfills/{backfill_id}")
            if b.get("completed_at"):
                return b
            time.sleep(3)
        raise AssertionError(f"backfill {backfill_id} not complete after {timeout}s:\n{self.diagnostics()}")

    def dag_runs(self, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        return self.api_json("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "logical_date"})[
            "dag_runs"
        ]

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        return self.api_json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})[
            "task_instances"
        ]

    def attempt_log(self, run_id: str, task_id: str, attempt: int, lines: int = 60) -> str:
        """The tail of one task attempt's log file (under the stack's state folder)."""
        logs = self.state_dir / "logs"
        for f in logs.glob(f"dag_id=*/run_id={run_id}/task_id={task_id}/attempt={attempt}.log"):
            return "\n".join(f.read_text(errors="replace").splitlines()[-lines:])
        return f"(no log for {run_id} {task_id} attempt {attempt})"

    def attempt_errors(self, run_id: str, task_id: str, attempt: int) -> str:
        """The error events of one task attempt (exception type and message), short."""
        import json

        out = []
        for line in self.attempt_log(run_id, task_id, attempt, lines=100_000).splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("level") in ("error", "critical"):
                details = "; ".join(
                    f"{d.get('exc_type')}: {str(d.get('exc_value', '')).splitlines()[0][:300]}"
                    for d in event.get("error_detail", [])[:1]
                )
                out.append(f"{run_id} {task_id} try {attempt}: {event.get('event')} {details}".strip())
        return "\n".join(out) or f"{run_id} {task_id} try {attempt}: no error event in its log"

    def failure_summary(self, run_ids: list[str] | None = None) -> str:
        """For runs that did not succeed: each failed task's error, from its last attempt's log."""
        lines = []
        for run in self.dag_runs():
            if run["state"] == "success" or (run_ids is not None and run["dag_run_id"] not in run_ids):
                continue
            for ti in self.task_instances(run["dag_run_id"]):
                if ti["state"] in ("failed", "up_for_retry"):
                    lines.append(self.attempt_errors(run["dag_run_id"], ti["task_id"], int(ti["try_number"] or 1)))
        return "\n".join(lines)

    def diagnostics(self, lines: int = 15) -> str:
        """Failed tasks' errors and the tails of the component logs, for assertion messages."""
        parts = [self.failure_summary()]
        for name in ("scheduler", "dag-processor", "api-server"):
            log = self.run_dir / f"{name}.log"
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {name}.log\n" + "\n".join(line[:300] for line in tail))
        return "\n".join(parts)


@contextmanager
def running_stack(state_dir: Path, **kwargs: Any) -> Iterator[LocalStack]:
    """Start a fresh stack, yield it, always stop it and drop its databases."""
    stack = LocalStack(state_dir=state_dir, **kwargs)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def day_range_body(first: date, last: date, **extra: Any) -> dict[str, Any]:
    """Backfill request covering the snapshot dates first..last (runs at 02:00 UTC fall inside)."""
    return {
        "dag_id": DAG_ID,
        "from_date": datetime(first.year, first.month, first.day, tzinfo=timezone.utc).isoformat(),
        "to_date": datetime(last.year, last.month, last.day, 23, 59, 59, tzinfo=timezone.utc).isoformat(),
        **extra,
    }
