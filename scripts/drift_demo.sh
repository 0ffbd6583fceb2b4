#!/usr/bin/env bash
# Drift-triggered retraining on the real Dagster daemon, with the service running: set up, then
# scripts/drift_demo.py (a market, a champion, dagster dev + the service, an in-distribution batch
# that triggers nothing, a drifted batch that retrains and promotes). Extra arguments go to the script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/drift_demo.py "$@"
