#!/usr/bin/env bash
# Start the local Airflow 3 stack natively from the project's .venv:
#   api-server (UI + REST API), scheduler (LocalExecutor), dag-processor, triggerer.
# Metadata in PostgreSQL (database $CUSTSEG_META_DB), the `warehouse` connection from
# AIRFLOW_CONN_WAREHOUSE (default: PostgreSQL database $CUSTSEG_WAREHOUSE_DB, created and given the
# source contract). Idempotent: components that already run are left alone. Stop with scripts/stack_down.sh.
# Settings: see scripts/stack_env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CUSTSEG_SKIP_SETUP:-0}" != "1" ]; then
  bash scripts/setup.sh
fi
# shellcheck source=scripts/stack_env.sh
source scripts/stack_env.sh
PY="$CUSTSEG_VENV/bin/python"
AIRFLOW="$CUSTSEG_VENV/bin/airflow"
COMPONENTS=(api-server scheduler dag-processor triggerer)
HEALTH_TIMEOUT="${CUSTSEG_HEALTH_TIMEOUT:-240}"

log() { echo "stack_up: $*"; }
die() { echo "stack_up: ERROR: $*" >&2; exit 1; }

mkdir -p "$CUSTSEG_RUN_DIR" "$CUSTSEG_STACK_DIR/logs"
chmod 700 "$CUSTSEG_STACK_DIR"

is_running() {  # $1 = component; true when its pid file names a live airflow process group leader
  local pidfile="$CUSTSEG_RUN_DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q airflow
}

all_running=1
any_running=0
for c in "${COMPONENTS[@]}"; do
  if is_running "$c"; then any_running=1; else all_running=0; fi
done

if [ "$all_running" = "0" ]; then
  bash scripts/pg_up.sh
  # Airflow 3 also opens the metadata DB asynchronously; on PostgreSQL that needs asyncpg.
  "$PY" -c "import asyncpg" 2>/dev/null \
    || die "asyncpg is not installed in $CUSTSEG_VENV (needed for PostgreSQL metadata): run bash scripts/setup.sh"
  # Port check before anything else starts: a busy port would only show up as a failed health check.
  if [ "$any_running" = "0" ]; then
    "$PY" - "$CUSTSEG_HOST" "$CUSTSEG_PORT" "$CUSTSEG_LOG_PORT" "$CUSTSEG_TRIGGERER_LOG_PORT" <<'EOF' || exit 1
import socket, sys
host, *ports = sys.argv[1:]
for port, what, var in zip(ports, ("API server", "scheduler log server", "triggerer log server"),
                           ("CUSTSEG_PORT", "CUSTSEG_LOG_PORT", "CUSTSEG_TRIGGERER_LOG_PORT")):
    s = socket.socket()
    try:
        s.bind((host if what == "API server" else "0.0.0.0", int(port)))
    except OSError:
        sys.exit(f"stack_up: ERROR: port {port} ({what}) is already in use; set {var} to a free port")
    finally:
        s.close()
EOF
  fi

  # Secrets shared by all components, generated once.
  if [ ! -f "$CUSTSEG_STACK_DIR/secrets.env" ]; then
    (umask 077 && "$PY" - > "$CUSTSEG_STACK_DIR/secrets.env" <<'EOF'
import secrets
from cryptography.fernet import Fernet
print(f"AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(48)}")
print(f"AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(32)}")
print(f"AIRFLOW__CORE__FERNET_KEY={Fernet.generate_key().decode()}")
EOF
    )
    # shellcheck disable=SC1091
    . "$CUSTSEG_STACK_DIR/secrets.env"
    export AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW__API__SECRET_KEY AIRFLOW__CORE__FERNET_KEY
  fi
  # The documented login (SimpleAuthManager reads user -> password from this file).
  (umask 077 && "$PY" -c 'import json, os; print(json.dumps({os.environ["CUSTSEG_ADMIN_USER"]: os.environ["CUSTSEG_ADMIN_PASSWORD"]}))' \
    > "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")

  # Metadata database and warehouse database: create when missing, then migrate / initialise.
  "$PY" - <<'EOF'
import os
import sys

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from include.segmentation.store import resolve_url, validate_identifier


def ensure_database(url) -> None:
    name = validate_identifier(url.database, "database name")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
                print(f"stack_up: created database {name} on {url.host}:{url.port or 5432}")
    finally:
        admin.dispose()


try:
    ensure_database(make_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    wh = resolve_url()  # from AIRFLOW_CONN_WAREHOUSE (WAREHOUSE_URL is unset by stack_env.sh)
    if wh.get_backend_name() == "postgresql":
        ensure_database(wh)
except Exception as exc:  # a clear message, never the URL's password
    print(f"stack_up: ERROR: cannot prepare databases: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
    sys.exit(1)
EOF
  log "initialising the warehouse's source contract"
  "$PY" -m include.segmentation.cli init-warehouse | sed 's/^/stack_up: /'
  log "migrating the Airflow metadata database $CUSTSEG_META_DB"
  "$AIRFLOW" db migrate > "$CUSTSEG_RUN_DIR/db-migrate.log" 2>&1 || { tail -n 30 "$CUSTSEG_RUN_DIR/db-migrate.log" >&2; die "airflow db migrate failed"; }
  "$AIRFLOW" pools set "$CUSTSEG_POOL" "$CUSTSEG_POOL_SLOTS" \
    "For your own tasks that query the warehouse (pool=warehouse); the segmentation DAG does not use it" > "$CUSTSEG_RUN_DIR/pools.log" 2>&1 \
    || { tail -n 20 "$CUSTSEG_RUN_DIR/pools.log" >&2; die "could not create pool $CUSTSEG_POOL"; }
  log "pool $CUSTSEG_POOL: $CUSTSEG_POOL_SLOTS slots"

  for c in "${COMPONENTS[@]}"; do
    if is_running "$c"; then
      log "$c already running (pid $(cat "$CUSTSEG_RUN_DIR/$c.pid"))"
      continue
    fi
    args=("$c")
    if [ "$c" = "api-server" ]; then args+=(--port "$CUSTSEG_PORT" --host "$CUSTSEG_HOST"); fi
    # setsid: each component leads its own process group, so stop can kill it with all its children.
    setsid "$AIRFLOW" "${args[@]}" > "$CUSTSEG_RUN_DIR/$c.log" 2>&1 < /dev/null &
    echo $! > "$CUSTSEG_RUN_DIR/$c.pid"
    log "started $c (pid $!, log $CUSTSEG_RUN_DIR/$c.log)"
  done
else
  log "all components already running"
fi

# Wait until the API server reports every component healthy.
log "waiting for $CUSTSEG_URL/api/v2/monitor/health (up to ${HEALTH_TIMEOUT}s)"
deadline=$((SECONDS + HEALTH_TIMEOUT))
while true; do
  if status=$("$PY" - "$CUSTSEG_PORT" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v2/monitor/health", timeout=5) as r:
        h = json.load(r)
except Exception as exc:
    print(f"api-server not answering ({type(exc).__name__})")
    sys.exit(1)
parts = {k: (h.get(k) or {}).get("status") for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")}
print(" ".join(f"{k}={v}" for k, v in parts.items()))
sys.exit(0 if all(v == "healthy" for v in parts.values()) else 1)
EOF
  ); then
    log "healthy: $status"
    break
  fi
  for c in "${COMPONENTS[@]}"; do
    if ! is_running "$c"; then
      tail -n 40 "$CUSTSEG_RUN_DIR/$c.log" >&2 || true
      die "$c exited during start-up (log: $CUSTSEG_RUN_DIR/$c.log); run scripts/stack_down.sh to clean up"
    fi
  done
  if [ "$SECONDS" -ge "$deadline" ]; then
    die "not healthy after ${HEALTH_TIMEOUT}s ($status); logs in $CUSTSEG_RUN_DIR"
  fi
  sleep 2
done

# New DAGs start paused (AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION): a paused customer_segmentation
# never runs its schedule and a paused audience_sync never runs on the published-segments Asset.
# Unpause both once the dag-processor has registered them (CUSTSEG_UNPAUSE_DAGS="" keeps them paused).
UNPAUSE_DAGS="${CUSTSEG_UNPAUSE_DAGS-customer_segmentation audience_sync}"
UNPAUSE_TIMEOUT="${CUSTSEG_UNPAUSE_TIMEOUT:-180}"
for dag_id in $UNPAUSE_DAGS; do
  deadline=$((SECONDS + UNPAUSE_TIMEOUT))
  # `airflow dags unpause` succeeds silently for a DAG not registered yet: wait for its row first.
  until "$PY" - "$dag_id" > "$CUSTSEG_RUN_DIR/unpause-$dag_id.log" 2>&1 <<'EOF'
import os, sys
from sqlalchemy import create_engine, text
engine = create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
try:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM dag WHERE dag_id = :d"), {"d": sys.argv[1]}).first()
finally:
    engine.dispose()
sys.exit(0 if found else 1)
EOF
  do
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$CUSTSEG_RUN_DIR/unpause-$dag_id.log" >&2 || true
      die "could not unpause $dag_id within ${UNPAUSE_TIMEOUT}s (not parsed yet? see $CUSTSEG_RUN_DIR/dag-processor.log)"
    fi
    sleep 3
  done
  "$AIRFLOW" dags unpause "$dag_id" >> "$CUSTSEG_RUN_DIR/unpause-$dag_id.log" 2>&1 \
    || { tail -n 20 "$CUSTSEG_RUN_DIR/unpause-$dag_id.log" >&2; die "airflow dags unpause $dag_id failed"; }
  log "unpaused $dag_id"
done

cat <<EOF
stack_up: Airflow UI  $CUSTSEG_URL   (login: $CUSTSEG_ADMIN_USER / the password in CUSTSEG_ADMIN_PASSWORD, default admin)
stack_up: DAGs        $CUSTSEG_DAGS_FOLDER
stack_up: state, logs $CUSTSEG_STACK_DIR
stack_up: CLI         source scripts/stack_env.sh && airflow dags list
stack_up: stop        bash scripts/stack_down.sh
EOF
