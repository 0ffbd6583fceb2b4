#!/usr/bin/env bash
# Creates .venv with the locked dependencies and the project installed in editable mode.
# With --test it also installs Debian's Chromium (seller-page test) and the BigQuery emulator in its own
# virtualenv (.venv-bqemulator), because the emulator pins a DuckDB that differs from ours.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet "uv==0.13.8"
fi
# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (these machines), every process would
# otherwise compile the packages it imports again (importing the definitions: 15.5 s -> 6.1 s)
.venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python -r requirements.lock
.venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python --no-deps -e .

if [ "${1:-}" = "--test" ]; then
  if [ ! -x .venv-bqemulator/bin/python ]; then
    "$PYTHON" -m venv .venv-bqemulator
  fi
  .venv/bin/uv pip install --quiet --compile-bytecode --python .venv-bqemulator/bin/python \
    -r price_alchemy_assets/devtools/bqemulator/requirements.lock
  # Debian's Chromium for the seller-page test (playwright drives it; no browser download)
  if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q chromium >/dev/null \
      || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
  fi
fi
