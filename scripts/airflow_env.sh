# Environment for running this project's DAGs with the project's .venv (sourced by scripts).
# AIRFLOW_HOME defaults to .airflow/demo with SQLite metadata (the embedded demo); the local
# stack (scripts/stack_up.sh) uses its own home with PostgreSQL metadata.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/.venv/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow/demo}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-WARNING}"
export SEGMENTATION_ARTIFACTS_DIR="${SEGMENTATION_ARTIFACTS_DIR:-$ROOT/artifacts}"
