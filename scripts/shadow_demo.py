"""A challenger in shadow, promoted on realized prices, on the real Dagster daemon and service.

1. A small market is ingested and trained to a champion (`price-alchemy synth`, `ingest`, `train`).
2. A larger market arrives; `train` again, with a gate that demands a margin this candidate does
   not reach: the champion is kept and the candidate becomes the challenger (challenger.json,
   MLflow alias `challenger`).
3. `price-alchemy ui` (dagster dev: webserver + daemon) and `price-alchemy serve` start on
   127.0.0.1; the service loads the champion and, in its shadow process, the challenger.
4. Sellers ask the service for prices: they get the champion's; the challenger's are logged beside.
5. The same listings arrive in the warehouse with the prices they asked.
6. online_evaluation runs (launched as the daily schedule would): its paired test prefers the
   challenger; the challenger_promotion_sensor requests promote_challenger_job, the daemon runs
   it, the pointer is swapped, and the running service answers with the new champion.

Everything lives in --workdir (wiped first); every process is stopped at the end.

    .venv/bin/python scripts/shadow_demo.py [--rows 2000 --more-rows 20000 --traffic-rows 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift_demo import (  # noqa: E402
    CLI,
    REPO,
    Dagster,
    background,
    free_port,
    fresh_workdir,
    http_json,
    run_cli,
    run_demo,
    say,
    seller_requests,
    wait_for,
)


class DagsterJobs(Dagster):
    def launch(self, job: str) -> str:
        data = self.query(
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {"
            " ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
            p={
                "selector": {
                    "repositoryLocationName": "price_alchemy",
                    "repositoryName": "__repository__",
                    "jobName": job,
                },
                "runConfigData": {},
            },
        )
        launched = data["launchRun"]
        if "run" not in launched:
            raise SystemExit(f"could not launch {job}: {launched}")
        return launched["run"]["runId"]

    def runs_of(self, job: str) -> list[dict]:
        data = self.query(
            "query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results { runId status } } } }",
            f={"pipelineName": job},
        )
        return data["runsOrError"]["results"]

    def materialization(self, asset: str) -> dict[str, object]:
        """The latest materialization's metadata: text, float and int entries by label."""
        data = self.query(
            "query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { ... on Asset { assetMaterializations(limit: 1) {"
            " metadataEntries { label ... on TextMetadataEntry { text } ... on FloatMetadataEntry { floatValue }"
            " ... on IntMetadataEntry { intValue } } } } } }",
            k={"path": [asset]},
        )
        (latest,) = data["assetOrError"]["assetMaterializations"]
        return {e["label"]: e.get("text", e.get("floatValue", e.get("intValue"))) for e in latest["metadataEntries"]}


def finished(dagster: DagsterJobs, run_id: str, what: str, timeout: float) -> str:
    return wait_for(
        what,
        lambda: (s := dagster.run(run_id)["status"]) in {"SUCCESS", "FAILURE", "CANCELED"} and s,
        timeout=timeout,
        every=2,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO / ".shadow_demo")
    parser.add_argument("--rows", type=int, default=2_000, help="listings the first champion learns from")
    parser.add_argument("--more-rows", type=int, default=20_000, help="listings that arrive before the challenger")
    parser.add_argument("--traffic-rows", type=int, default=1_000, help="listings sellers ask the service about")
    parser.add_argument("--max-evals", type=int, default=3, help="tuning trials of each training")
    parser.add_argument("--summary", type=Path, default=None, help="write what happened as JSON here")
    run_demo(demo, parser.parse_args())


def demo(args: argparse.Namespace, summary: dict) -> None:
    started = time.monotonic()
    work = fresh_workdir(args.workdir)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "PRICE_ALCHEMY_DATA_DIR": str(work / "data"),
        "PRICE_ALCHEMY_RELOAD_SECONDS": "1",
    }
    for own in ("PRICE_ALCHEMY_PREDICTION_LOG", "PRICE_ALCHEMY_MODEL_STORE"):
        env.pop(own, None)
    store = work / "data" / "model_store"
    now = datetime.now(UTC).replace(microsecond=0)

    def synth(name: str, rows: int, seed: int, days_ago: float) -> Path:
        path = work / f"{name}.tsv"
        start = (now - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S")
        run_cli("synth", "--rows", str(rows), "--seed", str(seed), "--start", start, "--days", "1",
                "--output", str(path), env=env)  # fmt: skip
        return path

    say(f"1. a market of {args.rows:,} listings, trained to a champion")
    run_cli("ingest", str(synth("market", args.rows, 1, 12)), env=env)
    run_cli("train", "--max-evals", str(args.max_evals), env=env)
    first = json.loads((store / "champion.json").read_text())
    summary["champion"] = {"version": first["version"], "rmsle": first["metrics"]["rmsle"]}
    say(f"   champion {first['version']}: test RMSLE {first['metrics']['rmsle']:.4f}")

    say(f"2. {args.more_rows:,} more listings; trained again behind a gate that wants a 0.3 RMSLE margin")
    run_cli("ingest", str(synth("more", args.more_rows, 2, 6)), env=env)
    gate = work / "gate.json"
    gate.write_text(json.dumps({"ops": {"champion": {"config": {"margin": 0.3, "challenger_within": 1.0}}}}))
    run_cli("train", "--max-evals", str(args.max_evals), "--config", str(gate), env=env)
    challenger = json.loads((store / "challenger.json").read_text())
    if json.loads((store / "champion.json").read_text())["version"] != first["version"]:
        raise SystemExit("the gate should have kept the champion")
    summary["challenger"] = {"version": challenger["version"], "rmsle": challenger["metrics"]["rmsle"]}
    say(f"   champion kept; challenger {challenger['version']}: test RMSLE {challenger['metrics']['rmsle']:.4f}")

    ui_port, service_port = free_port(), free_port()
    service_url = f"http://127.0.0.1:{service_port}"
    with ExitStack() as stack:
        say(f"3. dagster dev (webserver + daemon) on 127.0.0.1:{ui_port} and the service on {service_url}")
        ui = background("dagster dev", [str(CLI), "ui", "--port", str(ui_port)], env, work / "dagster.log")
        service = background("the service", [str(CLI), "serve", "--port", str(service_port)], env, work / "service.log")
        summary["process_groups"] = [stack.enter_context(ui).pid, stack.enter_context(service).pid]
        dagster = DagsterJobs(ui_port)
        wait_for("the Dagster webserver", lambda: dagster.runs_of("promote_challenger_job") is not None, 240, 2)
        wait_for(
            "the service to load the challenger in shadow",
            lambda: http_json(f"{service_url}/health")["shadow"]["challenger_version"] == challenger["version"],
            timeout=180,
        )
        say(f"   serving {first['version']}, scoring {challenger['version']} in shadow")

        say(f"4. sellers ask for {args.traffic_rows:,} prices")
        traffic_file = synth("traffic", args.traffic_rows, 3, 1)
        traffic = seller_requests(traffic_file, args.traffic_rows)
        answers = [http_json(f"{service_url}/predict", body)["model_version"] for body in traffic]
        shadow = wait_for(
            "the shadow to catch up",
            lambda: (s := http_json(f"{service_url}/health")["shadow"])["scored"] + s["skipped"] >= len(traffic) and s,
            timeout=120,
        )
        summary["served"] = {"answered_by": sorted(set(answers)), "shadow": shadow}
        say(f"   answered by {sorted(set(answers))}; the shadow scored {shadow['scored']}, skipped {shadow['skipped']}")

        say("5. the same listings arrive with the prices they asked")
        run_cli("ingest", str(traffic_file), env=env)

        say("6. online_evaluation runs (as its daily schedule would)")
        online = dagster.launch("online_evaluation_job")
        status = finished(dagster, online, "the online evaluation run", timeout=300)
        verdict = dagster.materialization("online_evaluation")
        summary["online_evaluation"] = {"status": status, **verdict}
        say(f"   {status}: {verdict.get('challenger_reason')}")
        if verdict.get("challenger_verdict") != "promote":
            raise SystemExit(f"the challenger should have won on realized prices: {verdict}")
        promotion = wait_for(
            "the sensor's promotion run", lambda: dagster.runs_of("promote_challenger_job"), timeout=180, every=2
        )[0]["runId"]
        promoted = finished(dagster, promotion, "the promotion run", timeout=180)
        summary["promotion_run"] = {"run_id": promotion, "status": promoted}
        champion = json.loads((store / "champion.json").read_text())
        if promoted != "SUCCESS" or champion["version"] != challenger["version"]:
            raise SystemExit(f"the promotion run ended {promoted}; champion.json names {champion['version']}")
        say(f"   the sensor's run {promotion} {promoted}: champion.json now names {champion['version']}")
        served = wait_for(
            "the service to serve the new champion",
            lambda: http_json(f"{service_url}/model")["model_version"] == champion["version"],
            timeout=60,
        )
        answer = http_json(f"{service_url}/predict", traffic[0])
        summary["after"] = {"served": served, "model_version": answer["model_version"], "price": answer["price"]}
        say(f"   the service now answers with {answer['model_version']} (no restart)")
    summary["minutes"] = round((time.monotonic() - started) / 60, 1)
    say(f"done in {summary['minutes']} min; Dagster home: {work / 'dagster_home'}")


if __name__ == "__main__":
    main()
