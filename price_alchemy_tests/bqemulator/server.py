"""Start and stop the BigQuery REST emulator (and other local servers) on 127.0.0.1, for tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EMULATOR_PYTHON = Path(os.environ.get("PRICE_ALCHEMY_BQEMULATOR_PYTHON", REPO / ".venv-bqemulator/bin/python"))
PROJECT = "price-alchemy-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}: {log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout}s: {log.read_text()[-3000:]}")


@contextmanager
def listening(command: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Starts `command`, yields http://127.0.0.1:<port> once something listens there, stops it on exit."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        wait_for_port(port, process, 90, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
        str(Path(__file__).with_name("launch.py")),
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
