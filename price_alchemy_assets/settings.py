"""Every setting of Price Alchemy: the PRICE_ALCHEMY_* environment variables, read here and nowhere else.

An entry point (the CLI, the service, the code location) calls `load_settings()` once when it
starts and passes the settings, or the group a piece needs, down. A bad value stops the start with
one line naming the variable (SettingsError). Each default is stated once: on its field, or, for
the files of local state, in `Settings._local_state` under the data dir (PRICE_ALCHEMY_DATA_DIR,
else $DAGSTER_HOME/data, else ./.price_alchemy).

The settings know the domain's knobs (the drift settings are DriftThresholds' fields), so this
module sits above the domain layers and below the service and the Dagster wiring.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, create_model
from pydantic import model_validator as _model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from price_alchemy_assets.dataclass_docs import attribute_docs
from price_alchemy_assets.monitoring.drift_thresholds import DriftThresholds, DriftWatchSettings
from price_alchemy_assets.warehouse.duckdb_backend import DEFAULT_MEMORY_LIMIT

if TYPE_CHECKING:
    from price_alchemy_assets.model.store import ModelStore

ENV_PREFIX = "PRICE_ALCHEMY_"
DATA_DIR_TEXT = "$DATA_DIR"
"""How the configuration table writes the data dir in the defaults under it."""


class SettingsError(ValueError):
    """A setting cannot be used; the message is one line naming the variable."""


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _comma_separated(value: Any) -> Any:
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


class _Group(BaseSettings):
    """One group of settings; a field `name` is the variable PRICE_ALCHEMY_NAME unless it names its own."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="ignore")
    default_texts: ClassVar[dict[str, str]] = {}
    """How the configuration table states a default that is not a plain value."""

    @classmethod
    def variable(cls, field: str) -> str:
        alias = cls.model_fields[field].validation_alias
        return alias if isinstance(alias, str) else f"{cls.model_config['env_prefix']}{field}".upper()


class LocalStateSettings(_Group):
    data_dir: Path | None = Field(
        default=None, description="where DuckDB files, the model store, MLflow's store and synthetic data live"
    )
    default_texts: ClassVar[dict[str, str]] = {"data_dir": "`$DAGSTER_HOME/data`, else `./.price_alchemy`"}


class WarehouseSettings(_Group):
    backend: Annotated[Literal["duckdb", "bigquery"], BeforeValidator(_lower)] = Field(
        default="duckdb", validation_alias=f"{ENV_PREFIX}WAREHOUSE", description="`duckdb` or `bigquery`"
    )
    duckdb_path: Path | None = Field(default=None, description="the DuckDB warehouse file")
    duckdb_memory_limit: str = Field(
        default=DEFAULT_MEMORY_LIMIT,
        description="DuckDB's buffer-pool cap (beyond it, ingest staging and sorts spill to disk)",
    )
    duckdb_lock_wait_seconds: float = Field(
        default=20.0,
        ge=0,
        description="how long a command or run waits for another process (an ingest, a run, a sensor tick) "
        "to let go of the DuckDB file",
    )
    assets_db: Path | None = Field(
        default=None,
        description="the DuckDB file of the asset tables (raw, validated and rejected listings), "
        "apart from the warehouse so an ingest never holds the lock the pipeline needs",
    )
    bq_project: str | None = Field(default=None, description="BigQuery project (read through `dg.EnvVar`)")
    bq_dataset: str | None = Field(default=None, description="BigQuery dataset (read through `dg.EnvVar`)")
    bq_location: str | None = Field(default=None, description="BigQuery location")
    bq_listings_table: str = Field(default="listings", description="the BigQuery listings table")
    bq_api_endpoint: str | None = Field(
        default=None, description="a BigQuery REST endpoint other than Google's (the tests' emulator)"
    )

    @_model_validator(mode="after")
    def _bigquery_named(self) -> WarehouseSettings:
        missing = [self.variable(f) for f in ("bq_project", "bq_dataset") if not getattr(self, f)]
        if self.backend == "bigquery" and missing:
            raise ValueError(f"{self.variable('backend')}=bigquery needs {' and '.join(missing)}")
        return self


class GcpSettings(_Group):
    gcp_project: str | None = Field(default=None, description="project for the GCS client")
    gcp_credentials: SecretStr | None = Field(
        default=None,
        description="base64 service-account JSON for BigQuery and GCS (dagster-gcp's `gcp_credentials`)",
    )
    gcs_bucket: str | None = Field(
        default=None,
        description="keep asset values (listing tables, training data, run records) in this bucket, "
        "for pods that share no disk; unset: local files",
    )
    gcs_prefix: str = Field(default="price-alchemy", description="the folder in the bucket for those values")
    default_texts: ClassVar[dict[str, str]] = {
        "gcp_project": "the credentials'",
        "gcp_credentials": "application default",
    }

    def credentials(self) -> str | None:
        return self.gcp_credentials.get_secret_value() if self.gcp_credentials else None


class ModelStoreSettings(_Group):
    location: str | None = Field(
        default=None,
        validation_alias=f"{ENV_PREFIX}MODEL_STORE",
        description="model bundles and `champion.json`: a folder, or `gs://bucket/path`",
    )
    cache: Path | None = Field(
        default=None,
        validation_alias=f"{ENV_PREFIX}MODEL_CACHE",
        description="where bundles from a `gs://` model store are downloaded to be loaded",
    )


class MlflowSettings(_Group):
    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}MLFLOW_")
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking and registry store (a server's URL in production)"
    )
    artifacts: str | None = Field(default=None, description="artifact root for a new experiment")
    default_texts: ClassVar[dict[str, str]] = {
        "artifacts": f"`{DATA_DIR_TEXT}/mlartifacts`; with a tracking server (`http…`), the server's"
    }

    @property
    def server(self) -> bool:
        return (self.tracking_uri or "").startswith(("http://", "https://"))


class ServiceSettings(_Group):
    prediction_log: str | None = Field(
        default=None,
        description="the service's prediction log, an SQLAlchemy URL (`sqlite:///…` or `postgresql://…`)",
    )
    admin_token: SecretStr | None = Field(
        default=None, description="bearer token for `POST /admin/reload` (unset: the endpoint is off)"
    )
    reload_seconds: float = Field(default=2.0, gt=0, description="how often the service checks the champion pointer")
    max_batch: int = Field(default=1000, ge=1, description="listings per batch request, at most")
    client_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="the time a client has to send a request's head (and again its body) before a 408",
    )
    explain_queue: int = Field(default=4, ge=1, description="explanations waiting or running before the next is a 503")
    shadow_queue: int = Field(
        default=2000,
        ge=0,
        description="listings waiting for the challenger's shadow scoring before more are skipped (0: no shadow)",
    )

    def token(self) -> str | None:
        return self.admin_token.get_secret_value() if self.admin_token else None


class _DriftPacing(_Group):
    """What DriftThresholds does not hold: pacing, the budget of a triggered run, the sensor's interval."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}DRIFT_")
    cooldown_minutes: float = Field(
        default=DriftWatchSettings.cooldown / timedelta(minutes=1),
        ge=0,
        description="least time between two drift-triggered runs",
    )
    labelled_sample: int = Field(
        default=DriftWatchSettings.labelled_sample, ge=1, description="new labelled listings scored per tick, at most"
    )
    retrain_max_evals: int | None = Field(default=None, ge=1, description="tuning trials of a drift-triggered run")
    retrain_timeout_seconds: float | None = Field(
        default=None, gt=0, description="tuning budget of a drift-triggered run"
    )
    retrain_in_process: bool = Field(
        default=False, description="run a drift-triggered run's steps in one process (small machines, demos)"
    )
    sensor_seconds: int = Field(default=60, ge=1, description="the drift sensor's interval")
    default_texts: ClassVar[dict[str, str]] = {
        "retrain_max_evals": "the job's default",
        "retrain_timeout_seconds": "the job's default",
    }

    def thresholds(self) -> DriftThresholds:
        return DriftThresholds(**{f.name: getattr(self, f.name) for f in dataclasses.fields(DriftThresholds)})

    def watch_settings(self) -> DriftWatchSettings:
        return DriftWatchSettings(self.thresholds(), self.labelled_sample, timedelta(minutes=self.cooldown_minutes))


def _threshold_fields() -> dict[str, Any]:
    hints, described = get_type_hints(DriftThresholds), attribute_docs(DriftThresholds)
    return {
        f.name: (hints[f.name], Field(default=f.default, ge=0, description=described.get(f.name)))
        for f in dataclasses.fields(DriftThresholds)
    }


DriftSettings = create_model("DriftSettings", __base__=_DriftPacing, __module__=__name__, **_threshold_fields())
DriftSettings.__doc__ = "Every field of DriftThresholds (PRICE_ALCHEMY_DRIFT_PSI, ...) and the drift pacing."


class AlertSettings(_Group):
    dagster_url: str = Field(default="http://127.0.0.1:3000", description="the Dagster UI's address, for run links")
    alert_webhook: SecretStr | None = Field(
        default=None, description="a Slack-compatible incoming webhook (a secret: read through `dg.EnvVar`)"
    )
    alert_emails: Annotated[list[str], NoDecode, BeforeValidator(_comma_separated)] = Field(
        default_factory=list, description="comma-separated recipients of e-mail alerts"
    )
    smtp_host: str | None = Field(default=None, description="the SMTP server; e-mail alerts are off without it")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="the SMTP server's port")
    smtp_sender: str = Field(default="price-alchemy@localhost", description="the alerts' From address")
    smtp_username: str | None = Field(default=None, description="SMTP login")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password (read through `dg.EnvVar`)")
    smtp_starttls: bool = Field(default=False, description="upgrade the SMTP connection with STARTTLS")


class RunSettings(_Group):
    executor: Annotated[Literal["default", "k8s"], BeforeValidator(_lower)] = Field(
        default="default",
        description="`default`, or `k8s` for a Kubernetes pod per step (`k8s_job_executor`, sized in `defs/jobs.py`)",
    )


GROUPS: dict[str, type[_Group]] = {
    "local_state": LocalStateSettings,
    "warehouse": WarehouseSettings,
    "gcp": GcpSettings,
    "model_store": ModelStoreSettings,
    "mlflow": MlflowSettings,
    "service": ServiceSettings,
    "drift": DriftSettings,
    "alerts": AlertSettings,
    "runs": RunSettings,
}


class Settings(BaseModel):
    """All the groups, with the files of local state placed under the data dir where unset."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    data_dir: Path
    warehouse: WarehouseSettings
    gcp: GcpSettings
    model_store: ModelStoreSettings
    mlflow: MlflowSettings
    service: ServiceSettings
    drift: DriftSettings  # type: ignore[valid-type]
    alerts: AlertSettings
    runs: RunSettings
    from_environment: frozenset[str] = frozenset()
    """The variables that were set, not defaulted: secrets among them reach Dagster as dg.EnvVar."""

    @_model_validator(mode="before")
    @classmethod
    def _local_state(cls, values: dict[str, Any]) -> dict[str, Any]:
        data = Path(values["data_dir"])
        under = {
            "warehouse": {"duckdb_path": data / "warehouse.duckdb", "assets_db": data / "assets.duckdb"},
            "model_store": {"location": str(data / "model_store"), "cache": data / "model_cache"},
            "mlflow": {"tracking_uri": f"sqlite:///{data / 'mlflow.db'}"},
            "service": {"prediction_log": f"sqlite:///{data / 'predictions.sqlite'}"},
        }
        values = dict(values)
        for group, defaults in under.items():
            unset = {field: value for field, value in defaults.items() if getattr(values[group], field) is None}
            values[group] = values[group].model_copy(update=unset)
        mlflow = values["mlflow"]
        if mlflow.artifacts is None and not mlflow.server:  # a tracking server keeps artifacts where it is told
            values["mlflow"] = mlflow.model_copy(update={"artifacts": str(data / "mlartifacts")})
        return values

    @classmethod
    def defaults(cls, data_dir: Path | str) -> Settings:
        """Every default, whatever the environment says, with local state under `data_dir` (tests, the table)."""
        return cls(data_dir=Path(data_dir), **{name: group.model_construct() for name, group in _groups().items()})

    def is_set(self, group: type[_Group], field: str) -> bool:
        return group.variable(field) in self.from_environment

    def open_model_store(self) -> ModelStore:
        """The configured model store outside a Dagster run (the service, the CLI)."""
        from price_alchemy_assets.model.store import open_model_store  # the model code, only when asked

        return open_model_store(self.model_store.location, self.model_store.cache, self._storage_client)

    def _storage_client(self):
        from price_alchemy_assets import gcs

        return gcs.storage_client(self.gcp.gcp_project, self.gcp.credentials())


def _groups() -> dict[str, type[_Group]]:
    return {name: group for name, group in GROUPS.items() if name != "local_state"}


def load_settings() -> Settings:
    """The settings as the environment has them now; a SettingsError naming every bad variable."""
    loaded, problems = {}, []
    for name, group in GROUPS.items():
        try:
            loaded[name] = group()
        except ValidationError as error:
            problems += [_problem(group, detail) for detail in error.errors()]
    if problems:
        raise SettingsError("; ".join(problems))
    explicit = frozenset(loaded[name].variable(field) for name in GROUPS for field in loaded[name].model_fields_set)
    data = _data_dir(loaded.pop("local_state").data_dir)
    return Settings(data_dir=data, from_environment=explicit, **loaded)


@cache
def settings_at_start() -> Settings:
    """This process's settings, read the first time they are asked for: by the CLI as it starts,
    else by the code location as it loads; both then use the same."""
    return load_settings()


def _problem(group: type[_Group], detail: dict) -> str:
    """`PRICE_ALCHEMY_DRIFT_PSI='abc': Input should be a valid number, ...` for one bad value."""
    if not detail["loc"]:  # a check of the whole group; its message names the variables
        return str(detail["msg"]).removeprefix("Value error, ")
    where = str(detail["loc"][0])
    variable = where if where.startswith(ENV_PREFIX) else group.variable(where)
    return f"{variable}={detail['input']!r}: {detail['msg']}"


def _data_dir(explicit: Path | None) -> Path:
    if explicit:
        path = Path(explicit)
    elif os.environ.get("DAGSTER_HOME"):
        path = Path(os.environ["DAGSTER_HOME"]) / "data"
    else:
        path = Path.cwd() / ".price_alchemy"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def dagster_home() -> Path:
    """$DAGSTER_HOME, defaulting to ./.dagster_home seeded with the project's dagster.yaml, so the
    CLI, `dagster dev` and the UI all see the same runs."""
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(Path.cwd() / ".dagster_home")
    home = Path(os.environ["DAGSTER_HOME"]).resolve()
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists():
        for candidate in (Path(__file__).resolve().parents[1] / "dagster.yaml", Path.cwd() / "dagster.yaml"):
            if candidate.is_file():
                instance_yaml.write_text(candidate.read_text())
                break
    return home


def configuration_rows() -> list[tuple[str, str, str]]:
    """(variable, what it sets, default) for every setting, in the order of the groups."""
    defaults = Settings.defaults(DATA_DIR_TEXT)
    rows = []
    for name, group in GROUPS.items():
        for field, info in group.model_fields.items():
            value = None if name == "local_state" else getattr(getattr(defaults, name), field)
            default = group.default_texts.get(field) or _shown(value)
            rows.append((group.variable(field), info.description or "", default))
    return rows


def current_values(settings: Settings) -> list[tuple[str, str]]:
    """(variable, value) for every setting as `settings` has it; secrets as asterisks."""
    values = [(LocalStateSettings.variable("data_dir"), str(settings.data_dir))]
    for name, group in _groups().items():
        chosen = getattr(settings, name)
        for field in group.model_fields:
            value = getattr(chosen, field)
            shown = "" if value is None else ",".join(value) if isinstance(value, list) else str(value)
            values.append((group.variable(field), shown))
    return values


def configuration_table() -> str:
    """The README's configuration table, made from the settings themselves."""
    lines = ["| Variable | What it sets | Default |", "|---|---|---|"]
    lines += [f"| `{variable}` | {what} | {default} |" for variable, what, default in configuration_rows()]
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if value is None or value == []:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"
