#!/usr/bin/env bash
# The README's second command: set up (with the BigQuery emulator's own virtualenv), lint (ruff, and
# lint-imports for the layers in pyproject.toml), test.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache
exec .venv/bin/pytest "$@"
