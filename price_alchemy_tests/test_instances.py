"""The instance files: the code location loads from workspace.yaml, and runs are recorded in
SQLite (dagster.yaml) or PostgreSQL (deploy/dagster/dagster.yaml)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from price_alchemy_assets.definitions import MAIN_JOB, defs

from .conftest import REPO

ASSETS = (
    "raw_listings",
    "validated_listings",
    "rejected_listings",
    "tfidf_features",
    "tuned_model",
    "eval_report",
    "champion",
)


def test_definitions_load_and_validate(price_alchemy_home):
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == {
        *ASSETS,
        "drift_report",
        "online_evaluation",
        "listings_table",
    }
    main_job = defs.resolve_job_def(MAIN_JOB)
    assert {key.to_user_string() for key in main_job.asset_layer.executable_asset_keys} == set(ASSETS)
    sensor = defs.resolve_sensor_def("listings_and_traffic_drift_sensor")
    assert [job.name for job in sensor.jobs] == [MAIN_JOB, "online_evaluation_job"]
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    result = subprocess.run(
        [dagster, "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dg_lists_every_definition_of_the_defs_folder(tmp_path):
    """`dg list defs`, as a developer runs it in the repository, finds each stage's definitions in
    defs/ (the folder the code location loads), with the groups and dependencies the UI shows."""
    dg = os.path.join(os.path.dirname(sys.executable), "dg")
    (tmp_path / "dagster.yaml").touch()  # a scratch instance, without Dagster's warning that it has no config
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "VIRTUAL_ENV": os.path.dirname(os.path.dirname(sys.executable))}
    result = subprocess.run(
        [dg, "list", "defs", "--json"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assets = {asset["asset_key"]: asset for asset in listed["assets"]}
    assert set(assets) == {*ASSETS, "drift_report", "online_evaluation", "listings_table"}
    assert assets["online_evaluation"]["group_name"] == assets["drift_report"]["group_name"] == "monitoring"
    assert assets["champion"]["group_name"] == assets["tuned_model"]["group_name"] == "model"
    assert set(assets["eval_report"]["dependency_keys"]) == {"tfidf_features", "tuned_model"}
    jobs = {MAIN_JOB, "observe_listings_table", "online_evaluation_job", "promote_challenger_job"}
    assert {job["name"] for job in listed["jobs"]} == jobs
    assert {sensor["name"] for sensor in listed["sensors"]} == {
        "listings_and_traffic_drift_sensor",
        "failure_alert_sensor",
        "challenger_promotion_sensor",
    }
    schedules = {schedule["name"] for schedule in listed["schedules"]}
    assert schedules == {"hourly_listings_observation", "weekly_retraining", "daily_online_evaluation"}
    checks = {check["key"] for check in listed["asset_checks"]}
    assert "validated_listings:log_price_outliers" in checks and any(key.startswith("eval_report:") for key in checks)
    assert "online_evaluation:realized_error_within_margin" in checks
    assert {resource["name"] for resource in listed["resources"]} == set(defs.resources)
