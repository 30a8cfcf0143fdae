"""The local scripts keep their outputs apart and leave the stack's DAGs runnable.

`make demo` (scripts/demo.sh) and the local stack (scripts/stack_up.sh) both write reports and Data
Docs; the demo writes under artifacts/demo/, the stack keeps artifacts/ (Browse -> Segment report).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = ROOT / "scripts"


def _env_after(script_lines: list[str], extra_env: dict[str, str] | None = None) -> str:
    """``$SEGMENTATION_ARTIFACTS_DIR`` after running ``script_lines`` in bash from the project root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGMENTATION_", "DEMO_", "CUSTSEG_"))}
    env.update(extra_env or {})
    body = "\n".join([*script_lines, 'printf %s "${SEGMENTATION_ARTIFACTS_DIR:-}"'])
    out = subprocess.run(["bash", "-c", body], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return out.stdout


def _demo_prelude() -> list[str]:
    """demo.sh up to and including its `source scripts/airflow_env.sh` (no install, no DAG run)."""
    lines = (SCRIPTS / "demo.sh").read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if line.strip() == "source scripts/airflow_env.sh")
    return [line for line in lines[: end + 1] if not line.startswith("cd ")]


def test_demo_writes_its_artifacts_apart_from_the_stack() -> None:
    demo = Path(_env_after(_demo_prelude()))
    assert demo == ROOT / "artifacts" / "demo"
    # Overridable on its own, without touching the stack's setting.
    assert _env_after(_demo_prelude(), {"DEMO_ARTIFACTS_DIR": "/tmp/elsewhere"}) == "/tmp/elsewhere"


def test_the_stack_keeps_artifacts() -> None:
    stack = _env_after(["source scripts/stack_env.sh"])
    # The stack leaves the variable unset (or on artifacts/), so its report stays in <project>/artifacts.
    assert stack in ("", str(ROOT / "artifacts"))


def test_stack_up_unpauses_both_dags() -> None:
    text = (SCRIPTS / "stack_up.sh").read_text()
    assert 'CUSTSEG_UNPAUSE_DAGS-customer_segmentation audience_sync' in text
    assert 'dags unpause "$dag_id"' in text
