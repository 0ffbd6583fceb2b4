"""Shared fixtures: isolated Dagster homes, the genuine Mercari rows, and the real services
(BigQuery REST emulator, PostgreSQL) that tests start or reach on 127.0.0.1.

Where a service is missing, its tests skip with the reason, unless
PRICE_ALCHEMY_REQUIRE_SERVICES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from price_alchemy_assets.devtools.bigquery_emulator import EMULATOR_PYTHON, emulator_env, running_emulator
from price_alchemy_assets.devtools.local_servers import free_port, listening

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
GENUINE_TRAIN = SHARED_DATA / "mercari_train_sample.tsv"
GENUINE_TEST = SHARED_DATA / "mercari_test_sample.tsv"
POSTGRES_DSN = os.environ.get("PRICE_ALCHEMY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def require_service(reason: str) -> None:
    """Skip, or fail where CI demands every service."""
    if os.environ.get("PRICE_ALCHEMY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture
def genuine_train() -> Path:
    if not GENUINE_TRAIN.is_file():
        pytest.skip(f"genuine Mercari rows not found at {GENUINE_TRAIN} (../shared/data is absent)")
    return GENUINE_TRAIN


@pytest.fixture
def genuine_test() -> Path:
    if not GENUINE_TEST.is_file():
        pytest.skip(f"genuine Mercari test rows not found at {GENUINE_TEST} (../shared/data is absent)")
    return GENUINE_TEST


@pytest.fixture
def price_alchemy_home(tmp_path, monkeypatch) -> Path:
    """A private DAGSTER_HOME (and with it the data dir) for one test."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name in (
        "PRICE_ALCHEMY_DATA_DIR",
        "PRICE_ALCHEMY_WAREHOUSE",
        "PRICE_ALCHEMY_DUCKDB_PATH",
        "PRICE_ALCHEMY_ASSETS_DB",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def tiny_run_config(tmp_path) -> Path:
    """A run config file with the tests' tiny tuning budget, for `price-alchemy ... --config`."""
    import json

    from price_alchemy_tests.platform_run import RUN_CONFIG

    path = tmp_path / "tiny-run-config.json"
    path.write_text(json.dumps(RUN_CONFIG))
    return path


@pytest.fixture
def platform(tmp_path):
    """A warehouse with 3,000 synthetic listings and the model resources, all under tmp_path."""
    from price_alchemy_tests.platform_run import platform_under

    return platform_under(tmp_path)


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory) -> Iterator[str]:
    """A bqemulator process on 127.0.0.1 for the whole session; yields its REST endpoint."""
    if not EMULATOR_PYTHON.is_file():
        require_service(f"BigQuery emulator virtualenv not found at {EMULATOR_PYTHON}; run scripts/setup.sh --test")
    with running_emulator(tmp_path_factory.mktemp("bqemulator") / "emulator.log") as endpoint:
        yield endpoint


@pytest.fixture
def bigquery_env(bigquery_emulator, monkeypatch) -> dict[str, str]:
    """Environment that points the platform's warehouse at a fresh emulator dataset."""
    env = emulator_env(bigquery_emulator, f"listings_{uuid.uuid4().hex[:8]}")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory) -> Iterator[str]:
    """A GCS emulator (gcp-storage-emulator, in memory) on 127.0.0.1 for the session; yields its URL."""
    command = Path(sys.executable).with_name("gcp-storage-emulator")
    if not command.is_file():
        require_service(f"GCS emulator not found at {command}; run scripts/setup.sh --test")
    port = free_port()
    log = tmp_path_factory.mktemp("gcs") / "emulator.log"
    arguments = ["start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    with listening([str(command), *arguments], port, log) as url:
        yield url


@pytest.fixture
def gcs_bucket(gcs_emulator, monkeypatch) -> str:
    """A fresh bucket on the emulator, with the environment pointing Google's client at it."""
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    name = f"price-alchemy-{uuid.uuid4().hex[:8]}"
    storage.Client().create_bucket(name)
    return name


@pytest.fixture
def postgres_database() -> Iterator[dict[str, str]]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - dev extra missing
        require_service("psycopg2 is not installed")
    try:
        admin = psycopg2.connect(POSTGRES_DSN, connect_timeout=5)
    except Exception as error:
        require_service(f"PostgreSQL not reachable at {POSTGRES_DSN}: {error}")
    admin.autocommit = True
    name = f"price_alchemy_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    params = admin.get_dsn_parameters()
    try:
        yield {
            "host": params.get("host", "127.0.0.1"),
            "port": params.get("port", "5432"),
            "user": params.get("user", "postgres"),
            "password": "",
            "db": name,
        }
    finally:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """The console script as a user runs it."""
    cli = Path(sys.executable).with_name("price-alchemy")
    return subprocess.run(
        [str(cli), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout
    )
