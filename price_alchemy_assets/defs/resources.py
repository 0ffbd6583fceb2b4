"""Dagster resources: thin adapters from configuration to the plain warehouse classes.

Which warehouse backs the platform is configuration: PRICE_ALCHEMY_WAREHOUSE=duckdb (the
embedded default) or bigquery, with BigQuery's project, dataset and table from dg.EnvVar.
Where asset values and models live likewise: local files by default; with PRICE_ALCHEMY_GCS_BUCKET
the IO managers write to that bucket, and PRICE_ALCHEMY_MODEL_STORE=gs://… puts the model store there.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_duckdb_pandas import DuckDBPandasIOManager
from dagster_gcp import BigQueryResource, GCSPickleIOManager
from google.cloud import bigquery
from pydantic import Field, create_model

from price_alchemy_assets.defs.io_managers import GcpGCSResource, TrainingDataIOManager
from price_alchemy_assets.model.store import ModelStore, open_model_store
from price_alchemy_assets.model.tracking import ExperimentTracker, end_open_runs
from price_alchemy_assets.monitoring.alerts import AlertChannel, LogChannel, SmtpChannel, WebhookChannel
from price_alchemy_assets.monitoring.drift_thresholds import DriftWatchSettings
from price_alchemy_assets.monitoring.traffic import PredictionLogReader
from price_alchemy_assets.settings import (
    AlertSettings,
    DriftSettings,
    GcpSettings,
    ModelStoreSettings,
    ServiceSettings,
    Settings,
    WarehouseSettings,
    settings_at_start,
)
from price_alchemy_assets.warehouse import Warehouse
from price_alchemy_assets.warehouse.bigquery_backend import BigQueryWarehouse
from price_alchemy_assets.warehouse.duckdb_backend import DuckDBWarehouse


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


_WAREHOUSE_DEFAULTS = WarehouseSettings.model_fields


class DuckDBWarehouseResource(WarehouseResource):
    path: str = Field(description="DuckDB database file holding the listings table")
    memory_limit: str = Field(
        default=_WAREHOUSE_DEFAULTS["duckdb_memory_limit"].default, description="DuckDB buffer pool cap, e.g. 512MB"
    )
    lock_wait_seconds: float = Field(
        default=_WAREHOUSE_DEFAULTS["duckdb_lock_wait_seconds"].default,
        description="wait this long for another process to release the file",
    )

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
    """Turns DriftMonitorResource's fields (those of settings.DriftSettings) into the drift watch's settings."""

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
        return DriftSettings.model_construct(**self.model_dump()).watch_settings()


DriftMonitorResource = create_model(
    "DriftMonitorResource",
    __base__=DriftMonitor,
    __module__=__name__,
    **{
        name: (info.annotation, Field(default=info.default, description=info.description))
        for name, info in DriftSettings.model_fields.items()
        if name != "sensor_seconds"  # the sensor's own interval, fixed when the code location loads
    },
)
DriftMonitorResource.__doc__ = "Drift thresholds and pacing, as settings.DriftSettings has them."


class PredictionLogResource(dg.ConfigurableResource):
    """The service's prediction log, read by the drift sensor as live traffic."""

    url: str = Field(description="SQLAlchemy URL of the prediction log (SQLite file or PostgreSQL)")

    def reader(self) -> PredictionLogReader:
        return PredictionLogReader(self.url)


_ALERT_DEFAULTS = AlertSettings.model_fields


class AlertingResource(dg.ConfigurableResource):
    """Where alerts go: the log always, a Slack-compatible webhook and e-mail when configured
    (settings.AlertSettings says what each field means and its default)."""

    dagster_url: str = _ALERT_DEFAULTS["dagster_url"].default
    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = _ALERT_DEFAULTS["smtp_port"].default
    smtp_sender: str = _ALERT_DEFAULTS["smtp_sender"].default
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


def prediction_log_resource(settings: Settings) -> PredictionLogResource:
    """The service's prediction log; a URL from the environment may hold a password, so it goes as dg.EnvVar."""
    url = _secret(settings, ServiceSettings, "prediction_log", settings.service.prediction_log)
    return PredictionLogResource(url=url)


def alerting_resource(settings: Settings) -> AlertingResource:
    alerts = settings.alerts
    return AlertingResource(
        dagster_url=alerts.dagster_url,
        webhook_url=_secret(settings, AlertSettings, "alert_webhook"),
        smtp_host=alerts.smtp_host,
        smtp_port=alerts.smtp_port,
        smtp_sender=alerts.smtp_sender,
        smtp_recipients=alerts.alert_emails,
        smtp_username=alerts.smtp_username,
        smtp_password=_secret(settings, AlertSettings, "smtp_password"),
        smtp_starttls=alerts.smtp_starttls,
    )


def drift_monitor_resource(settings: Settings) -> DriftMonitorResource:
    return DriftMonitorResource(**settings.drift.model_dump(exclude={"sensor_seconds"}))


def warehouse_resource(settings: Settings) -> WarehouseResource:
    warehouse = settings.warehouse
    if warehouse.backend == "duckdb":
        return DuckDBWarehouseResource(
            path=str(warehouse.duckdb_path),
            memory_limit=warehouse.duckdb_memory_limit,
            lock_wait_seconds=warehouse.duckdb_lock_wait_seconds,
        )
    return BigQueryWarehouseResource(
        bigquery=EndpointBigQueryResource(
            project=dg.EnvVar(WarehouseSettings.variable("bq_project")),
            location=warehouse.bq_location,
            gcp_credentials=_secret(settings, GcpSettings, "gcp_credentials"),
            api_endpoint=warehouse.bq_api_endpoint,
        ),
        dataset=dg.EnvVar(WarehouseSettings.variable("bq_dataset")),
        listings_table=warehouse.bq_listings_table,
    )


def listings_io_manager(settings: Settings) -> dg.ConfigurableIOManager:
    """Asset tables (raw, validated and rejected listings) in an embedded DuckDB file, or in the GCS
    bucket when PRICE_ALCHEMY_GCS_BUCKET is set (Kubernetes run pods share no disk)."""
    if settings.gcp.gcs_bucket:
        return _gcs_pickle_io_manager(settings, "assets")
    return DuckDBPandasIOManager(database=str(settings.warehouse.assets_db), schema="price_alchemy")


def _secret(settings: Settings, group: type, field: str, value: str | None = None) -> dg.EnvVar | str | None:
    """A setting from the environment as dg.EnvVar: resolved by Dagster at run time and shown by name,
    not value, in the UI. `value` is what an unset setting is (its default)."""
    return dg.EnvVar(group.variable(field)) if settings.is_set(group, field) else value


def gcs_resource(settings: Settings) -> GcpGCSResource:
    """One GCS client configuration for the model store and both GCS IO managers."""
    return GcpGCSResource(
        project=_secret(settings, GcpSettings, "gcp_project"),
        gcp_credentials=_secret(settings, GcpSettings, "gcp_credentials"),
    )


def _gcs_pickle_io_manager(settings: Settings, kind: str) -> GCSPickleIOManager:
    return GCSPickleIOManager(
        gcs=gcs_resource(settings),
        gcs_bucket=dg.EnvVar(GcpSettings.variable("gcs_bucket")),
        gcs_prefix=_gcs_prefix(settings, kind),
    )


def _gcs_prefix(settings: Settings, kind: str) -> str:
    return f"{settings.gcp.gcs_prefix.strip('/')}/{kind}"


@contextmanager
def open_warehouse(settings: Settings) -> Iterator[Warehouse]:
    """The configured warehouse outside a Dagster run (CLI, tests, scripts), EnvVars resolved."""
    with warehouse_resource(settings).process_config_and_initialize_cm() as resource:
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


def model_resources(settings: Settings) -> dict:
    """MLflow, the model store, and where training data and run records live: the data dir, or
    the GCS bucket with PRICE_ALCHEMY_GCS_BUCKET."""
    resources = {
        "mlflow": MlflowTrackingResource(
            tracking_uri=settings.mlflow.tracking_uri, artifact_root=settings.mlflow.artifacts
        ),
        "model_store": ModelStoreResource(
            location=_secret(settings, ModelStoreSettings, "location", settings.model_store.location),
            cache_dir=str(settings.model_store.cache),
            gcs=gcs_resource(settings),
        ),
    }
    if not settings.gcp.gcs_bucket:
        return resources | {
            "training_data_io_manager": TrainingDataIOManager(
                base_dir=str(settings.data_dir / "training_data"), gcs=GcpGCSResource()
            ),
            "record_io_manager": dg.FilesystemIOManager(base_dir=str(settings.data_dir / "records")),
        }
    return resources | {
        "training_data_io_manager": TrainingDataIOManager(
            gcs_bucket=dg.EnvVar(GcpSettings.variable("gcs_bucket")),
            gcs_prefix=_gcs_prefix(settings, "training_data"),
            gcs=gcs_resource(settings),
        ),
        "record_io_manager": _gcs_pickle_io_manager(settings, "records"),
    }


def resources_from_settings(settings: Settings) -> dict:
    """Every resource the definitions use."""
    return {
        "warehouse": warehouse_resource(settings),
        "io_manager": listings_io_manager(settings),
        "drift_monitor": drift_monitor_resource(settings),
        "prediction_log": prediction_log_resource(settings),
        "alerting": alerting_resource(settings),
        **model_resources(settings),
    }


def resources_under(root: Path) -> dict:
    """Every resource with its default, all state in one folder, whatever the environment says (tests, benchmarks)."""
    return resources_from_settings(Settings.defaults(Path(root)))


@dg.definitions
def resources() -> dg.Definitions:
    """Every resource the code location binds, configured by the environment when it loads."""
    return dg.Definitions(resources=resources_from_settings(settings_at_start()))
