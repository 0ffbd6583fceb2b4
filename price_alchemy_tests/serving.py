"""Test support for the prediction service: a tiny champion in a model store, and the real
`price-alchemy serve` process on a free 127.0.0.1 port."""

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

from price_alchemy_assets.model.bundle import TrainingConfig, train_price_model
from price_alchemy_assets.model.ensemble import BlendConfig
from price_alchemy_assets.model.metrics import price_metrics
from price_alchemy_assets.model.mlp import MLPConfig
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION, assign_split
from price_alchemy_assets.model.store import ChampionRecord, ModelStore, now_iso
from price_alchemy_assets.model.tuning import TuningBudget

from .test_model_pieces import market

TINY = TrainingConfig(
    budget=TuningBudget(max_evals=2, timeout_seconds=60, max_boost_rounds=120),
    blend=BlendConfig(folds=2, mlp=MLPConfig(networks=1, epochs=3)),
)
ADMIN_TOKEN = "test-admin-token"


def train_champion(
    store: ModelStore, version: str, seed: int, rows: int = 3_000, promote: bool = True
) -> ChampionRecord:
    """Train a small bundle on synthetic listings, save it as `version` and (by default) promote it."""
    frame = market(rows, seed=seed)
    split = assign_split(frame["listing_id"])
    model, _ = train_price_model(frame[split == TRAIN], frame[split == VALIDATION], TINY)
    test = frame[split == TEST]
    metrics = price_metrics(test["price"], model.predict(test)["price"])
    path = store.save(model, version)
    record = ChampionRecord(
        version, path, now_iso(), training_rows=int((split == TRAIN).sum()), metrics=metrics, code_version="test"
    )
    if promote:
        store.promote(record)
    return record


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def group_gone(group: int, within_seconds: float = 20) -> bool:
    """Whether every process of a process group has exited (and been reaped) within the time."""
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


def wait_for(condition, timeout: float = 30.0, what: str = "condition", log: Path | None = None, every: float = 0.2):
    """Poll `condition` until it returns something truthy (which is returned); fail after `timeout`
    with `what` and the tail of `log`, the output of whatever was being waited on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{log.read_text()[-4000:]}" if log else ""))


def default_sigint() -> None:
    """Popen's preexec_fn for servers stopped with SIGINT: a test run started in the background
    (CI, nohup) hands its children SIGINT ignored, and a server that installs no handler of its
    own (dagster code-server) would then never stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
