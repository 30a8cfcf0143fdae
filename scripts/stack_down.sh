#!/usr/bin/env bash
# Stop the local Airflow stack started by scripts/stack_up.sh (same CUSTSEG_* settings).
# Each component was started as the leader of its own process group (pid files in $CUSTSEG_RUN_DIR).
# Stop = snapshot every process of those groups and every descendant of the leaders, TERM them,
# wait up to CUSTSEG_STOP_GRACE seconds (default 20), KILL what is left. Only those processes are
# ever signalled, identified by pid and start time (never by name).
# Options: --purge  also drop the metadata database and delete the state folder (the warehouse is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/stack_env.sh
source scripts/stack_env.sh
PURGE=0
for arg in "$@"; do
  case "$arg" in
    --purge) PURGE=1 ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
  esac
done

"$CUSTSEG_VENV/bin/python" - <<'EOF'
import os
import signal
import sys
from pathlib import Path

import psutil

run_dir = Path(os.environ["CUSTSEG_RUN_DIR"])
grace = float(os.environ.get("CUSTSEG_STOP_GRACE", "20"))
leaders: dict[str, psutil.Process] = {}
for pidfile in sorted(run_dir.glob("*.pid")):
    try:
        proc = psutil.Process(int(pidfile.read_text().strip()))
        # A recycled pid is not ours: it must still lead its group and be an airflow process.
        if os.getpgid(proc.pid) == proc.pid and "airflow" in " ".join(proc.cmdline()):
            leaders[pidfile.stem] = proc
    except (ValueError, OSError, psutil.Error):
        pass

members: dict[int, psutil.Process] = {}
groups = {p.pid for p in leaders.values()}
for proc in psutil.process_iter():
    try:
        if os.getpgid(proc.pid) in groups:
            members[proc.pid] = proc
    except (OSError, psutil.Error):
        pass
for leader in leaders.values():
    try:
        for child in [leader, *leader.children(recursive=True)]:
            members[child.pid] = child
    except psutil.Error:
        pass

for name, leader in leaders.items():
    try:
        os.killpg(leader.pid, signal.SIGTERM)
        print(f"stack_down: sent TERM to {name} (process group {leader.pid})")
    except OSError:
        pass
for proc in members.values():  # descendants that left their group
    try:
        if proc.is_running():
            proc.terminate()
    except psutil.Error:
        pass
_, alive = psutil.wait_procs(list(members.values()), timeout=grace)
if alive:
    print(f"stack_down: killing {len(alive)} process(es) still running after {grace:g}s")
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=10)
for pidfile in run_dir.glob("*.pid"):
    pidfile.unlink()
if alive:
    print(f"stack_down: ERROR: still alive: {sorted(p.pid for p in alive)}", file=sys.stderr)
    sys.exit(1)
print("stack_down: stopped" if leaders else "stack_down: nothing was running")
EOF

if [ "$PURGE" = "1" ]; then
  "$CUSTSEG_VENV/bin/python" - <<'EOF'
import os

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from include.segmentation.store import validate_identifier

url = make_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
name = validate_identifier(url.database, "database name")
admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
with admin.connect() as conn:
    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
admin.dispose()
print(f"stack_down: dropped metadata database {name}")
EOF
  # Only a folder that stack_up.sh made (it has run/ and secrets.env) is ever deleted.
  if [ -d "$CUSTSEG_STACK_DIR/run" ] && [ -f "$CUSTSEG_STACK_DIR/secrets.env" ]; then
    rm -rf "$CUSTSEG_STACK_DIR"
    echo "stack_down: removed $CUSTSEG_STACK_DIR"
  elif [ -e "$CUSTSEG_STACK_DIR" ]; then
    echo "stack_down: kept $CUSTSEG_STACK_DIR (not a stack folder made by stack_up.sh)"
  fi
fi
