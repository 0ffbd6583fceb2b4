"""Start and stop the BigQuery REST emulator on 127.0.0.1 (its own virtualenv, .venv-bqemulator)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from price_alchemy_assets.devtools.local_servers import free_port, listening

REPO = Path(__file__).resolve().parents[2]
EMULATOR_PYTHON = Path(os.environ.get("PRICE_ALCHEMY_BQEMULATOR_PYTHON", REPO / ".venv-bqemulator/bin/python"))
PROJECT = "price-alchemy-test"


@contextmanager
def running_emulator(log: Path) -> Iterator[str]:
    """Yields the REST endpoint, e.g. http://127.0.0.1:41234; stops the emulator on exit."""
    if not EMULATOR_PYTHON.is_file():
        raise FileNotFoundError(
            f"BigQuery emulator virtualenv not found at {EMULATOR_PYTHON}; run scripts/setup.sh --test"
        )
    port = free_port()
    command = [
        str(EMULATOR_PYTHON),
        str(Path(__file__).with_name("bqemulator") / "launch.py"),
        "start",
        "--rest-host",
        "127.0.0.1",
        "--rest-port",
        str(port),
        "--grpc-host",
        "127.0.0.1",
        "--grpc-port",
        "0",
        "--project",
        PROJECT,
        "--log-level",
        "warning",
    ]
    with listening(command, port, log, {"NO_GCE_CHECK": "true"}) as endpoint:
        yield endpoint


def emulator_env(endpoint: str, dataset: str) -> dict[str, str]:
    """The environment that points the platform's warehouse at an emulator dataset."""
    return {
        "PRICE_ALCHEMY_WAREHOUSE": "bigquery",
        "PRICE_ALCHEMY_BQ_PROJECT": PROJECT,
        "PRICE_ALCHEMY_BQ_DATASET": dataset,
        "PRICE_ALCHEMY_BQ_API_ENDPOINT": endpoint,
        "NO_GCE_CHECK": "true",
    }
