#!/usr/bin/env bash
# The main job on a fresh machine: build the embedded SQLite demo warehouse with synthetic data,
# run the daily customer_segmentation DAG for the latest day, and print the segments.
set -euo pipefail
cd "$(dirname "$0")/.."
# The demo's report, Data Docs and audience files go to artifacts/demo/, apart from the local stack's
# artifacts/ (Browse -> Segment report), so `make demo` never overwrites the stack's report.
export SEGMENTATION_ARTIFACTS_DIR="${DEMO_ARTIFACTS_DIR:-$PWD/artifacts/demo}"
source scripts/airflow_env.sh
WAREHOUSE_FILE="${WAREHOUSE_FILE:-$ROOT/data/warehouse.db}"
CUSTOMERS="${DEMO_CUSTOMERS:-5000}"
export AIRFLOW_CONN_WAREHOUSE="{\"conn_type\": \"sqlite\", \"host\": \"$WAREHOUSE_FILE\"}"
export WAREHOUSE_URL="sqlite:///$WAREHOUSE_FILE"
SNAPSHOT="$(date -u +%Y-%m-%d)"
YESTERDAY="$(date -u -d yesterday +%Y-%m-%d)"

echo "==> 1/4 embedded warehouse: $WAREHOUSE_FILE"
rm -f "${WAREHOUSE_FILE%.db}".*.db "$WAREHOUSE_FILE"
python -m include.segmentation.cli init-warehouse
echo "==> 2/4 synthetic data: $CUSTOMERS customers, 730 days up to $YESTERDAY"
python -m include.segmentation.cli generate --customers "$CUSTOMERS" --days 730 --end-date "$YESTERDAY" --seed 42 >/dev/null
python -m include.segmentation.cli summary >/dev/null
echo "==> 3/4 airflow dags test customer_segmentation $SNAPSHOT (metadata: $AIRFLOW_HOME)"
mkdir -p "$AIRFLOW_HOME"
airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
log="$AIRFLOW_HOME/dags-test-$SNAPSHOT.log"
if ! AIRFLOW__LOGGING__LOGGING_LEVEL=INFO airflow dags test customer_segmentation "$SNAPSHOT" >"$log" 2>&1 \
   || ! python -m include.segmentation.cli run-status --date "$SNAPSHOT"; then
  grep -E "ERROR|error|failed" "$log" | grep -v _docs_decorators | tail -n 20
  echo "DAG run did not publish; full log: $log" >&2; exit 1
fi
echo "==> 4/4 published segments (schema segmentation in $WAREHOUSE_FILE)"
python -m include.segmentation.cli summary
echo
echo "Report and Data Docs: $SEGMENTATION_ARTIFACTS_DIR/reports/latest.html, $SEGMENTATION_ARTIFACTS_DIR/data_docs/"
echo "Query them: sqlite3 -cmd \"ATTACH '${WAREHOUSE_FILE%.db}.segmentation.db' AS segmentation\" $WAREHOUSE_FILE 'SELECT segment_name, COUNT(*) FROM segmentation.customer_segments GROUP BY 1'"
