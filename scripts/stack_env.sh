# Shared environment of the local Airflow stack. Source it, do not run it:
#
#   source scripts/stack_env.sh      # then `airflow dags list`, `airflow pools list` ... talk to the stack
#
# Every setting has a default and can be overridden by exporting the variable first:
#   CUSTSEG_STACK_DIR     state folder: AIRFLOW_HOME, pid files, process logs, secrets   (<project>/.airflow/stack)
#   CUSTSEG_PORT          API server / UI port                                            (8080)
#   CUSTSEG_LOG_PORT / CUSTSEG_TRIGGERER_LOG_PORT  log servers of scheduler and triggerer (PORT+713 / PORT+714,
#                         i.e. Airflow's 8793/8794 for port 8080; two stacks on one machine need different ports)
#   CUSTSEG_HOST          address the API server binds to                                 (127.0.0.1)
#   CUSTSEG_PG_HOST/_PORT/_USER  PostgreSQL server for metadata and the default warehouse (127.0.0.1/5432/postgres)
#   CUSTSEG_META_DB       Airflow metadata database (created if missing)                  (airflow_meta)
#   CUSTSEG_WAREHOUSE_DB  default warehouse database (created + initialised if missing)   (custseg_warehouse)
#   AIRFLOW_CONN_WAREHOUSE  the `warehouse` connection; URI or JSON; overrides CUSTSEG_WAREHOUSE_DB
#   CUSTSEG_PARALLELISM   LocalExecutor parallelism (task processes at once)              (4)
#   CUSTSEG_POOL / CUSTSEG_POOL_SLOTS  pool that caps concurrent warehouse tasks          (warehouse / 3)
#   CUSTSEG_ADMIN_USER / CUSTSEG_ADMIN_PASSWORD  UI login                                 (admin / admin)
#   CUSTSEG_DAGS_FOLDER / CUSTSEG_PLUGINS_FOLDER                                          (<project>/dags, /plugins)
# Password-free by design: the local PostgreSQL uses trust auth; set PGPASSWORD for another server.

CUSTSEG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CUSTSEG_ROOT
export CUSTSEG_STACK_DIR="${CUSTSEG_STACK_DIR:-$CUSTSEG_ROOT/.airflow/stack}"
export CUSTSEG_PORT="${CUSTSEG_PORT:-8080}"
export CUSTSEG_HOST="${CUSTSEG_HOST:-127.0.0.1}"
export CUSTSEG_LOG_PORT="${CUSTSEG_LOG_PORT:-$((CUSTSEG_PORT + 713))}"
export CUSTSEG_TRIGGERER_LOG_PORT="${CUSTSEG_TRIGGERER_LOG_PORT:-$((CUSTSEG_PORT + 714))}"
export CUSTSEG_PG_HOST="${CUSTSEG_PG_HOST:-127.0.0.1}"
export CUSTSEG_PG_PORT="${CUSTSEG_PG_PORT:-5432}"
export CUSTSEG_PG_USER="${CUSTSEG_PG_USER:-postgres}"
export CUSTSEG_META_DB="${CUSTSEG_META_DB:-airflow_meta}"
export CUSTSEG_WAREHOUSE_DB="${CUSTSEG_WAREHOUSE_DB:-custseg_warehouse}"
export CUSTSEG_PARALLELISM="${CUSTSEG_PARALLELISM:-4}"
export CUSTSEG_POOL="${CUSTSEG_POOL:-warehouse}"
export CUSTSEG_POOL_SLOTS="${CUSTSEG_POOL_SLOTS:-3}"
export CUSTSEG_ADMIN_USER="${CUSTSEG_ADMIN_USER:-admin}"
export CUSTSEG_ADMIN_PASSWORD="${CUSTSEG_ADMIN_PASSWORD:-admin}"
export CUSTSEG_DAGS_FOLDER="${CUSTSEG_DAGS_FOLDER:-$CUSTSEG_ROOT/dags}"
export CUSTSEG_PLUGINS_FOLDER="${CUSTSEG_PLUGINS_FOLDER:-$CUSTSEG_ROOT/plugins}"
export CUSTSEG_RUN_DIR="$CUSTSEG_STACK_DIR/run"
export CUSTSEG_VENV="${CUSTSEG_VENV:-$CUSTSEG_ROOT/.venv}"
export CUSTSEG_URL="http://localhost:$CUSTSEG_PORT"

# --- Airflow itself -------------------------------------------------------------------------
export AIRFLOW_HOME="$CUSTSEG_STACK_DIR"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://$CUSTSEG_PG_USER@$CUSTSEG_PG_HOST:$CUSTSEG_PG_PORT/$CUSTSEG_META_DB"
export AIRFLOW__CORE__EXECUTOR="LocalExecutor"
export AIRFLOW__CORE__PARALLELISM="$CUSTSEG_PARALLELISM"
export AIRFLOW__CORE__LOAD_EXAMPLES="False"
export AIRFLOW__CORE__DAGS_FOLDER="$CUSTSEG_DAGS_FOLDER"
export AIRFLOW__CORE__PLUGINS_FOLDER="$CUSTSEG_PLUGINS_FOLDER"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://localhost:$CUSTSEG_PORT/execution/"
export AIRFLOW__API__BASE_URL="$CUSTSEG_URL"
export AIRFLOW__API__HOST="$CUSTSEG_HOST"
export AIRFLOW__API__PORT="$CUSTSEG_PORT"
export AIRFLOW__API__WORKERS="${AIRFLOW__API__WORKERS:-1}"
export AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="$CUSTSEG_ADMIN_USER:admin"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$CUSTSEG_STACK_DIR/simple_auth_manager_passwords.json"
export AIRFLOW__LOGGING__BASE_LOG_FOLDER="$CUSTSEG_STACK_DIR/logs"
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="$CUSTSEG_LOG_PORT"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="$CUSTSEG_TRIGGERER_LOG_PORT"
# Pick up new or edited DAG files within seconds instead of minutes.
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-20}"
export AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="${AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL:-20}"
export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="${AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES:-1}"
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False"

# --- The project ----------------------------------------------------------------------------
export PYTHONPATH="$CUSTSEG_ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${AIRFLOW_CONN_WAREHOUSE:-}" ]; then
  export AIRFLOW_CONN_WAREHOUSE="postgresql://$CUSTSEG_PG_USER@$CUSTSEG_PG_HOST:$CUSTSEG_PG_PORT/$CUSTSEG_WAREHOUSE_DB"
fi
# The pipeline reads the warehouse through the `warehouse` connection only; a stray WAREHOUSE_URL
# in the caller's shell would make the CLI and the DAG disagree.
unset WAREHOUSE_URL

# Secrets shared by all components (JWT signing between scheduler and API server, Fernet for
# connections stored in the metadata DB). Generated once by stack_up.sh, mode 600, never printed.
if [ -f "$CUSTSEG_STACK_DIR/secrets.env" ]; then
  # shellcheck disable=SC1091
  . "$CUSTSEG_STACK_DIR/secrets.env"
  export AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW__API__SECRET_KEY AIRFLOW__CORE__FERNET_KEY
fi
case ":$PATH:" in
  *":$CUSTSEG_VENV/bin:"*) ;;
  *) export PATH="$CUSTSEG_VENV/bin:$PATH" ;;
esac
