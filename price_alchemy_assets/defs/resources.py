"""Dagster resources: thin adapters from configuration to the plain warehouse classes.

Which warehouse backs the platform is configuration: PRICE_ALCHEMY_WAREHOUSE=duckdb (the
embedded default) or bigquery, with BigQuery's project, dataset and table from dg.EnvVar.
Where asset values and models live likewise: local files by default; with PRICE_ALCHEMY_GCS_BUCKET
the IO managers write to that bucket, and PRICE_ALCHEMY_MODEL_STORE=gs://… puts the model store there.
"""

import os
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import dagster as dg
from dagster_duckdb_pandas import DuckDBPandasIOManager
from dagster_gcp import BigQueryResource, GCSPickleIOManager
from google.cloud import bigquery
from pydantic import Field

from price_alchemy_assets import settings
from price_alchemy_assets.defs.io_managers import GcpGCSResource, TrainingDataIOManager
from price_alchemy_assets.defs.run_config import config_class, dataclass_from_config
from price_alchemy_assets.model.store import ModelStore, open_model_store
from price_alchemy_assets.model.tracking import ExperimentTracker, end_open_runs
from price_alchemy_assets.monitoring.alerts import AlertChannel, LogChannel, SmtpChannel, WebhookChannel
from price_alchemy_assets.monitoring.drift import DriftThresholds
from price_alchemy_assets.monitoring.drift_watch import DriftWatchSettings
from price_alchemy_assets.monitoring.traffic import PredictionLogReader
from price_alchemy_assets.settings import (
    GCP_CREDENTIALS_ENV,
    GCP_PROJECT_ENV,
    GCS_BUCKET_ENV,
    GCS_PREFIX_ENV,
    MODEL_STORE_ENV,
)
from price_alchemy_assets.warehouse import Warehouse
from price_alchemy_assets.warehouse.bigquery_backend import BigQueryWarehouse
from price_alchemy_assets.warehouse.duckdb_backend import DEFAULT_MEMORY_LIMIT, DuckDBWarehouse


class EndpointBigQueryResource(BigQueryResource):
    """dagster-gcp's BigQueryResource plus an optional API endpoint, for a local emulator of
    BigQuery's REST API. With an endpoint the client is anonymous and never asks for a
    BigQuery Storage client or the GCE metadata server."""

    api_endpoint: str | None = Field(default=None, description="e.g. http://127.0.0.1:9050; unset for Google's")

    @contextmanager
    def get_client(self) -> Iterator[bigquery.Client]:
        if not self.api_endpoint:
            with super().get_client() as client:
                yield client
            return
        from google.auth.credentials import AnonymousCredentials

        os.environ.setdefault("NO_GCE_CHECK", "true")
        client = _EmulatorClient(
            project=self.project,
            location=self.location,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.api_endpoint},
        )
        try:
            yield client
        finally:
            client.close()


class _EmulatorClient(bigquery.Client):
    def _ensure_bqstorage_client(self, *args, **kwargs):
        return None


class WarehouseResource(dg.ConfigurableResource):
    """Where listings live. Subclasses pick the backend; assets only call `open()`."""

    def open(self) -> Warehouse:
        raise NotImplementedError


class DuckDBWarehouseResource(WarehouseResource):
    path: str = Field(description="DuckDB database file holding the listings table")
    memory_limit: str = Field(default=DEFAULT_MEMORY_LIMIT, description="DuckDB buffer pool cap, e.g. 512MB")
    lock_wait_seconds: float = Field(default=20.0, description="wait this long for another process to release the file")

    def open(self) -> Warehouse:
        return DuckDBWarehouse(self.path, self.memory_limit, self.lock_wait_seconds)


class BigQueryWarehouseResource(WarehouseResource):
    bigquery: EndpointBigQueryResource
    dataset: str = Field(description="BigQuery dataset holding the listings table")
    listings_table: str = Field(default="listings")

    def open(self) -> Warehouse:
        return BigQueryWarehouse(
            self.bigquery.get_client,
            project=self.bigquery.project,
            dataset=self.dataset,
            location=self.bigquery.location,
            listings_table=self.listings_table,
        )


class DriftMonitor(dg.ConfigurableResource):
    """Drift pacing; DriftMonitorResource adds every field of monitoring.drift.DriftThresholds."""

    cooldown_minutes: float = Field(
        default=DriftWatchSettings.cooldown / timedelta(minutes=1),
        description="least time between two drift-triggered runs",
    )
    labelled_sample: int = Field(
        default=DriftWatchSettings.labelled_sample, description="new labelled listings scored per tick, at most"
    )
    retrain_max_evals: int | None = Field(default=None, description="tuning trials of a drift-triggered run")
    retrain_timeout_seconds: float | None = Field(default=None, description="tuning budget of a drift-triggered run")
    retrain_in_process: bool = Field(
        default=False, description="run a drift-triggered run's steps in one process (small machines, demos)"
    )

    def retrain_run_config(self) -> dict:
        """The run config a drift-triggered run gets: the job's defaults unless a budget is set."""
        budget = {
            key: value
            for key, value in (("max_evals", self.retrain_max_evals), ("timeout_seconds", self.retrain_timeout_seconds))
            if value is not None
        }
        config: dict = {"ops": {"tuned_model": {"config": {"budget": budget}}}} if budget else {}
        if self.retrain_in_process:
            config["execution"] = {"config": {"in_process": {}}}
        return config

    def watch_settings(self) -> DriftWatchSettings:
        return DriftWatchSettings(
            dataclass_from_config(DriftThresholds, self), self.labelled_sample, timedelta(minutes=self.cooldown_minutes)
        )


DriftMonitorResource = config_class(
    "DriftMonitorResource",
    DriftThresholds,
    base=DriftMonitor,
    doc="Drift thresholds (monitoring.drift.DriftThresholds) and pacing; PRICE_ALCHEMY_DRIFT_<FIELD> sets a field.",
)


class PredictionLogResource(dg.ConfigurableResource):
    """The service's prediction log, read by the drift sensor as live traffic."""

    url: str = Field(description="SQLAlchemy URL of the prediction log (SQLite file or PostgreSQL)")

    def reader(self) -> PredictionLogReader:
        return PredictionLogReader(self.url)


def prediction_log_from_env() -> PredictionLogResource:
    """PRICE_ALCHEMY_PREDICTION_LOG (a secret where it holds a password), else the local SQLite file."""
    if os.environ.get(settings.PREDICTION_LOG_ENV):
        return PredictionLogResource(url=dg.EnvVar(settings.PREDICTION_LOG_ENV))
    return PredictionLogResource(url=settings.default_prediction_log_url())


class AlertingResource(dg.ConfigurableResource):
    """Where alerts go: the log always, a Slack-compatible webhook and e-mail when configured."""

    dagster_url: str = Field(default="http://127.0.0.1:3000", description="base URL of the Dagster UI, for run links")
    webhook_url: str | None = Field(default=None, description="Slack-compatible incoming webhook")
    smtp_host: str | None = Field(default=None, description="SMTP server; e-mail is off without it")
    smtp_port: int = 25
    smtp_sender: str = "price-alchemy@localhost"
    smtp_recipients: list[str] = Field(default_factory=list)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    attempts: int = Field(default=3, description="tries per channel and alert, with exponential backoff")

    def channels(self) -> list[AlertChannel]:
        channels: list[AlertChannel] = [LogChannel()]
        if self.webhook_url:
            channels.append(WebhookChannel(self.webhook_url))
        if self.smtp_host and self.smtp_recipients:
            channels.append(
                SmtpChannel(
                    self.smtp_host,
                    self.smtp_port,
                    self.smtp_sender,
                    self.smtp_recipients,
                    self.smtp_username,
                    self.smtp_password,
                    self.smtp_starttls,
                )
            )
        return channels

    def run_url(self, run_id: str) -> str:
        return f"{self.dagster_url.rstrip('/')}/runs/{run_id}"


def _flag(value: str) -> bool:
    """An on/off environment variable: 1, true or yes (any case) is on."""
    return value.strip().lower() in {"1", "true", "yes"}


def alerting_from_env() -> AlertingResource:
    """PRICE_ALCHEMY_DAGSTER_URL, PRICE_ALCHEMY_ALERT_WEBHOOK (secret), PRICE_ALCHEMY_SMTP_HOST, _PORT,
    _SENDER, _USERNAME, _PASSWORD (secret), _STARTTLS, and PRICE_ALCHEMY_ALERT_EMAILS (comma-separated)."""
    env = os.environ.get
    secret = {
        name: dg.EnvVar(variable)
        for name, variable in (
            ("webhook_url", "PRICE_ALCHEMY_ALERT_WEBHOOK"),
            ("smtp_password", "PRICE_ALCHEMY_SMTP_PASSWORD"),
        )
        if env(variable)
    }
    return AlertingResource(
        dagster_url=env("PRICE_ALCHEMY_DAGSTER_URL") or "http://127.0.0.1:3000",
        smtp_host=env("PRICE_ALCHEMY_SMTP_HOST") or None,
        smtp_port=int(env("PRICE_ALCHEMY_SMTP_PORT") or 25),
        smtp_sender=env("PRICE_ALCHEMY_SMTP_SENDER") or "price-alchemy@localhost",
        smtp_recipients=[a.strip() for a in (env("PRICE_ALCHEMY_ALERT_EMAILS") or "").split(",") if a.strip()],
        smtp_username=env("PRICE_ALCHEMY_SMTP_USERNAME") or None,
        smtp_starttls=_flag(env("PRICE_ALCHEMY_SMTP_STARTTLS") or ""),
        **secret,
    )


def drift_monitor_from_env() -> DriftMonitorResource:
    """PRICE_ALCHEMY_DRIFT_<FIELD> (PSI, MIN_ROWS, COOLDOWN_MINUTES, RETRAIN_MAX_EVALS...) overrides a field."""
    overrides = {}
    for field, spec in DriftMonitorResource.model_fields.items():
        variable = f"PRICE_ALCHEMY_DRIFT_{field.upper()}"
        if os.environ.get(variable):
            overrides[field] = _parsed(variable, os.environ[variable], spec.annotation)
    return DriftMonitorResource(**overrides)


def _parsed(variable: str, text: str, kind) -> int | float | bool:
    """An environment variable's value as the field's type, or an error naming the variable."""
    kind = next((arg for arg in typing.get_args(kind) if arg is not type(None)), kind)  # int | None -> int
    if kind is bool:
        return _flag(text)
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{variable}={text!r}: expected {kind.__name__}") from None


def warehouse_from_env() -> WarehouseResource:
    backend = os.environ.get(settings.WAREHOUSE_ENV, "duckdb").strip().lower()
    if backend == "duckdb":
        return DuckDBWarehouseResource(
            path=os.environ.get("PRICE_ALCHEMY_DUCKDB_PATH") or str(settings.default_warehouse_path()),
            memory_limit=os.environ.get("PRICE_ALCHEMY_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT,
            lock_wait_seconds=float(os.environ.get("PRICE_ALCHEMY_DUCKDB_LOCK_WAIT_SECONDS") or 20),
        )
    if backend == "bigquery":
        return BigQueryWarehouseResource(
            bigquery=EndpointBigQueryResource(
                project=dg.EnvVar("PRICE_ALCHEMY_BQ_PROJECT"),
                location=os.environ.get("PRICE_ALCHEMY_BQ_LOCATION") or None,
                gcp_credentials=_env_var_if_set(GCP_CREDENTIALS_ENV),
                api_endpoint=os.environ.get("PRICE_ALCHEMY_BQ_API_ENDPOINT") or None,
            ),
            dataset=dg.EnvVar("PRICE_ALCHEMY_BQ_DATASET"),
            listings_table=os.environ.get("PRICE_ALCHEMY_BQ_LISTINGS_TABLE", "listings"),
        )
    raise ValueError(f"{settings.WAREHOUSE_ENV}={backend!r}: expected 'duckdb' or 'bigquery'")


def listings_io_manager() -> dg.ConfigurableIOManager:
    """Asset tables (raw, validated and rejected listings) in an embedded DuckDB file, or in the GCS
    bucket when PRICE_ALCHEMY_GCS_BUCKET is set (Kubernetes run pods share no disk)."""
    if os.environ.get(GCS_BUCKET_ENV):
        return _gcs_pickle_io_manager("assets")
    return DuckDBPandasIOManager(
        database=os.environ.get("PRICE_ALCHEMY_ASSETS_DB") or str(settings.default_assets_db_path()),
        schema="price_alchemy",
    )


def _env_var_if_set(name: str) -> dg.EnvVar | None:
    """Optional settings: resolved by Dagster at run time (and shown by name, not value, in the UI)."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def _gcs_prefix(kind: str) -> str:
    return f"{os.environ.get(GCS_PREFIX_ENV, 'price-alchemy').strip('/')}/{kind}"


def gcs_from_env() -> GcpGCSResource:
    """One GCS client configuration for the model store and both GCS IO managers."""
    return GcpGCSResource(
        project=_env_var_if_set(GCP_PROJECT_ENV), gcp_credentials=_env_var_if_set(GCP_CREDENTIALS_ENV)
    )


def _gcs_pickle_io_manager(kind: str) -> GCSPickleIOManager:
    return GCSPickleIOManager(
        gcs=gcs_from_env(),
        gcs_bucket=dg.EnvVar(GCS_BUCKET_ENV),
        gcs_prefix=_gcs_prefix(kind),
    )


@contextmanager
def open_warehouse_from_env() -> Iterator[Warehouse]:
    """The configured warehouse outside a Dagster run (CLI, tests, scripts), EnvVars resolved."""
    with warehouse_from_env().process_config_and_initialize_cm() as resource:
        yield resource.open()


class MlflowTrackingResource(dg.ConfigurableResource):
    """Where training runs and the model registry live (replaces the legacy dagster-mlflow resource).
    Bound to the key "mlflow", where dagster-mlflow's end_mlflow_on_run_finished hook finds `end_run`."""

    tracking_uri: str = Field(description="MLflow tracking (and registry) URI")
    artifact_root: str | None = Field(default=None, description="artifact location for a new experiment")
    experiment: str = "price-alchemy"
    registered_model: str = "price-alchemy"

    def tracker(self) -> ExperimentTracker:
        return ExperimentTracker(self.tracking_uri, self.experiment, self.registered_model, self.artifact_root)

    def end_run(self, status: str = "FINISHED") -> None:
        """End every MLflow run this process still has open: the job's last word, after each step's own
        tracker has ended its runs (a run opened outside a tracker would otherwise stay RUNNING)."""
        end_open_runs(status)


class ModelStoreResource(dg.ConfigurableResource):
    location: str = Field(description="folder or gs://bucket/path of model bundles and the champion pointer")
    gcs: dg.ResourceDependency[GcpGCSResource]
    cache_dir: str | None = Field(default=None, description="where GCS bundles are downloaded to be loaded")

    def store(self) -> ModelStore:
        return open_model_store(self.location, self.cache_dir, self.gcs.get_client)


def model_resources_from_env() -> dict:
    """A tracking server (PRICE_ALCHEMY_MLFLOW_TRACKING_URI=http…) keeps artifacts where it is
    configured to, unless PRICE_ALCHEMY_MLFLOW_ARTIFACTS says otherwise; the local SQLite store
    keeps them in the data dir. PRICE_ALCHEMY_GCS_BUCKET moves training data and records to GCS."""
    tracking_uri = os.environ.get("PRICE_ALCHEMY_MLFLOW_TRACKING_URI") or settings.default_mlflow_tracking_uri()
    server = tracking_uri.startswith(("http://", "https://"))
    default_artifacts = None if server else str(settings.default_mlflow_artifacts())
    artifacts = os.environ.get("PRICE_ALCHEMY_MLFLOW_ARTIFACTS") or default_artifacts
    resources = {
        "mlflow": MlflowTrackingResource(tracking_uri=tracking_uri, artifact_root=artifacts),
        "model_store": _model_store_resource(),
    }
    if not os.environ.get(GCS_BUCKET_ENV):
        return resources | _local_model_io_managers(settings.data_dir())
    return resources | {
        "training_data_io_manager": TrainingDataIOManager(
            gcs_bucket=dg.EnvVar(GCS_BUCKET_ENV), gcs_prefix=_gcs_prefix("training_data"), gcs=gcs_from_env()
        ),
        "record_io_manager": _gcs_pickle_io_manager("records"),
    }


def _model_store_resource() -> ModelStoreResource:
    """PRICE_ALCHEMY_MODEL_STORE: a folder or gs://bucket/path; else the data dir's folder."""
    location = _env_var_if_set(MODEL_STORE_ENV) or settings.model_store_location()
    return ModelStoreResource(location=location, gcs=gcs_from_env())


def resources_from_env() -> dict:
    """Every resource the definitions use, configured by the environment as it is now."""
    return {
        "warehouse": warehouse_from_env(),
        "io_manager": listings_io_manager(),
        "drift_monitor": drift_monitor_from_env(),
        "prediction_log": prediction_log_from_env(),
        "alerting": alerting_from_env(),
        **model_resources_from_env(),
    }


def resources_under(root: Path) -> dict:
    """Every resource the definitions use, with all state in one folder (tests, benchmarks)."""
    root = Path(root)
    return {
        "warehouse": DuckDBWarehouseResource(path=str(root / "warehouse.duckdb")),
        "io_manager": DuckDBPandasIOManager(database=str(root / "assets.duckdb"), schema="price_alchemy"),
        "drift_monitor": DriftMonitorResource(),
        "prediction_log": PredictionLogResource(url=f"sqlite:///{root / 'predictions.sqlite'}"),
        "alerting": AlertingResource(),
        "mlflow": MlflowTrackingResource(
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "mlartifacts")
        ),
        "model_store": ModelStoreResource(location=str(root / "store"), gcs=GcpGCSResource()),
        **_local_model_io_managers(root),
    }


def _local_model_io_managers(data: Path) -> dict:
    return {
        "training_data_io_manager": TrainingDataIOManager(base_dir=str(data / "training_data"), gcs=GcpGCSResource()),
        "record_io_manager": dg.FilesystemIOManager(base_dir=str(data / "records")),
    }


@dg.definitions
def resources() -> dg.Definitions:
    """Every resource the code location binds, configured by the environment when it loads."""
    return dg.Definitions(resources=resources_from_env())
