"""Throughput and latency of the prediction service, driven from a second process on loopback.

Trains a champion on the genuine Mercari rows (../shared/data/mercari_train_sample.tsv; a
synthetic market where they are absent) into a temporary store, starts `price-alchemy serve`
on 127.0.0.1, then:
- wrk (Debian's package) on POST /predict with real listings from mercari_test_sample.tsv,
  1 client thread, 32 connections, 30 s; the same wrk run on GET /health in the same session
  is the framework's ceiling on this machine (the baseline);
- a 1,000-listing POST /predict/batch, 20 times after a warm-up;
- the service's RSS (current and peak) at the end.
Target on 2 cores: >= 500 requests/s, p99 <= 20 ms, 0 errors; a 1,000-listing batch <= 150 ms.

    .venv/bin/python benchmarks/service.py [--seconds 30] [--output docs/benchmarks/service.md]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"

from price_alchemy_assets.listings.columns import SELLER_FIELDS  # noqa: E402
from price_alchemy_assets.listings.files import ListingsFile  # noqa: E402
from price_alchemy_assets.model.bundle import TrainingConfig, train_price_model  # noqa: E402
from price_alchemy_assets.model.metrics import price_metrics  # noqa: E402
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION, assign_split  # noqa: E402
from price_alchemy_assets.model.store import ChampionRecord, FolderModelStore, now_iso  # noqa: E402
from price_alchemy_assets.model.tuning import TuningBudget  # noqa: E402
from price_alchemy_tests.serving import running_service  # noqa: E402
from price_alchemy_tests.test_model_pieces import market  # noqa: E402


def read_listings(path: Path) -> pd.DataFrame:
    with ListingsFile(path) as listings:
        return pd.concat(listings.chunks(), ignore_index=True)


def champion_into(store: FolderModelStore) -> tuple[ChampionRecord, str]:
    genuine = SHARED / "mercari_train_sample.tsv"
    if genuine.is_file():
        frame, source = read_listings(genuine), f"genuine {genuine.name}"
        frame = frame[frame["price"] > 0].reset_index(drop=True)
    else:
        frame, source = market(7_000, seed=3), "synthetic market (../shared/data absent)"
    split = assign_split(frame["listing_id"])
    model, _ = train_price_model(
        frame[split == TRAIN], frame[split == VALIDATION], TrainingConfig(budget=TuningBudget(max_evals=6))
    )
    test = frame[split == TEST]
    path = store.save(model, "benchmark")
    record = ChampionRecord(
        "benchmark",
        str(path),
        now_iso(),
        training_rows=int((split == TRAIN).sum()),
        metrics=price_metrics(test["price"], model.predict(test)["price"]),
    )
    store.promote(record)
    features = sum(model.featurizer.vocabulary_sizes.values())
    return record, f"{source}, {record.training_rows:,} training rows, {features:,} features"


def request_bodies(count: int) -> list[dict]:
    genuine = SHARED / "mercari_test_sample.tsv"
    frame = read_listings(genuine) if genuine.is_file() else market(count, seed=4)
    frame = frame[list(SELLER_FIELDS)].head(count)
    bodies = []
    for row in frame.itertuples(index=False):
        body = {
            "name": row.name or "untitled",
            "item_condition_id": int(row.item_condition_id),
            "shipping": int(row.shipping),
        }
        for optional in ("category_name", "brand_name", "item_description"):
            value = getattr(row, optional)
            if isinstance(value, str) and value:
                body[optional] = value[:10_000]
        bodies.append(body)
    return bodies


def wrk_script(bodies: list[dict], path: Path) -> Path:
    """A wrk Lua script that cycles through the listings as POST bodies."""
    entries = ",\n".join(f"[==[{json.dumps(body)}]==]" for body in bodies)
    path.write_text(
        "local bodies = {\n" + entries + "\n}\nlocal i = 0\n"
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n"
    )
    return path


def run_wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def latency_ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests": requests,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": latency_ms("50%"),
        "p99_ms": latency_ms("99%"),
        "errors": (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0),
    }


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    current, peak = (int(re.search(rf"{key}:\s+(\d+)", status).group(1)) / 1024 for key in ("VmRSS", "VmHWM"))
    return current, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk (Debian's package)")
    with tempfile.TemporaryDirectory(prefix="price-alchemy-service-bench-") as folder:
        root = Path(folder)
        record, champion = champion_into(FolderModelStore(root / "store"))
        bodies = request_bodies(2_000)
        script = wrk_script(bodies, root / "predict.lua")
        with running_service(root / "store", root, reload_seconds=2.0) as service, service.client() as client:
            for body in bodies[:200]:
                client.post("/predict", json=body).raise_for_status()
            health = run_wrk(f"{service.url}/health", args.seconds, args.connections)
            predict = run_wrk(f"{service.url}/predict", args.seconds, args.connections, script)
            batch = {"listings": bodies[:1000]}
            client.post("/predict/batch", json=batch).raise_for_status()
            batch_ms = []
            for _ in range(20):
                started = time.perf_counter()
                client.post("/predict/batch", json=batch).raise_for_status()
                batch_ms.append((time.perf_counter() - started) * 1000)
            rss, peak = rss_mb(service.process.pid)
            logged = client.get("/health").json()["prediction_log"]
    table = pd.DataFrame(
        [
            {"route": "GET /health (framework ceiling)", **health},
            {"route": "POST /predict", **predict},
        ]
    )
    report = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with benchmarks/service.py on 2 cores: wrk on loopback, "
        f"1 thread, {args.connections} connections, {args.seconds} s per route; champion trained on {champion}.\n\n"
        + table.to_markdown(index=False, floatfmt=".1f")
        + f"\n\n1,000-listing POST /predict/batch, 20 runs: median {np.median(batch_ms):.0f} ms, "
        f"p90 {np.percentile(batch_ms, 90):.0f} ms, max {max(batch_ms):.0f} ms.\n\n"
        f"Service RSS after the runs: {rss:.0f} MB (peak {peak:.0f} MB). Prediction log: "
        f"{logged['written']:,} rows written, {logged['pending']} pending, {logged['dropped']} dropped.\n\n"
        "Target: >= 500 requests/s, p99 <= 20 ms, 0 errors; 1,000-listing batch <= 150 ms.\n"
    )
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
