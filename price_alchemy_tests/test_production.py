"""The production setup against the real local PostgreSQL: the Dagster instance of
deploy/dagster/dagster.yaml under the real daemon (a sensor tick and its cursor in Postgres,
surviving a daemon restart), and the MLflow tracking server on a Postgres backend store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import psycopg2
import pytest

from price_alchemy_assets.definitions import MAIN_JOB, defs
from price_alchemy_assets.defs.jobs import TRAINING_TAG
from price_alchemy_assets.defs.listings import raw_listings, validated_and_rejected_listings, validated_listings_checks
from price_alchemy_assets.defs.resources import open_warehouse, resources_from_settings, resources_under
from price_alchemy_assets.devtools.local_servers import free_port
from price_alchemy_assets.listings.synthetic import DriftKind, write_synthetic_listings
from price_alchemy_assets.settings import load_settings
from price_alchemy_assets.warehouse.ingest import ingest_listings_file

from .conftest import REPO
from .platform_run import RUN_CONFIG
from .serving import default_sigint, group_gone, wait_for

BIN = Path(sys.executable).parent


def production_env(db: dict, tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster" / "dagster.yaml").read_text())
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": db["host"],
        "DAGSTER_PG_PORT": str(db["port"]),
        "DAGSTER_PG_USER": db["user"],
        "DAGSTER_PG_PASSWORD": db["password"],
        "DAGSTER_PG_DB": db["db"],
        "DAGSTER_MAX_CONCURRENT_RUNS": "4",
        "DAGSTER_COMPUTE_LOGS_DIR": str(tmp_path / "compute_logs"),
        "PRICE_ALCHEMY_DATA_DIR": str(tmp_path / "data"),
        **extra,
    }


def query(db: dict, sql: str) -> list[tuple]:
    connection = psycopg2.connect(host=db["host"], port=db["port"], user=db["user"], dbname=db["db"])
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        connection.close()


def drift_ticks(db: dict) -> list[dict]:
    """The drift sensor's finished ticks as stored in Postgres (serialized TickData: the sensor's
    name is kept as `job_name`, the status as an enum)."""
    ticks = []
    for status, body in query(db, "SELECT status, tick_body FROM job_ticks ORDER BY id"):
        tick = json.loads(body)
        if tick.get("job_name") == "listings_and_traffic_drift_sensor" and status != "STARTED":
            ticks.append(tick | {"status": status})
    return ticks


def start_daemon(env: dict, log: Path) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_sigint,
        )


def stop_daemon(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    finally:
        if not group_gone(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("the daemon left processes behind")


@pytest.mark.postgres
def test_production_instance_records_runs_and_checks(postgres_database, tmp_path, monkeypatch):
    env = production_env(postgres_database, tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    resources = resources_under(tmp_path)
    ingest_listings_file(write_synthetic_listings(tmp_path / "l.tsv", 500, seed=1), resources["warehouse"].open())
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        result = dg.materialize(
            [raw_listings, validated_and_rejected_listings, validated_listings_checks],
            resources=resources,
            instance=instance,
        )
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("validated_listings")) is not None
    db = postgres_database
    assert query(db, "SELECT run_id, status FROM runs") == [(result.run_id, "SUCCESS")]
    materialized = "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
    assert query(db, materialized) == [(3,)]
    assert query(db, "SELECT count(*) FROM asset_check_executions WHERE execution_status = 'SUCCEEDED'") == [(8,)]
    assert any((tmp_path / "compute_logs").iterdir()), "step logs kept where DAGSTER_COMPUTE_LOGS_DIR says"


@pytest.mark.postgres
@pytest.mark.slow
def test_drift_sensor_cursor_in_postgres_survives_a_daemon_restart(postgres_database, tmp_path, monkeypatch):
    db = postgres_database
    # runs stay queued (no run is launched), so the champion the sensor compares with stays put
    env = production_env(
        db,
        tmp_path,
        DAGSTER_MAX_CONCURRENT_RUNS="0",
        PRICE_ALCHEMY_DRIFT_SENSOR_SECONDS="3",
        PRICE_ALCHEMY_DRIFT_MIN_ROWS="300",
        PRICE_ALCHEMY_DRIFT_COOLDOWN_MINUTES="0",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    now = datetime.now(UTC)
    with open_warehouse(load_settings()) as warehouse:
        ingest_listings_file(
            write_synthetic_listings(tmp_path / "market.tsv", 3_000, seed=4, start=now - timedelta(days=5), days=4),
            warehouse,
        )
    with dg.DagsterInstance.get() as instance:
        trained = defs.resolve_job_def(MAIN_JOB).execute_in_process(
            instance=instance, run_config=RUN_CONFIG, resources=resources_from_settings(load_settings())
        )
    assert trained.success
    assert query(db, f"SELECT status FROM runs WHERE run_id = '{trained.run_id}'") == [("SUCCESS",)]
    with open_warehouse(load_settings()) as warehouse:
        ingest_listings_file(
            write_synthetic_listings(
                tmp_path / "drifted.tsv",
                1_500,
                seed=12,
                start=now - timedelta(hours=12),
                days=0.5,
                drift=DriftKind.NEW_BRANDS,
            ),  # fmt: skip
            warehouse,
        )
    started = subprocess.run(
        [
            str(BIN / "dagster"),
            "sensor",
            "start",
            "listings_and_traffic_drift_sensor",
            "-w",
            str(REPO / "workspace.yaml"),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert started.returncode == 0, started.stdout + started.stderr

    log = tmp_path / "daemon.log"
    daemon = start_daemon(env, log)
    try:
        wait_for(lambda: any(t.get("run_ids") for t in drift_ticks(db)), 180, "a drift-triggered run", log, every=1)
    finally:
        stop_daemon(daemon)
    retraining = f"pipeline_name = '{MAIN_JOB}' AND run_body LIKE '%listings_drift%'"
    triggered = query(db, f"SELECT run_id, status FROM runs WHERE {retraining}")
    assert len(triggered) == 1 and triggered[0][1] == "QUEUED"
    # beside it, an online evaluation of the prices served so far
    online = "pipeline_name = 'online_evaluation_job' AND run_body LIKE '%listings_drift%'"
    assert query(db, f"SELECT count(*) FROM runs WHERE {online}") == [(1,)]
    (cursor,) = {t["cursor"] for t in drift_ticks(db) if t.get("run_ids")}
    assert json.loads(cursor)["triggered"]["rows"] == 1_500

    before = len(drift_ticks(db))
    daemon = start_daemon(env, log)  # a restarted daemon reads the cursor back from Postgres
    try:
        wait_for(lambda: len(drift_ticks(db)) >= before + 2, 180, "two ticks after the restart", log, every=1)
    finally:
        stop_daemon(daemon)
    after = drift_ticks(db)[before:]
    assert all(t["status"] == "SKIPPED" and "already triggered" in t["skip_reason"] for t in after), after
    assert query(db, f"SELECT count(*) FROM runs WHERE {retraining}") == [(1,)]
    assert query(db, f"SELECT count(*) FROM runs WHERE {online}") == [(1,)]
    assert query(db, f"SELECT count(*) FROM runs WHERE run_body LIKE '%{TRAINING_TAG}%'") == [(2,)]


@pytest.mark.postgres
@pytest.mark.slow
def test_mlflow_server_on_postgres_tracks_and_registers_the_champion(postgres_database, tmp_path, monkeypatch):
    db = postgres_database
    port = free_port()
    log = tmp_path / "mlflow.log"
    backend = f"postgresql://{db['user']}@{db['host']}:{db['port']}/{db['db']}"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", backend,
             "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: _healthy(f"http://127.0.0.1:{port}/health"), 180, "the MLflow server", log, every=1)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
        monkeypatch.setenv("PRICE_ALCHEMY_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("PRICE_ALCHEMY_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
        monkeypatch.delenv("PRICE_ALCHEMY_MLFLOW_ARTIFACTS", raising=False)
        with open_warehouse(load_settings()) as warehouse:
            ingest_listings_file(write_synthetic_listings(tmp_path / "market.tsv", 3_000, seed=4), warehouse)
        with dg.instance_for_test() as instance:
            trained = defs.resolve_job_def(MAIN_JOB).execute_in_process(
                instance=instance, run_config=RUN_CONFIG, resources=resources_from_settings(load_settings())
            )
        assert trained.success
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    finished = query(db, "SELECT count(*) FROM runs WHERE status = 'FINISHED'")[0][0]
    assert finished >= 3  # the tuned_model run and its trials
    assert query(db, "SELECT alias FROM registered_model_aliases WHERE name = 'price-alchemy'") == [("champion",)]
    (source,) = query(db, "SELECT source FROM model_versions WHERE name = 'price-alchemy'")[0]
    assert source.startswith(("mlflow-artifacts:", "models:/"))
    assert any((tmp_path / "artifacts").rglob("MLmodel")), "the model's files are in the server's artifact store"


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
