#!/usr/bin/env bash
# The README's second command: set up (with the BigQuery emulator's own virtualenv), lint, test.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check .
exec .venv/bin/pytest "$@"
