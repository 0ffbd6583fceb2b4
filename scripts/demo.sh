#!/usr/bin/env bash
# The README's first command: set up, then synthesize a marketplace, ingest it into the embedded
# DuckDB warehouse and run the main job. Runs land in .dagster_home, which the Dagster UI shows.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
exec .venv/bin/price-alchemy demo --rows "${ROWS:-100000}" "$@"
