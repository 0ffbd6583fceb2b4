"""Local servers on 127.0.0.1 for tests and benchmarks: a free port, a command that listens on it,
and `price-alchemy serve` started as a user starts it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ADMIN_TOKEN = "test-admin-token"


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


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen
    log_path: Path
    prediction_log: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def output(self) -> str:
        return self.log_path.read_text()


@contextmanager
def running_service(
    store_root: str | Path, workdir: Path, reload_seconds: float = 0.3, extra_env: dict[str, str] | None = None
) -> Iterator[RunningService]:
    """`price-alchemy serve` as a user starts it; stopped with SIGINT (a clean shutdown) afterwards."""
    port = free_port()
    prediction_log = workdir / "predictions.sqlite"
    log_path = workdir / f"serve-{port}.log"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(workdir / "dagster_home"),
        "PRICE_ALCHEMY_DATA_DIR": str(workdir / "data"),
        "PRICE_ALCHEMY_MODEL_STORE": str(store_root),
        "PRICE_ALCHEMY_PREDICTION_LOG": f"sqlite:///{prediction_log}",
        "PRICE_ALCHEMY_ADMIN_TOKEN": ADMIN_TOKEN,
        "PRICE_ALCHEMY_RELOAD_SECONDS": str(reload_seconds),
        "PRICE_ALCHEMY_MAX_BATCH": "1000",
        **(extra_env or {}),
    }
    cli = Path(sys.executable).with_name("price-alchemy")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    service = RunningService(f"http://127.0.0.1:{port}", process, log_path, prediction_log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"price-alchemy serve exited with {process.returncode}:\n{service.output()}")
            try:
                if httpx.get(f"{service.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"service not ready after 90 s:\n{service.output()}")
            time.sleep(0.3)
        yield service
    finally:
        stop_service(process)


def stop_service(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
