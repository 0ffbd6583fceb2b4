"""Test support for the prediction service: a tiny champion in a model store, and waiting on servers
(price_alchemy_assets.devtools starts them)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from price_alchemy_assets.listings.synthetic import synthetic_market as market
from price_alchemy_assets.model.bundle import TrainingConfig, train_price_model
from price_alchemy_assets.model.ensemble import BlendConfig
from price_alchemy_assets.model.metrics import price_metrics
from price_alchemy_assets.model.mlp import MLPConfig
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION, assign_split
from price_alchemy_assets.model.store import ChampionRecord, ModelStore, now_iso
from price_alchemy_assets.model.tuning import TuningBudget

TINY = TrainingConfig(
    budget=TuningBudget(max_evals=2, timeout_seconds=60, max_boost_rounds=120),
    blend=BlendConfig(folds=2, mlp=MLPConfig(networks=1, epochs=3)),
)


def training_listings(seed: int, rows: int = 3_000):
    """The listings `train_champion` with this seed learns from (train and validation)."""
    frame = market(rows, seed=seed)
    return frame[assign_split(frame["listing_id"]).isin([TRAIN, VALIDATION])]


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
