#!/usr/bin/env bash
# A challenger in shadow promoted on realized prices, on the real Dagster daemon and service: set
# up, then scripts/shadow_demo.py (a weak champion, a challenger kept out by the gate, dagster dev
# + the service scoring it in shadow, sellers, their listings arriving with prices, online_evaluation,
# the sensor's promotion run). Extra arguments go to the script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/shadow_demo.py "$@"
