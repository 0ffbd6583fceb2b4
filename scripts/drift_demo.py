"""Drift-triggered retraining on the real Dagster daemon, end to end.

1. A synthetic marketplace is ingested and trained to a champion (`price-alchemy synth`,
   `ingest`, `train`).
2. `price-alchemy ui` (dagster dev: webserver + daemon) and `price-alchemy serve` start on
   127.0.0.1; the drift sensor is switched on through the webserver's GraphQL API.
3. Sellers ask the service for prices (live traffic, in distribution).
4. An in-distribution batch of listings is ingested: the next tick requests nothing.
5. A drifted batch (`synth --drift`) is ingested: a tick requests a retraining run, the daemon
   runs it, the new model is promoted, and the running service serves it without a restart.

Everything lives in --workdir (wiped first); every process is stopped at the end.

    .venv/bin/python scripts/drift_demo.py [--rows 20000 --batch-rows 3000 --drift new-categories]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("price-alchemy")
SENSOR = "listings_and_traffic_drift_sensor"
SELECTOR = {"repositoryLocationName": "price_alchemy", "repositoryName": "__repository__", "sensorName": SENSOR}


def say(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_cli(*args: str, env: dict) -> str:
    done = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"price-alchemy {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def http_json(url: str, body: dict | None = None, timeout: float = 30) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(what: str, probe, timeout: float, every: float = 1.0):
    """Call `probe` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (OSError, urllib.error.URLError, KeyError, TypeError, json.JSONDecodeError):
            value = None
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def background(name: str, args: list[str], env: dict, log: Path):
    """A process in its own session (so its children can be signalled together), stopped with
    SIGINT, then SIGKILL if it lingers."""
    with open(log, "w") as out:
        process = subprocess.Popen(
            args,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # started from a background job, a child inherits SIGINT ignored; give it back
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        leftovers = "none left behind"
        deadline = time.monotonic() + 20
        while True:  # its children (webserver, daemon, code server) stop on their own
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                leftovers = "KILLED processes it left behind"
                break
            time.sleep(0.5)
        say(f"stopped {name} (exit {process.returncode}, {leftovers})")


class Dagster:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/graphql"

    def query(self, query: str, **variables) -> dict:
        answer = http_json(self.url, {"query": query, "variables": variables})
        if answer.get("errors"):
            raise SystemExit(f"GraphQL error: {answer['errors']}")
        return answer["data"]

    def start_sensor(self) -> str:
        data = self.query(
            "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) {"
            " ... on Sensor { sensorState { status } } ... on PythonError { message } } }",
            s=SELECTOR,
        )
        return data["startSensor"].get("sensorState", {}).get("status") or data["startSensor"]["message"]

    def ticks(self) -> list[dict]:
        data = self.query(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { sensorState {"
            " ticks(limit: 10) { status timestamp skipReason runIds error { message } } } } } }",
            s=SELECTOR,
        )
        return data["sensorOrError"]["sensorState"]["ticks"]

    def verdict_on(self, ingest_started: float, ingest_done: float) -> dict | None:
        """The tick that judged a batch ingested between the two moments (epoch seconds): the first
        that requested a run since the ingest began (a tick can see the rows before the CLI exits),
        else the first finished tick that started once every row was in."""
        finished = [t for t in self.ticks() if t["timestamp"] > ingest_started and t["status"] != "STARTED"]
        requesting = [t for t in finished if t["runIds"]]
        settled = requesting or [t for t in finished if t["timestamp"] > ingest_done]
        return min(settled, key=lambda t: t["timestamp"]) if settled else None

    def run(self, run_id: str) -> dict:
        """The run's status and tags."""
        data = self.query(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }", id=run_id
        )
        run = data["runOrError"]
        return {"status": run["status"], "tags": {tag["key"]: tag["value"] for tag in run["tags"]}}

    def champion_reason(self) -> str:
        """Why the latest champion materialization kept or replaced the champion."""
        data = self.query(
            '{ assetOrError(assetKey: {path: ["champion"]}) { ... on Asset { assetMaterializations(limit: 1) {'
            " metadataEntries { label ... on TextMetadataEntry { text } } } } } }"
        )
        (latest,) = data["assetOrError"]["assetMaterializations"]
        return next((e.get("text") for e in latest["metadataEntries"] if e["label"] == "reason"), "")


def run_demo(demo, args: argparse.Namespace) -> None:
    """`demo(args, summary)`; what it recorded is written to --summary even when it fails."""
    summary: dict = {}
    try:
        demo(args, summary)
    finally:
        if args.summary:
            args.summary.write_text(json.dumps(summary, indent=2))


def fresh_workdir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path.resolve()


def seller_requests(path: Path, rows: int) -> list[dict]:
    """Listings from a synthetic TSV as the seller page would send them."""
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", nrows=rows, keep_default_na=False)
    bodies = []
    for row in frame.to_dict("records"):
        body = {"name": row["name"] or "untitled", "item_condition_id": int(row["item_condition_id"])}
        body["shipping"] = int(row["shipping"])
        for field in ("category_name", "brand_name", "item_description"):
            if row[field]:
                body[field] = str(row[field])
        bodies.append(body)
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO / ".drift_demo")
    parser.add_argument("--rows", type=int, default=20_000, help="listings in the first market")
    parser.add_argument("--batch-rows", type=int, default=3_000, help="listings in each new batch")
    parser.add_argument("--traffic-rows", type=int, default=600, help="listings sellers ask the service about")
    parser.add_argument("--drift", default="new-categories", help="the drifted batch's kind (synth --drift)")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--max-evals", type=int, default=4, help="tuning trials, first training and retraining")
    parser.add_argument("--tick-seconds", type=int, default=10, help="the drift sensor's interval")
    parser.add_argument("--timeout", type=float, default=900, help="longest wait for the retraining run")
    parser.add_argument("--summary", type=Path, default=None, help="write what happened as JSON here")
    run_demo(demo, parser.parse_args())


def demo(args: argparse.Namespace, summary: dict) -> None:
    started = time.monotonic()
    work = fresh_workdir(args.workdir)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "PRICE_ALCHEMY_DATA_DIR": str(work / "data"),
        "PRICE_ALCHEMY_DRIFT_SENSOR_SECONDS": str(args.tick_seconds),
        "PRICE_ALCHEMY_DRIFT_MIN_ROWS": str(min(500, args.batch_rows // 2)),
        "PRICE_ALCHEMY_DRIFT_COOLDOWN_MINUTES": "0",
        "PRICE_ALCHEMY_DRIFT_RETRAIN_MAX_EVALS": str(args.max_evals),
        "PRICE_ALCHEMY_DRIFT_RETRAIN_IN_PROCESS": "1",
        "PRICE_ALCHEMY_RELOAD_SECONDS": "1",
    }
    env.pop("PRICE_ALCHEMY_PREDICTION_LOG", None)
    env.pop("PRICE_ALCHEMY_MODEL_STORE", None)
    summary["workdir"] = str(work)
    now = datetime.now(UTC).replace(microsecond=0)

    def synth(name: str, rows: int, seed: int, start: datetime, days: float, *drift: str) -> Path:
        path = work / f"{name}.tsv"
        run_cli("synth", "--rows", str(rows), "--seed", str(seed), "--start", start.strftime("%Y-%m-%dT%H:%M:%S"),
                "--days", str(days), "--output", str(path), *drift, env=env)  # fmt: skip
        return path

    say(f"1. a market of {args.rows:,} listings from the last ten days, ingested and trained to a champion")
    market = synth("market", args.rows, 1, now - timedelta(days=11), 10)
    run_cli("ingest", str(market), env=env)
    run_cli("train", "--max-evals", str(args.max_evals), env=env)
    champion_file = work / "data" / "model_store" / "champion.json"
    first = json.loads(champion_file.read_text())
    summary["first_champion"] = {"version": first["version"], "rmsle": first["metrics"]["rmsle"]}
    say(f"   champion {first['version']}: test RMSLE {first['metrics']['rmsle']:.4f}")

    ui_port, service_port = free_port(), free_port()
    service_url = f"http://127.0.0.1:{service_port}"
    with ExitStack() as stack:
        say(f"2. dagster dev (webserver + daemon) on 127.0.0.1:{ui_port} and the service on {service_url}")
        ui = background("dagster dev", [str(CLI), "ui", "--port", str(ui_port)], env, work / "dagster.log")
        service = background("the service", [str(CLI), "serve", "--port", str(service_port)], env, work / "service.log")
        summary["process_groups"] = [stack.enter_context(ui).pid, stack.enter_context(service).pid]
        dagster = Dagster(ui_port)
        wait_for("the Dagster webserver", lambda: dagster.ticks() is not None, timeout=240, every=2)
        wait_for("the service to load the champion", lambda: http_json(f"{service_url}/ready")["ready"], timeout=120)
        say(f"   drift sensor: {dagster.start_sensor()} (a tick every {args.tick_seconds} s)")

        say(f"3. sellers ask for {args.traffic_rows:,} prices (live traffic from the same market)")
        traffic = seller_requests(synth("traffic", args.traffic_rows, 2, now - timedelta(days=1), 1), args.traffic_rows)
        for offset in range(0, len(traffic), 500):
            http_json(f"{service_url}/predict/batch", {"listings": traffic[offset : offset + 500]})

        say(f"4. an in-distribution batch of {args.batch_rows:,} listings arrives")
        calm = synth("in-distribution", args.batch_rows, 3, now - timedelta(days=1), 1)
        started = time.time()
        run_cli("ingest", str(calm), env=env)
        time.sleep(1.5)  # the service writes its prediction log within a second
        arrived = time.time()
        tick = wait_for(
            "a tick after the in-distribution batch", lambda: dagster.verdict_on(started, arrived), timeout=180
        )
        summary["in_distribution_tick"] = tick
        say(f"   tick {tick['status']}: {tick['skipReason']}; runs requested: {len(tick['runIds'])}")
        if tick["runIds"] or tick["status"] == "FAILURE":
            raise SystemExit(f"the in-distribution batch should trigger nothing: {tick}")

        say(f"5. a drifted batch ({args.drift}, strength {args.strength}) of {args.batch_rows:,} listings arrives")
        drifted = synth(
            "drifted", args.batch_rows, 4, now - timedelta(hours=12), 0.5, "--drift", args.drift,
            "--strength", str(args.strength),
        )  # fmt: skip
        started = time.time()
        run_cli("ingest", str(drifted), env=env)
        arrived = time.time()
        tick = wait_for("a tick after the drifted batch", lambda: dagster.verdict_on(started, arrived), timeout=180)
        summary["drift_tick"] = tick
        if not tick["runIds"]:
            raise SystemExit(f"the drifted batch should trigger retraining: {tick}")
        # the retraining run carries the drift reasons; beside it runs online_evaluation
        runs = {run_id: dagster.run(run_id) for run_id in tick["runIds"]}
        (run_id,) = [run_id for run_id, run in runs.items() if "price_alchemy/drift_reasons" in run["tags"]]
        (online_id,) = [other for other in runs if other != run_id]
        reasons = runs[run_id]["tags"]["price_alchemy/drift_reasons"]
        say(f"   tick requested run {run_id}: {reasons}")
        say(f"   and run {online_id}: online_evaluation of the prices served so far")
        status = wait_for(
            "the retraining run to finish",
            lambda: (s := dagster.run(run_id)["status"]) in {"SUCCESS", "FAILURE", "CANCELED"} and s,
            timeout=args.timeout,
            every=3,
        )
        summary["retraining_run"] = {"run_id": run_id, "status": status, "drift_reasons": reasons}
        online_status = wait_for(
            "the online evaluation run to finish",
            lambda: (s := dagster.run(online_id)["status"]) in {"SUCCESS", "FAILURE", "CANCELED"} and s,
            timeout=120,
            every=2,
        )
        summary["online_evaluation_run"] = {"run_id": online_id, "status": online_status}
        say(f"   online evaluation run {online_status}")
        say(f"   retraining run {status}")
        if status != "SUCCESS":
            raise SystemExit(f"the retraining run ended {status}; see {work / 'dagster.log'}")
        second = json.loads(champion_file.read_text())
        reason = dagster.champion_reason()
        summary["second_champion"] = {
            "version": second["version"],
            "rmsle": second["metrics"]["rmsle"],
            "reason": reason,
        }
        if second["version"] == first["version"]:
            raise SystemExit(f"the retrained model was not promoted ({reason}); see eval_report in the Dagster UI")
        say(f"   promoted {second['version']}: {reason}")
        served = wait_for(
            "the service to serve the new champion",
            lambda: (m := http_json(f"{service_url}/model"))["model_version"] == second["version"] and m,
            timeout=60,
        )
        answer = http_json(f"{service_url}/predict", traffic[0])
        summary["served"] = {"model_version": served["model_version"], "price": answer["price"]}
        say(f"   the service now answers with {answer['model_version']} (no restart)")
    summary["minutes"] = round((time.monotonic() - started) / 60, 1)
    say(f"done in {summary['minutes']} min; Dagster home: {work / 'dagster_home'}")


if __name__ == "__main__":
    main()
