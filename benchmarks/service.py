"""Throughput and latency of the prediction service, driven from a second process on loopback,
for today's model and a baseline's (another git revision's code and model) in the same run.

Trains a champion on the genuine Mercari rows (../shared/data/mercari_train_sample.tsv; a
synthetic market where they are absent) into a temporary store with this checkout's code, and
another with the code of `--baseline` (a git worktree, trained and served by its own code:
the model before the blend by default). Both services run `price-alchemy serve` on 127.0.0.1;
each measurement alternates between them, twice, and the table gives both rounds:
- hey (Debian's package), one worker at 20 requests/s on POST /predict with one genuine listing:
  a lone seller's latency, what a steady arrival rate below capacity feels like;
- wrk, 1 client thread, 32 connections on POST /predict with real listings from
  mercari_test_sample.tsv: closed-loop capacity, as a share of GET /health's (the framework's
  own ceiling) measured in the same round;
- a 1,000-listing POST /predict/batch, 20 times after a warm-up;
- the service's RSS (current and peak) at the end.
Targets on 2 cores: a lone /predict no slower than the baseline's, a 1,000-listing batch <= 150 ms.

    apt-get install wrk hey
    .venv/bin/python benchmarks/service.py [--seconds 20] [--baseline 43ac346] \
        [--output docs/benchmarks/service.md]
"""

from __future__ import annotations

import argparse
import json
import os
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


BASELINE = "43ac346"
"""The last revision before the blend of Ridge, sparse MLPs and LightGBM (issue 12)."""


def run_hey(url: str, body: dict, path: Path, seconds: int) -> dict:
    """One worker at 20 requests/s: each request meets an idle service."""
    path.write_text(json.dumps(body))
    command = ["hey", "-c", "1", "-q", "20", "-z", f"{seconds}s", "-m", "POST", "-T", "application/json"]
    output = subprocess.run([*command, "-D", str(path), url], capture_output=True, text=True, check=True).stdout

    def percentile(level: int) -> float:
        return float(re.search(rf"^\s+{level}% in ([\d.]+) secs", output, re.M).group(1)) * 1000

    statuses = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", output))
    return {
        "requests": sum(map(int, statuses.values())),
        "p50_ms": percentile(50),
        "p99_ms": percentile(99),
        "errors": sum(int(n) for code, n in statuses.items() if code != "200"),
    }


def baseline_champion(revision: str, root: Path) -> tuple[Path, str]:
    """A git worktree of `revision` and a champion trained by its own code; returns the worktree."""
    worktree = root / "baseline-source"
    # the revision finds the genuine rows beside its own checkout, as this one does
    (root / "shared").symlink_to(SHARED.parent)
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), revision],
        check=True,
        capture_output=True,
    )
    train = (
        "import sys; from pathlib import Path; from benchmarks.service import champion_into; "
        "from price_alchemy_assets.model.store import FolderModelStore; "
        "print(champion_into(FolderModelStore(Path(sys.argv[1])))[1])"
    )
    described = (
        subprocess.run(
            [sys.executable, "-c", train, str(root / "baseline-store")],
            cwd=worktree,
            env={**os.environ, "PYTHONPATH": str(worktree)},
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return worktree, described


def measure(name: str, service, client, bodies: list[dict], root: Path, seconds: int, connections: int) -> dict:
    script = root / "predict.lua"
    lone = run_hey(f"{service.url}/predict", bodies[0], root / "lone.json", seconds)
    health = run_wrk(f"{service.url}/health", seconds, connections)
    predict = run_wrk(f"{service.url}/predict", seconds, connections, script)
    batch = {"listings": bodies[:1000]}
    client.post("/predict/batch", json=batch).raise_for_status()
    batch_ms = []
    for _ in range(20):
        started = time.perf_counter()
        client.post("/predict/batch", json=batch).raise_for_status()
        batch_ms.append((time.perf_counter() - started) * 1000)
    return {
        "model": name,
        "lone /predict p50 ms": lone["p50_ms"],
        "lone /predict p99 ms": lone["p99_ms"],
        "/health req/s": health["requests_per_s"],
        "/predict req/s": predict["requests_per_s"],
        "capacity share": predict["requests_per_s"] / health["requests_per_s"],
        "batch 1,000 median ms": float(np.median(batch_ms)),
        "batch 1,000 p90 ms": float(np.percentile(batch_ms, 90)),
        "errors": lone["errors"] + health["errors"] + predict["errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--baseline", default=BASELINE, help="git revision whose code and model are the baseline")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    for tool in ("wrk", "hey"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install wrk hey (Debian's packages)")
    with tempfile.TemporaryDirectory(prefix="price-alchemy-service-bench-") as folder:
        root = Path(folder)
        try:
            worktree, baseline_described = baseline_champion(args.baseline, root)
            _, described = champion_into(FolderModelStore(root / "store"))
            bodies = request_bodies(2_000)
            wrk_script(bodies, root / "predict.lua")
            (root / "new").mkdir()
            (root / "old").mkdir()
            with (
                running_service(root / "store", root / "new", reload_seconds=2.0) as new,
                running_service(
                    root / "baseline-store", root / "old", reload_seconds=2.0, extra_env={"PYTHONPATH": str(worktree)}
                ) as old,
                new.client() as new_client,
                old.client() as old_client,
            ):
                services = {f"baseline {args.baseline}": (old, old_client), "this checkout": (new, new_client)}
                for _, client in services.values():
                    for body in bodies[:200]:
                        client.post("/predict", json=body).raise_for_status()
                rows = []
                for round_number in (1, 2):
                    for name, (service, client) in services.items():
                        row = measure(name, service, client, bodies, root, args.seconds, args.connections)
                        rows.append({"round": round_number, **row})
                        print(rows[-1], flush=True)
                memory = {name: rss_mb(service.process.pid) for name, (service, _) in services.items()}
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(root / "baseline-source")],
                capture_output=True,
            )
    table = pd.DataFrame(rows)
    by_model = table.groupby("model", sort=False)[["lone /predict p50 ms", "batch 1,000 median ms"]].median()
    report = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/python benchmarks/service.py "
        f"--baseline {args.baseline} --output docs/benchmarks/service.md` on 2 cores, both services on "
        f"loopback, measurements alternating between them. Baseline: {baseline_described}. "
        f"This checkout: {described}. hey: 1 worker at 20 requests/s for {args.seconds} s; wrk: 1 thread, "
        f"{args.connections} connections, {args.seconds} s per route.\n\n"
        + table.to_markdown(index=False, floatfmt=".2f")
        + "\n\nMedians of the two rounds:\n\n"
        + by_model.to_markdown(floatfmt=".1f")
        + "\n\nService RSS after the runs: "
        + ", ".join(f"{name} {rss:.0f} MB (peak {peak:.0f} MB)" for name, (rss, peak) in memory.items())
        + ".\n\nTargets: a lone /predict no slower than the baseline's; a 1,000-listing batch <= 150 ms.\n"
    )
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
