"""One settings object: every PRICE_ALCHEMY_* variable, its default stated once, a bad value one line."""

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from price_alchemy_assets.defs.resources import (
    BigQueryWarehouseResource,
    DuckDBWarehouseResource,
    resources_from_settings,
    resources_under,
)
from price_alchemy_assets.monitoring.drift_thresholds import DriftThresholds, DriftWatchSettings
from price_alchemy_assets.settings import (
    GROUPS,
    Settings,
    SettingsError,
    configuration_rows,
    configuration_table,
    load_settings,
)

from .conftest import REPO

README = REPO / "README.md"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No PRICE_ALCHEMY_* variable from the machine or another test; the data dir in tmp_path."""
    for variable in [name for name in os.environ if name.startswith("PRICE_ALCHEMY_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("PRICE_ALCHEMY_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_the_readme_lists_exactly_the_settings_with_their_defaults():
    text = README.read_text()
    section = text[text.index("## Configuration") :].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    assert "\n".join(table) == configuration_table(), "regenerate it with `price-alchemy settings --table`"
    variables = [variable for variable, _, _ in configuration_rows()]
    assert len(variables) == len(set(variables)) == sum(len(group.model_fields) for group in GROUPS.values())
    # the table's defaults are the objects' own: $DATA_DIR stands for the data dir
    defaults = Settings.defaults("/srv/pa")
    assert "| `PRICE_ALCHEMY_DUCKDB_PATH` | the DuckDB warehouse file | `$DATA_DIR/warehouse.duckdb` |" in table
    assert defaults.warehouse.duckdb_path == Path("/srv/pa/warehouse.duckdb")
    assert any(row.startswith("| `PRICE_ALCHEMY_DRIFT_PSI` |") and row.endswith(" | `0.2` |") for row in table)
    assert defaults.drift.psi == DriftThresholds().psi == 0.2
    assert defaults.drift.cooldown_minutes == DriftWatchSettings.cooldown.total_seconds() / 60 == 60


def test_every_group_reads_its_variables(clean_env, monkeypatch):
    values = {
        "PRICE_ALCHEMY_WAREHOUSE": "BigQuery",  # any case, as before
        "PRICE_ALCHEMY_BQ_PROJECT": "p",
        "PRICE_ALCHEMY_BQ_DATASET": "d",
        "PRICE_ALCHEMY_MODEL_STORE": "gs://bucket/models",
        "PRICE_ALCHEMY_MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "PRICE_ALCHEMY_MAX_BATCH": "50",
        "PRICE_ALCHEMY_ADMIN_TOKEN": "s3cret",
        "PRICE_ALCHEMY_DRIFT_PSI": "0.3",
        "PRICE_ALCHEMY_DRIFT_RETRAIN_IN_PROCESS": "yes",
        "PRICE_ALCHEMY_DRIFT_SENSOR_SECONDS": "5",
        "PRICE_ALCHEMY_ALERT_EMAILS": "a@example.com, b@example.com",
        "PRICE_ALCHEMY_SMTP_STARTTLS": "true",
        "PRICE_ALCHEMY_EXECUTOR": "k8s",
        "PRICE_ALCHEMY_GCS_PREFIX": "",  # empty is unset
    }
    for variable, value in values.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()
    assert settings.data_dir == clean_env.resolve() and clean_env.is_dir()
    assert settings.warehouse.backend == "bigquery" and settings.warehouse.bq_project == "p"
    assert settings.model_store.location == "gs://bucket/models"
    assert settings.model_store.cache == clean_env.resolve() / "model_cache"
    assert settings.mlflow.tracking_uri == "http://127.0.0.1:5000" and settings.mlflow.artifacts is None
    assert settings.service.max_batch == 50 and settings.service.token() == "s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)
    assert settings.drift.watch_settings().thresholds == DriftThresholds(psi=0.3)
    assert settings.drift.retrain_in_process is True and settings.drift.sensor_seconds == 5
    assert settings.alerts.alert_emails == ["a@example.com", "b@example.com"] and settings.alerts.smtp_starttls
    assert settings.runs.executor == "k8s" and settings.gcp.gcs_prefix == "price-alchemy"
    assert settings.from_environment == set(values) - {"PRICE_ALCHEMY_GCS_PREFIX"} | {"PRICE_ALCHEMY_DATA_DIR"}


def test_a_bad_value_is_one_line_naming_every_bad_variable(clean_env, monkeypatch):
    monkeypatch.setenv("PRICE_ALCHEMY_DRIFT_PSI", "abc")
    monkeypatch.setenv("PRICE_ALCHEMY_MAX_BATCH", "0")
    monkeypatch.setenv("PRICE_ALCHEMY_WAREHOUSE", "bigquery")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert "PRICE_ALCHEMY_DRIFT_PSI='abc': Input should be a valid number" in message
    assert "PRICE_ALCHEMY_MAX_BATCH='0': Input should be greater than or equal to 1" in message
    assert "PRICE_ALCHEMY_WAREHOUSE=bigquery needs PRICE_ALCHEMY_BQ_PROJECT and PRICE_ALCHEMY_BQ_DATASET" in message


def test_a_bad_value_stops_the_cli_and_the_code_location_at_start_up(clean_env, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "DAGSTER_HOME": str(tmp_path / "home"),
        "PRICE_ALCHEMY_DATA_DIR": str(clean_env),
        "PRICE_ALCHEMY_DRIFT_PSI": "abc",
    }
    cli = Path(sys.executable).with_name("price-alchemy")
    for command in (["status"], ["serve", "--port", "1"], ["settings"]):
        done = subprocess.run([str(cli), *command], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done
        assert done.stderr.strip().splitlines() == [
            "price-alchemy: error: settings: PRICE_ALCHEMY_DRIFT_PSI='abc': "
            "Input should be a valid number, unable to parse string as a number"
        ]
    loading = subprocess.run(
        [sys.executable, "-c", "import price_alchemy_assets.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loading.returncode != 0 and "SettingsError: PRICE_ALCHEMY_DRIFT_PSI='abc'" in loading.stderr


def test_the_settings_command_shows_values_and_hides_secrets(clean_env):
    env = {
        "PATH": "/usr/bin:/bin",
        "PRICE_ALCHEMY_DATA_DIR": str(clean_env),
        "DAGSTER_HOME": str(clean_env.parent / "home"),
        "PRICE_ALCHEMY_SMTP_PASSWORD": "hunter2",
        "PRICE_ALCHEMY_MAX_BATCH": "7",
    }
    cli = Path(sys.executable).with_name("price-alchemy")
    shown = subprocess.run([str(cli), "settings"], env=env, capture_output=True, text=True, timeout=120, check=True)
    lines = dict(re.match(r"(\w+)=(.*)", line).groups() for line in shown.stdout.splitlines())
    assert set(lines) == {variable for variable, _, _ in configuration_rows()}
    assert lines["PRICE_ALCHEMY_MAX_BATCH"] == "7"
    assert lines["PRICE_ALCHEMY_RELOAD_SECONDS"] == "2.0  (default)"
    assert lines["PRICE_ALCHEMY_DUCKDB_PATH"] == f"{clean_env.resolve() / 'warehouse.duckdb'}  (default)"
    assert "hunter2" not in shown.stdout and lines["PRICE_ALCHEMY_SMTP_PASSWORD"] == "**********"


def test_resources_take_secrets_as_env_vars_and_defaults_ignore_the_environment(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PRICE_ALCHEMY_ALERT_WEBHOOK", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("PRICE_ALCHEMY_PREDICTION_LOG", "postgresql://u:pw@127.0.0.1/db")
    monkeypatch.setenv("PRICE_ALCHEMY_SMTP_PORT", "2525")
    resources = resources_from_settings(load_settings())
    assert resources["alerting"].webhook_url == dg.EnvVar("PRICE_ALCHEMY_ALERT_WEBHOOK")
    assert resources["prediction_log"].url == dg.EnvVar("PRICE_ALCHEMY_PREDICTION_LOG")
    assert resources["alerting"].smtp_port == 2525 and resources["alerting"].smtp_password is None
    assert isinstance(resources["warehouse"], DuckDBWarehouseResource)
    assert resources["warehouse"].path == str(clean_env.resolve() / "warehouse.duckdb")

    under = resources_under(tmp_path / "elsewhere")  # whatever the environment says
    assert under["alerting"].webhook_url is None and under["alerting"].smtp_port == 25
    assert under["prediction_log"].url == f"sqlite:///{tmp_path / 'elsewhere' / 'predictions.sqlite'}"
    assert under["model_store"].location == str(tmp_path / "elsewhere" / "model_store")

    monkeypatch.setenv("PRICE_ALCHEMY_WAREHOUSE", "bigquery")
    monkeypatch.setenv("PRICE_ALCHEMY_BQ_PROJECT", "p")
    monkeypatch.setenv("PRICE_ALCHEMY_BQ_DATASET", "d")
    bigquery = resources_from_settings(load_settings())["warehouse"]
    assert isinstance(bigquery, BigQueryWarehouseResource) and bigquery.dataset == dg.EnvVar("PRICE_ALCHEMY_BQ_DATASET")
