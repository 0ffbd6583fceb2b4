#!/usr/bin/env bash
# The README's second command: set up (with the BigQuery emulator's own virtualenv), lint (ruff,
# lint-imports for the layers in pyproject.toml, dg check defs), test.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache
# the code location as dg loads it from defs/ (dg starts an instance: a scratch Dagster home,
# with an empty dagster.yaml so Dagster does not warn that it has none)
scratch_home="$(mktemp -d)"
touch "$scratch_home/dagster.yaml"
DAGSTER_HOME="$scratch_home" VIRTUAL_ENV="$PWD/.venv" .venv/bin/dg check defs
exec .venv/bin/pytest "$@"
