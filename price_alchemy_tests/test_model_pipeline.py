"""The model assets end to end: features, tuning tracked in MLflow, evaluation, promotion."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest.mock import ANY

import dagster as dg
import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from price_alchemy_assets.defs.evaluation import champion, eval_report_checks, significant
from price_alchemy_assets.defs.features_and_model import CandidateModel
from price_alchemy_assets.defs.resources import resources_under
from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.listings.files import ListingsFile
from price_alchemy_assets.model.bundle import PriceModel
from price_alchemy_assets.model.evaluation import CANDIDATE, CHAMPION, RULES
from price_alchemy_assets.model.store import FolderModelStore

from .conftest import run_cli
from .platform_run import TINY, run_all
from .serving import train_champion


def materialized(result, key: str) -> dict:
    events = [
        e.event_specific_data.materialization
        for e in result.get_asset_materialization_events()
        if e.event_specific_data.materialization.asset_key == dg.AssetKey(key)
    ]
    return {k: v.value for k, v in events[-1].metadata.items()} if events else {}


SANE_PREDICTIONS = {"nan": 0, "negative": 0, "range_inverted": 0, "min_price": 3.0, "max_price": 90.0}


def gate(tmp_path: Path, store: FolderModelStore, candidate: float, rules: float, margin: float, version: str):
    """The real champion asset and eval_report's real blocking checks, behind an eval_report that
    says `candidate` RMSLE against the champion's 0.50 and the rules baseline's `rules`."""

    @dg.asset(name="eval_report", io_manager_key="record_io_manager")
    def stated_eval_report() -> dict:
        metrics = {CANDIDATE: {"rmsle": candidate}, CHAMPION: {"rmsle": 0.50}, RULES: {"rmsle": rules}}
        return {"metrics": metrics, "prediction_checks": {**SANE_PREDICTIONS, "max_actual_price": 100.0}}

    @dg.asset(name="tuned_model", io_manager_key="record_io_manager")
    def trained() -> CandidateModel:
        return CandidateModel(version, str(store.version_path("v1")), "", "", "data", 100, candidate)

    result = dg.materialize(
        [stated_eval_report, trained, champion, eval_report_checks],
        resources=resources_under(tmp_path),
        run_config={"ops": {"champion": {"config": {"margin": margin}}}},
        raise_on_error=False,
    )
    return result, materialized(result, "champion")


def test_the_gate_needs_the_margin_and_every_blocking_check(tmp_path):
    store = FolderModelStore(tmp_path / "model_store")
    record = train_champion(store, "v1", seed=5)
    # beats the champion's 0.50 by 0.02: not by a margin of 0.03, nor of exactly 0.02
    # a candidate kept out by a hair (within 0.01 of the champion) becomes the challenger; the next replaces it
    for margin in (0.03, 0.02):
        _, outcome = gate(tmp_path, store, candidate=0.48, rules=0.70, margin=margin, version=f"m{margin}")
        assert outcome["promoted"] is False and "champion kept" in outcome["reason"] and store.champion() == record
        assert outcome["challenger_version"] == f"m{margin}" == store.challenger().version
        assert outcome["challenger_reason"] == "challenger: candidate RMSLE 0.4800 within 0.01 of champion 0.5000"
    # a candidate that beats the champion but not the rules baseline never reaches the gate
    result, outcome = gate(tmp_path, store, candidate=0.40, rules=0.39, margin=0.0, version="worse-than-rules")
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"beats_rules_baseline": False, "predictions_sane": True}
    assert outcome == {} and store.champion() == record and store.challenger().version == "m0.02"
    # past the margin and every check: promoted, and the challenger judged against the old champion goes
    _, outcome = gate(tmp_path, store, candidate=0.48, rules=0.70, margin=0.01, version="better")
    assert outcome["promoted"] is True and store.champion().version == "better"
    assert store.challenger() is None and outcome["challenger_version"] == ""
    # close behind: a challenger; far behind: none (the old one goes too)
    _, outcome = gate(tmp_path, store, candidate=0.505, rules=0.70, margin=0.0, version="close")
    assert store.challenger().version == "close" and store.champion().version == "better"
    _, outcome = gate(tmp_path, store, candidate=0.60, rules=0.70, margin=0.0, version="far")
    assert store.challenger() is None and outcome["challenger_reason"].startswith(
        "no challenger: candidate RMSLE 0.6000"
    )


def test_train_evaluate_promote_then_keep(platform):
    resources, tmp_path = platform
    store = FolderModelStore(tmp_path / "model_store")
    with dg.instance_for_test() as instance:
        first = run_all(resources, instance)
        assert first.success
        features = materialized(first, "tfidf_features")
        assert features["rows/train"] > 5 * features["rows/test"] > 0 and features["vocabulary/name"] > 100
        report = materialized(first, "eval_report")
        assert report["candidate/rmsle"] < report["rules_baseline/rmsle"]
        assert "rules_baseline" in report["report"] and "RMSLE by top-level category" in report["report"]
        checks = {e.check_name: e.passed for e in first.get_asset_check_evaluations()}
        assert checks["beats_rules_baseline"] and checks["predictions_sane"]
        tuned = materialized(first, "tuned_model")
        assert f"{features['rows/train']:,} training listings" in tuned["training_profile"]
        promoted = materialized(first, "champion")
        assert promoted["promoted"] is True
        record = store.champion()
        assert record.dagster_run_id == first.run_id and record.training_rows == features["rows/train"]
        assert significant(record.metrics["rmsle"]) == report["candidate/rmsle"]  # 4 significant digits
        assert report["mlflow_run"] == record.mlflow_run_id == tuned["mlflow_run"]  # no server to link to
        # the plots are in the UI, not only in MLflow: two PNGs inline in the markdown
        pictures = re.findall(r"!\[(\w+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", report["plots"])
        assert [name for name, _ in pictures] == ["predicted_vs_actual", "rmsle_by_category"]
        assert all(base64.b64decode(data).startswith(b"\x89PNG") for _, data in pictures)
        # the per-category table holds the same numbers as the markdown report, row for row
        table = report["rmsle_by_category"]
        assert [column.name for column in table.schema.columns] == ["category", "rows", "candidate", "rules_baseline"]
        assert sum(row.data["rows"] for row in table.records) == report["test_rows"]
        for row in table.records:
            assert f"| {row.data['category']} " in report["report"]
            assert all(value == significant(value) for value in row.data.values() if isinstance(value, float))
        pointer = json.loads((tmp_path / "model_store" / "champion.json").read_text())
        assert pointer["version"] == record.version and pointer["mlflow_run_id"]
        # the bundle carries the listings it learned from as comparables: each finds itself
        bundle = PriceModel.load(store.bundle_dir(record.model_path), with_comparables=True)
        assert len(bundle.comparables) == features["rows/train"] + features["rows/validation"]
        learned = bundle.comparables.listings.to_pandas()
        for row in learned[~learned.duplicated(["name", "brand_name"], keep=False)].head(20).to_dict("records"):
            assert bundle.comparables.find(row)[0].name == row["name"]

        second = run_all(resources, instance)  # same data, same seed: same model, not better
        assert second.success
        again = materialized(second, "eval_report")
        assert again["candidate/rmsle"] == pytest.approx(again["champion/rmsle"])
        assert again["candidate/rmsle"] == pytest.approx(report["candidate/rmsle"])
        kept = materialized(second, "champion")
        assert kept["promoted"] is False and "champion kept" in kept["reason"]
        assert store.champion() == record
        # as good as the champion, not better: the challenger, scored in shadow until realized prices decide
        challenger = store.challenger()
        registered = str(materialized(second, "tuned_model")["registered_model_version"])
        assert kept["challenger_version"] == challenger.version != record.version
        assert challenger.registered_model_version == registered != record.registered_model_version
        assert json.loads((tmp_path / "model_store" / "challenger.json").read_text())["version"] == challenger.version

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("price-alchemy")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 * (1 + TINY["budget"]["max_evals"])  # a parent and its trials, twice
    assert all(run.info.status == "FINISHED" for run in runs)
    parent = client.get_run(record.mlflow_run_id)
    assert "test_rmsle" in parent.data.metrics
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "eval_report")} == {
        "eval_report/predicted_vs_actual.png",
        "eval_report/rmsle_by_category.png",
    }
    assert (
        str(client.get_model_version_by_alias("price-alchemy", "champion").version) == record.registered_model_version
    )
    assert (
        str(client.get_model_version_by_alias("price-alchemy", "challenger").version)
        == challenger.registered_model_version
    )
    assert mlflow.get_tracking_uri() != f"sqlite:///{tmp_path / 'mlflow.db'}"  # global state left alone

    # the registered champion loads as an MLflow pyfunc and predicts what the bundle predicts
    listings = pd.read_csv(tmp_path / "listings.tsv", sep="\t", nrows=20)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        pyfunc = mlflow.pyfunc.load_model("models:/price-alchemy@champion")
    finally:
        mlflow.set_tracking_uri(previous)
    expected = store.load_champion()[1].predict(listings)
    pd.testing.assert_frame_equal(pyfunc.predict(listings), expected)
    version = client.get_model_version("price-alchemy", record.registered_model_version)
    assert version.tags == {"dagster_run_id": first.run_id, "data_version": record.data_version, "code_version": ANY}
    assert version.tags["code_version"]
    [training_input] = parent.inputs.dataset_inputs
    assert training_input.dataset.name == f"listings@{record.data_version}"
    assert json.loads(training_input.dataset.profile)["num_rows"] == features["rows/train"]
    signature = pyfunc.metadata.signature
    assert signature.inputs.input_names() == list(SELLER_FIELDS)
    assert signature.outputs.input_names() == ["price", "price_low", "price_high"]
    assert {c.name for c in signature.inputs.inputs if not c.required} == {
        "category_name",
        "brand_name",
        "item_description",
    }

    # ...and leaves this virtualenv: MLflow builds an environment from the model's own requirements
    listings[list(SELLER_FIELDS)].to_csv(tmp_path / "listings.csv", index=False)
    scored = subprocess.run(
        [sys.executable, "-m", "mlflow", "models", "predict", "-m", "models:/price-alchemy@champion"]
        + ["-i", str(tmp_path / "listings.csv"), "-t", "csv", "--env-manager", "uv", "-o", str(tmp_path / "out.json")],
        env=os.environ
        | {
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "MLFLOW_ENV_ROOT": str(tmp_path / "mlflow-envs"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # uv
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert scored.returncode == 0, scored.stderr[-3000:]
    portable = pd.DataFrame(json.loads((tmp_path / "out.json").read_text())["predictions"])
    pd.testing.assert_frame_equal(portable, expected.reset_index(drop=True), rtol=1e-9)


def test_cli_train_then_predict_genuine_rows(
    price_alchemy_home, genuine_train, genuine_test, tmp_path, tiny_run_config
):
    assert run_cli("ingest", str(genuine_train)).returncode == 0
    trained = run_cli("train", "--max-evals", "2", "--config", str(tiny_run_config))
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert "materialized champion" in trained.stdout and "RMSLE by top-level category" in trained.stdout
    assert "mlflow ui --backend-store-uri" in trained.stdout
    output = tmp_path / "preds.csv"
    predicted = run_cli("predict", str(genuine_test), "--output", str(output))
    assert predicted.returncode == 0, predicted.stderr
    lines = output.read_text().splitlines()
    assert lines[0] == "test_id,price,price_low,price_high" and len(lines) == 2002
    assert "scored 2,001 listings" in predicted.stdout
    # the prices are the champion's own, for the right listings in the file's order
    _, model = FolderModelStore(price_alchemy_home / "data" / "model_store").load_champion()
    with ListingsFile(genuine_test) as listings:
        asked = pd.concat(listings.chunks(), ignore_index=True)
    expected = model.predict(asked)
    written = pd.read_csv(output)
    assert [f"test-{i}" for i in written["test_id"]] == asked["listing_id"].tolist()
    for column in ("price", "price_low", "price_high"):
        assert written[column].to_numpy() == pytest.approx(expected[column].to_numpy(), abs=0.0051), column
    assert (written["price_low"] <= written["price"]).all() and (written["price"] <= written["price_high"]).all()


def test_predict_without_champion_says_so(price_alchemy_home, genuine_test, tmp_path):
    result = run_cli("predict", str(genuine_test), "--output", str(tmp_path / "p.csv"))
    assert result.returncode == 1 and "no champion" in result.stderr


def test_predict_with_an_unusable_champion_or_output_is_one_line(price_alchemy_home, genuine_test, tmp_path):
    store = price_alchemy_home / "data" / "model_store"
    store.mkdir(parents=True)
    pointer = store / "champion.json"
    missing_bundle = json.dumps({"version": "v1", "model_path": str(store / "v1"), "promoted_at": "2026-12-02"})
    cases = [
        ("{ torn", tmp_path / "p.csv", f"{pointer}: not a champion record"),
        ('["a", "list"]', tmp_path / "p.csv", f"{pointer}: not a champion record"),
        (missing_bundle, tmp_path / "p.csv", f"names the bundle {store / 'v1'}, which cannot be loaded"),
        (missing_bundle, tmp_path / "missing" / "p.csv", f"the folder {tmp_path / 'missing'} does not exist"),
    ]
    for text, output, expected in cases:
        pointer.write_text(text)
        result = run_cli("predict", str(genuine_test), "--output", str(output))
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert lines[0].startswith("price-alchemy: error: ") and expected in lines[0], lines[0]
        assert not list(tmp_path.glob("**/*.csv*")), "nothing written"


def test_predict_stopped_midway_by_sigterm_or_ctrl_c_leaves_no_partial_files(price_alchemy_home, tmp_path):
    train_champion(FolderModelStore(price_alchemy_home / "data" / "model_store"), "v1", seed=1, rows=2_000)
    listings = tmp_path / "many.tsv"
    assert run_cli("synth", "--rows", "100000", "--output", str(listings)).returncode == 0
    cli = Path(sys.executable).with_name("price-alchemy")
    for stop in (signal.SIGTERM, signal.SIGINT):
        output = tmp_path / stop.name / "prices.csv"
        output.parent.mkdir()
        process = subprocess.Popen(
            [str(cli), "predict", str(listings), "--output", str(output), "--chunk-rows", "1000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
            # as in a terminal: a suite run as a background job would hand SIGINT down ignored
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        partial = output.with_name(output.name + ".partial")
        deadline = time.monotonic() + 120
        while not (partial.exists() and partial.stat().st_size > 10_000) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.02)
        assert partial.exists(), "scoring never started"
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode != 0, f"{stop.name}: stopped, not finished"
        assert "Traceback" not in stderr, stderr
        assert list(output.parent.iterdir()) == [], f"{stop.name}: a partial or half-written output was left"


def test_the_main_job_ends_every_mlflow_run_a_step_left_open(tmp_path):
    """dagster-mlflow's hook on the main job calls the "mlflow" resource's end_run after the last step
    or a failed one: whatever a step left RUNNING ends, nested runs first."""
    from price_alchemy_assets.defs.jobs import main_job
    from price_alchemy_assets.defs.resources import MlflowTrackingResource

    assert [hook.name for hook in main_job.hooks] == ["end_mlflow_on_run_finished"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        outer = mlflow.start_run(run_name="left-open")
        inner = mlflow.start_run(run_name="trial", nested=True)
        MlflowTrackingResource(tracking_uri=uri).end_run("FAILED")
        assert mlflow.active_run() is None
    finally:
        mlflow.set_tracking_uri(previous)
    client = MlflowClient(tracking_uri=uri)
    assert [client.get_run(run.info.run_id).info.status for run in (outer, inner)] == ["FAILED", "FAILED"]
