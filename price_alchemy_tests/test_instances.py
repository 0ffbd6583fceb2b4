"""The instance files: the code location loads from workspace.yaml, and runs are recorded in
SQLite (dagster.yaml) or PostgreSQL (deploy/dagster/dagster.yaml)."""

from __future__ import annotations

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
        "listings_table",
    }
    main_job = defs.resolve_job_def(MAIN_JOB)
    assert {key.to_user_string() for key in main_job.asset_layer.executable_asset_keys} == set(ASSETS)
    assert defs.resolve_sensor_def("listings_drift_sensor").job_name == MAIN_JOB
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    result = subprocess.run(
        [dagster, "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
