#!/usr/bin/env bash
# Roles of the compose warehouse (run once by the postgres image's entrypoint, after 01_contract.sql):
#   segment_writer  the pipeline's login (AIRFLOW_CONN_WAREHOUSE): reads raw.*, owns schema segmentation
#                   (creates, replaces and publishes the output tables there, and grants the reader).
#   segment_reader  read-only consumers: USAGE on schema segmentation; the pipeline grants it SELECT on the
#                   published tables only (include/segmentation/store/publish.py, grant_reader), never on raw.*.
# Passwords come from the environment (docker/.env.example), never from this file. Idempotent.
# Role names can be overridden (WAREHOUSE_WRITER_ROLE / WAREHOUSE_READER_ROLE), e.g. by the tests.
set -euo pipefail
: "${WAREHOUSE_WRITER_PASSWORD:?set WAREHOUSE_WRITER_PASSWORD}"
: "${WAREHOUSE_READER_PASSWORD:?set WAREHOUSE_READER_PASSWORD}"
WRITER="${WAREHOUSE_WRITER_ROLE:-segment_writer}"
READER="${WAREHOUSE_READER_ROLE:-segment_reader}"
for name in "$WRITER" "$READER"; do
  [[ "$name" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || { echo "02_roles.sh: invalid role name: $name" >&2; exit 1; }
done

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  -v writer="$WRITER" -v reader="$READER" \
  -v writer_password="$WAREHOUSE_WRITER_PASSWORD" -v reader_password="$WAREHOUSE_READER_PASSWORD" <<'SQL'
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'writer') AS create_writer \gset
\if :create_writer
CREATE ROLE :"writer" LOGIN;
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'reader') AS create_reader \gset
\if :create_reader
CREATE ROLE :"reader" LOGIN;
\endif
ALTER ROLE :"writer" WITH LOGIN PASSWORD :'writer_password';
ALTER ROLE :"reader" WITH LOGIN PASSWORD :'reader_password';

SELECT current_database() AS db \gset
-- The pipeline runs CREATE SCHEMA IF NOT EXISTS on start, which needs CREATE on the database.
GRANT CONNECT, CREATE ON DATABASE :"db" TO :"writer";
GRANT CONNECT ON DATABASE :"db" TO :"reader";

-- raw.*: read-only for the pipeline, including tables added later by the loading user.
GRANT USAGE ON SCHEMA raw TO :"writer";
GRANT SELECT ON ALL TABLES IN SCHEMA raw TO :"writer";
ALTER DEFAULT PRIVILEGES IN SCHEMA raw GRANT SELECT ON TABLES TO :"writer";

-- segmentation: owned by the pipeline; consumers may look into the schema, tables are granted one by one.
ALTER SCHEMA segmentation OWNER TO :"writer";
GRANT USAGE ON SCHEMA segmentation TO :"reader";

-- Nobody else gets anything by default.
REVOKE ALL ON SCHEMA raw, segmentation, evaluation FROM PUBLIC;
SQL
echo "02_roles.sh: roles $WRITER (pipeline) and $READER (read-only) ready"
