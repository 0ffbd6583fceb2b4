"""The prediction service against its latency objective and its peers, driven from other
processes on loopback, every reference measured in the same run.

Trains a champion on the genuine Mercari rows (../shared/data/mercari_train_sample.tsv; a
synthetic market where they are absent) into a temporary store, registers the same bundle in
a temporary MLflow registry, and serves it: `price-alchemy serve` with a challenger in shadow
(the champion's own bundle under another version: the same work a real challenger costs),
`price-alchemy serve` with the shadow off (PRICE_ALCHEMY_SHADOW_QUEUE=0), and `mlflow models
serve` (the peer a user would otherwise pick: one worker, its defaults, the registered
champion). With `--baseline REV`, a third service runs another git revision's code and model.
Each round measures every server in turn, twice:
- lone: hey, one worker at 20 requests/s, one genuine listing: a seller meeting an idle service;
- paced (price-alchemy): hey, 32 workers x 10 requests/s (320 a second) for 30 s: latency at a
  steady arrival rate below capacity, the objective (p99 <= 20 ms, no errors); GET /health under
  the same arrivals is the framework's own latency at that pattern (hey's 32 workers fire
  together, so the load comes as bursts of 32), the reference in the same round;
- capacity: wrk, 1 thread, 32 connections, real listings from mercari_test_sample.tsv, closed
  loop: requests/s, as a share of GET /health's (the framework's own ceiling) measured in the
  same round, and against mlflow models serve's /invocations with the same listings;
- a 1,000-listing POST /predict/batch, 20 times after a warm-up; RSS at the end, and how many
  listings the shadow scored and skipped.
After the rounds, paced runs of the service with the shadow and without it in alternation
(`--paced-pairs`): the median of their p99s, every run shown.
Objectives on 2 cores: lone p50 <= 5 ms; paced p99 <= 20 ms with 0 errors; capacity >= 40 % of
/health's and >= 5x mlflow models serve's; a 1,000-listing batch <= 150 ms.

    apt-get install wrk hey
    .venv/bin/python benchmarks/service.py [--seconds 20] [--paced-seconds 30] [--paced-pairs 4] \
        [--baseline REV] [--output docs/benchmarks/service.md]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from price_alchemy_assets.devtools.local_servers import free_port, running_service
from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.listings.files import ListingsFile
from price_alchemy_assets.listings.synthetic import synthetic_market as market
from price_alchemy_assets.model.bundle import PriceModel, TrainingConfig, train_price_model
from price_alchemy_assets.model.metrics import price_metrics
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION, assign_split
from price_alchemy_assets.model.store import ChampionRecord, FolderModelStore, now_iso
from price_alchemy_assets.model.tuning import TuningBudget

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


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
    return listing_bodies(frame.head(count))


def listing_bodies(frame: pd.DataFrame) -> list[dict]:
    """Listings as the JSON bodies a seller sends: the seller's fields, empty optional ones left out."""
    frame = frame[list(SELLER_FIELDS)]
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


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU time (user + system) of each of the process's threads so far, by thread id."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


CPU_PARTS = ("loop", "busiest", "others")


def cpu_per_request(pid: int, before: dict[int, float], after: dict[int, float], requests: float) -> dict:
    """Microseconds of CPU per request: the event loop (the main thread), the busiest other thread
    (for POST /predict, the inference thread) and every other thread together."""
    used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    loop = used.pop(pid, 0.0)
    busiest = max(used.values(), default=0.0)
    per = 1e6 / requests
    return dict(zip(CPU_PARTS, (loop * per, busiest * per, (sum(used.values()) - busiest) * per), strict=True))


def run_wrk(url: str, seconds: int, connections: int, script: Path | None = None, watch: int | None = None) -> dict:
    """Closed-loop load; with `watch` (the server's pid), its CPU per request by thread over the
    run's middle (a second in from each end)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cpu = None
    if watch is not None and seconds > 4:
        time.sleep(1)
        before, started = thread_cpu_seconds(watch), time.monotonic()
        time.sleep(seconds - 2)
        cpu = (before, thread_cpu_seconds(watch), time.monotonic() - started)
    output, errors = wrk.communicate()
    if wrk.returncode:
        raise RuntimeError(f"wrk failed: {errors}")

    def latency_ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return {
        "requests": requests,
        "requests_per_s": rate,
        "p50_ms": latency_ms("50%"),
        "p99_ms": latency_ms("99%"),
        "errors": (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0),
        "cpu_us": cpu_per_request(watch, cpu[0], cpu[1], rate * cpu[2]) if cpu else dict.fromkeys(CPU_PARTS, np.nan),
    }


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    current, peak = (int(re.search(rf"{key}:\s+(\d+)", status).group(1)) / 1024 for key in ("VmRSS", "VmHWM"))
    return current, peak


def children_rss_mb(pid: int) -> float:
    """The service's child processes (the explanation process, multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(rss_mb(int(child))[0] for child in children)


BASELINE = "43ac346"
"""The last revision before the blend of Ridge, sparse MLPs and LightGBM (issue 12)."""


def run_hey(url: str, body: dict | None, path: Path, seconds: int, workers: int = 1, per_worker_rate: int = 20) -> dict:
    """`workers` clients, each sending `per_worker_rate` requests a second: a steady arrival rate.
    POST `body`, or GET where it is None."""
    command = ["hey", "-c", str(workers), "-q", str(per_worker_rate), "-z", f"{seconds}s"]
    if body is not None:
        path.write_text(json.dumps(body))
        command += ["-m", "POST", "-T", "application/json", "-D", str(path)]
    command.append(url)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def percentile(level: int) -> float:
        return float(re.search(rf"^\s+{level}% in ([\d.]+) secs", output, re.M).group(1)) * 1000

    statuses = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", output))
    failed = re.search(r"Error distribution:\n((?:\s+\[\d+\].*\n?)+)", output)
    return {
        "requests": sum(map(int, statuses.values())),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": percentile(50),
        "p99_ms": percentile(99),
        "errors": sum(int(n) for code, n in statuses.items() if code != "200")
        + (sum(int(n) for n in re.findall(r"\[(\d+)\]", failed.group(1))) if failed else 0),
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


PACED_WORKERS, PACED_RATE = 32, 10
"""The paced load: hey's workers, each at this many requests a second (320 a second in bursts of 32)."""
PACED = f"hey {PACED_WORKERS} workers x {PACED_RATE} requests/s"


def run_paced(url: str, body: dict | None, path: Path, seconds: int) -> dict:
    """The objective's steady arrival rate, below capacity."""
    return run_hey(url, body, path, seconds, workers=PACED_WORKERS, per_worker_rate=PACED_RATE)


def measure(service, client, bodies: list[dict], root: Path, seconds: int, paced_seconds: int) -> dict:
    """The objective's measurements of one price-alchemy service."""
    lone = run_hey(f"{service.url}/predict", bodies[0], root / "lone.json", seconds)
    paced = run_paced(f"{service.url}/predict", bodies[0], root / "lone.json", paced_seconds)
    paced_health = run_paced(f"{service.url}/health", None, root / "none", paced_seconds)
    health = run_wrk(f"{service.url}/health", seconds, CONNECTIONS, watch=service.process.pid)
    predict = run_wrk(f"{service.url}/predict", seconds, CONNECTIONS, root / "predict.lua", service.process.pid)
    batch = {"listings": bodies[:1000]}
    client.post("/predict/batch", json=batch).raise_for_status()
    batch_ms = []
    for _ in range(20):
        started = time.perf_counter()
        client.post("/predict/batch", json=batch).raise_for_status()
        batch_ms.append((time.perf_counter() - started) * 1000)
    return {
        "lone p50 ms": lone["p50_ms"],
        "lone p99 ms": lone["p99_ms"],
        "paced req/s": paced["requests_per_s"],
        "paced p50 ms": paced["p50_ms"],
        "paced p99 ms": paced["p99_ms"],
        "paced /health p99 ms": paced_health["p99_ms"],
        "closed-loop req/s": predict["requests_per_s"],
        "/health req/s": health["requests_per_s"],
        "share of /health": predict["requests_per_s"] / health["requests_per_s"],
        "/health CPU us: event loop": health["cpu_us"]["loop"],
        "/health CPU us: other threads": health["cpu_us"]["busiest"] + health["cpu_us"]["others"],
        "/predict CPU us: event loop": predict["cpu_us"]["loop"],
        "/predict CPU us: inference": predict["cpu_us"]["busiest"],
        "/predict CPU us: other threads": predict["cpu_us"]["others"],
        "batch 1,000 median ms": float(np.median(batch_ms)),
        "errors": lone["errors"] + paced["errors"] + paced_health["errors"] + health["errors"] + predict["errors"],
    }


def paced_in_alternation(services: dict, body: dict, root: Path, seconds: int, pairs: int) -> pd.DataFrame:
    """Paced runs of the service with the shadow and without it, alternating (on off, off on, ...):
    the machine's drift over the minutes falls on both alike, so what differs is the shadow's. One
    30-s run's p99 moves by several ms from run to run on this machine; the median of several
    runs is the objective's measure here, every run shown."""
    rows, order = [], [SERVED, NO_SHADOW]
    for pair in range(1, pairs + 1):
        for name in order if pair % 2 else order[::-1]:
            paced = run_paced(f"{services[name].url}/predict", body, root / "lone.json", seconds)
            rows.append(
                {
                    "pair": pair,
                    "server": name,
                    "paced p50 ms": paced["p50_ms"],
                    "paced p99 ms": paced["p99_ms"],
                    "errors": paced["errors"],
                }
            )
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def alternation_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per server: the runs' median p50 and p99, the p99s' range, how many runs met the objective."""
    by_server = runs.groupby("server", sort=False)
    summary = pd.DataFrame(
        {
            "runs": by_server.size(),
            "paced p50 ms, median": by_server["paced p50 ms"].median(),
            "paced p99 ms, median (<= 20)": by_server["paced p99 ms"].median(),
            "paced p99 ms, lowest": by_server["paced p99 ms"].min(),
            "paced p99 ms, highest": by_server["paced p99 ms"].max(),
            "runs with p99 <= 20 ms": by_server["paced p99 ms"].apply(lambda p99: int((p99 <= 20).sum())),
            "errors": by_server["errors"].sum(),
        }
    )
    # counts as Python ints: a frame of numbers reaches tabulate as one float array ("4.0 runs")
    return summary.astype(dict.fromkeys(["runs", "runs with p99 <= 20 ms", "errors"], object))


def as_mlflow_input(body: dict) -> dict:
    """A listing as MLflow's scoring protocol takes it: a one-row frame with every column."""
    return {"dataframe_records": [{field: body.get(field) for field in SELLER_FIELDS}]}


def measure_mlflow(url: str, bodies: list[dict], root: Path, seconds: int) -> dict:
    """The same listings through MLflow's scoring protocol."""
    lone = run_hey(f"{url}/invocations", as_mlflow_input(bodies[0]), root / "mlflow-lone.json", seconds)
    closed = run_wrk(f"{url}/invocations", seconds, CONNECTIONS, root / "mlflow.lua")
    return {
        "lone p50 ms": lone["p50_ms"],
        "lone p99 ms": lone["p99_ms"],
        "closed-loop req/s": closed["requests_per_s"],
        "errors": lone["errors"] + closed["errors"],
    }


def register_in_mlflow(bundle_dir: Path, root: Path) -> str:
    """The benchmark's bundle as the registry's champion, the way the pipeline registers it."""
    from price_alchemy_assets.model.tracking import CHAMPION_ALIAS, ExperimentTracker

    tracker = ExperimentTracker(f"sqlite:///{root / 'mlflow.db'}", "benchmark", "price-alchemy", str(root / "mlruns"))
    with tracker.run("service-benchmark"):
        version = tracker.log_model(bundle_dir, PriceModel.load(bundle_dir))
    tracker.set_champion(version)
    return f"models:/price-alchemy@{CHAMPION_ALIAS}"


@contextmanager
def mlflow_models_serve(model_uri: str, root: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    # it runs `uvicorn` from PATH: this interpreter's
    path = f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "PATH": path}
    with open(root / "mlflow-serve.log", "w") as log:
        process = subprocess.Popen(
            [*command, "-h", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow models serve did not start:\n{(root / 'mlflow-serve.log').read_text()[-3000:]}"
                )
            time.sleep(1)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


CONNECTIONS = 32
SERVED = "price-alchemy serve"
NO_SHADOW = "price-alchemy serve, no shadow"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--paced-seconds", type=int, default=30)
    parser.add_argument("--paced-pairs", type=int, default=4, help="paced runs with the shadow on and off, alternating")
    parser.add_argument("--baseline", help=f"a git revision whose code and model also serve (e.g. {BASELINE})")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    for tool in ("wrk", "hey"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install wrk hey (Debian's packages)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="price-alchemy-service-bench-") as folder, ExitStack() as stack:
        root = Path(folder)
        if args.baseline:
            worktree, baseline_described = baseline_champion(args.baseline, root)
            stack.callback(
                subprocess.run,
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)],
                capture_output=True,
            )
        store = FolderModelStore(root / "store")
        record, described = champion_into(store)
        store.mark_challenger(replace(record, version=f"{record.version}-challenger"))
        model_uri = register_in_mlflow(Path(record.model_path), root)
        bodies = request_bodies(2_000)
        wrk_script(bodies, root / "predict.lua")
        wrk_script([as_mlflow_input(body) for body in bodies], root / "mlflow.lua")
        for name in ("new", "no-shadow", "old"):
            (root / name).mkdir()
        services = {
            SERVED: stack.enter_context(running_service(root / "store", root / "new", 2.0)),
            NO_SHADOW: stack.enter_context(
                running_service(root / "store", root / "no-shadow", 2.0, extra_env={"PRICE_ALCHEMY_SHADOW_QUEUE": "0"})
            ),
        }
        if args.baseline:
            services[f"baseline {args.baseline}"] = stack.enter_context(
                running_service(root / "baseline-store", root / "old", 2.0, extra_env={"PYTHONPATH": str(worktree)})
            )
        mlflow_url = stack.enter_context(mlflow_models_serve(model_uri, root))
        clients = {name: stack.enter_context(service.client()) for name, service in services.items()}
        deadline = time.monotonic() + 120
        while clients[SERVED].get("/health").json()["shadow"]["challenger_version"] is None:
            if time.monotonic() > deadline:
                sys.exit("the challenger never loaded in the shadow process")
            time.sleep(0.5)
        for client in clients.values():
            for body in bodies[:200]:
                client.post("/predict", json=body).raise_for_status()
        for body in bodies[:50]:
            httpx.post(f"{mlflow_url}/invocations", json=as_mlflow_input(body), timeout=30).raise_for_status()
        for round_number in (1, 2):
            for name, service in services.items():
                row = measure(service, clients[name], bodies, root, args.seconds, args.paced_seconds)
                rows.append({"round": round_number, "server": name, **row})
                print(rows[-1], flush=True)
            rows.append(
                {
                    "round": round_number,
                    "server": "mlflow models serve",
                    **measure_mlflow(mlflow_url, bodies, root, args.seconds),
                }
            )
            print(rows[-1], flush=True)
        alternation = paced_in_alternation(services, bodies[0], root, args.paced_seconds, args.paced_pairs)
        memory = {
            name: (*rss_mb(service.process.pid), children_rss_mb(service.process.pid))
            for name, service in services.items()
        }
        shadow = clients[SERVED].get("/health").json()["shadow"]
    table = pd.DataFrame(rows)
    ours = table[table["server"] == SERVED].set_index("round")
    unshadowed = table[table["server"] == NO_SHADOW].set_index("round")
    peer = table[table["server"] == "mlflow models serve"].set_index("round")
    objective = pd.DataFrame(
        {
            "lone p50 ms (<= 5)": ours["lone p50 ms"],
            "lone p50, no shadow": unshadowed["lone p50 ms"],
            "paced p99 ms (<= 20)": ours["paced p99 ms"],
            "paced p99, no shadow": unshadowed["paced p99 ms"],
            "paced /health p99 ms (reference)": ours["paced /health p99 ms"],
            "paced errors (0)": ours["errors"],
            "share of /health (>= 0.40)": ours["share of /health"],
            "x mlflow models serve (>= 5)": ours["closed-loop req/s"] / peer["closed-loop req/s"],
            "batch 1,000 ms (<= 150)": ours["batch 1,000 median ms"],
        }
    )
    ours_all = table[table["server"].isin(list(services))]
    health_cpu = ours_all["/health CPU us: event loop"] + ours_all["/health CPU us: other threads"]
    predict_parts = ["/predict CPU us: event loop", "/predict CPU us: inference", "/predict CPU us: other threads"]
    predict_cpu = ours_all[predict_parts].sum(axis=1)
    where = ours_all[["round", "server"]].assign(
        **{
            "/health: CPU us a request": health_cpu,
            "/predict: event loop": ours_all[predict_parts[0]],
            "inference thread": ours_all[predict_parts[1]],
            "other threads": ours_all[predict_parts[2]],
            "/predict: CPU us a request": predict_cpu,
            "share these costs allow": health_cpu / predict_cpu,
            "share measured": ours_all["share of /health"],
        }
    )
    report = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/python benchmarks/service.py "
        f"{'--baseline ' + args.baseline + ' ' if args.baseline else ''}--output docs/benchmarks/service.md` "
        f"on 2 cores, every server on loopback beside the load generators, measured in turn, two rounds. "
        f"Model: {described}"
        + (f"; baseline: {baseline_described}" if args.baseline else "")
        + f". lone: hey 1 worker x 20 requests/s, {args.seconds} s; paced: {PACED}, "
        f"{args.paced_seconds} s; closed loop: wrk 1 thread, {CONNECTIONS} connections, {args.seconds} s.\n\n"
        + table.to_markdown(index=False, floatfmt=".2f")
        + "\n\nThe objective, per round:\n\n"
        + objective.to_markdown(floatfmt=".2f")
        + f"\n\nPaced, the shadow on and off in alternation ({args.paced_pairs} pairs of {args.paced_seconds}-s runs, "
        f"{PACED}, one genuine listing):\n\n"
        + alternation_summary(alternation).to_markdown(floatfmt=".1f")
        + "\n\nEvery run:\n\n"
        + alternation.to_markdown(index=False, floatfmt=".1f")
        + "\n\nWhere a request's time goes under closed-loop load: CPU per request of each of the service's "
        "threads, read from /proc over the wrk run's middle (the event loop is the main thread; under POST "
        "/predict the busiest other thread is the inference thread; the others write the access log and the "
        "prediction log). The threads share one interpreter lock, so these add up to what one core "
        "serves:\n\n"
        + where.to_markdown(index=False, floatfmt=("", "", *[".0f"] * 5, ".2f", ".2f"))
        + "\n\nService RSS after the runs: "
        + ", ".join(
            f"{name} {rss:.0f} MB (peak {peak:.0f} MB), its child processes {children:.0f} MB"
            for name, (rss, peak, children) in memory.items()
        )
        + f". The shadow scored {shadow['scored']:,} listings and skipped {shadow['skipped']:,} (its queue was full)"
        f", {shadow['failed']} failed"
        + ".\n\nWhere the time goes, and what was tried: [README.md](README.md), The prediction service.\n"
    )
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
