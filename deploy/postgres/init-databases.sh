#!/bin/sh
# First start of the compose PostgreSQL: one server, a database each for MLflow and the prediction
# log beside Dagster's (POSTGRES_DB).
set -eu
for database in "${MLFLOW_PG_DB:-mlflow}" "${PREDICTIONS_PG_DB:-predictions}"; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -c "CREATE DATABASE \"$database\""
done
