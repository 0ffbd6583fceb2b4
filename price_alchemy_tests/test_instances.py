"""The instance files: the code location loads from workspace.yaml, and runs are recorded in
SQLite (dagster.yaml) or PostgreSQL (deploy/dagster/dagster.yaml)."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import psycopg2
import pytest

from price_alchemy_assets.assets.listings import raw_listings, validated_and_rejected_listings
from price_alchemy_assets.checks.listings import validated_listings_checks
from price_alchemy_assets.definitions import MAIN_JOB, defs
from price_alchemy_assets.listings.ingest import ingest_listings_file
from price_alchemy_assets.listings.synthetic import write_synthetic_listings
from price_alchemy_assets.resources import resources_under

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
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == {*ASSETS, "drift_report"}
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


@pytest.mark.postgres
def test_postgres_instance_records_runs(postgres_database, tmp_path, monkeypatch):
    for key, value in {
        "HOST": postgres_database["host"],
        "PORT": str(postgres_database["port"]),
        "USER": postgres_database["user"],
        "PASSWORD": postgres_database["password"],
        "DB": postgres_database["db"],
    }.items():
        monkeypatch.setenv(f"DAGSTER_PG_{key}", value)
    resources = resources_under(tmp_path)
    ingest_listings_file(write_synthetic_listings(tmp_path / "l.tsv", 500, seed=1), resources["warehouse"].open())
    home = tmp_path / "dagster_home"  # the instance's local storage lands beside its yaml, never in the repo
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize(
            [raw_listings, validated_and_rejected_listings, validated_listings_checks],
            resources=resources,
            instance=instance,
        )
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("validated_listings")) is not None
    connection = psycopg2.connect(
        host=postgres_database["host"],
        port=postgres_database["port"],
        user=postgres_database["user"],
        dbname=postgres_database["db"],
    )
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT run_id, status FROM runs")
        assert cursor.fetchall() == [(result.run_id, "SUCCESS")]
        cursor.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        assert cursor.fetchone()[0] == 3
        cursor.execute("SELECT count(*) FROM asset_check_executions WHERE execution_status = 'SUCCEEDED'")
        assert cursor.fetchone()[0] == 8
    finally:
        connection.close()
