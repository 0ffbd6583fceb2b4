"""Where Price Alchemy keeps its local state, chosen by environment variables.

Precedence: PRICE_ALCHEMY_DATA_DIR, then $DAGSTER_HOME/data, then ./.price_alchemy.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "PRICE_ALCHEMY_DATA_DIR"
WAREHOUSE_ENV = "PRICE_ALCHEMY_WAREHOUSE"


def data_dir() -> Path:
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        path = Path(explicit)
    elif os.environ.get("DAGSTER_HOME"):
        path = Path(os.environ["DAGSTER_HOME"]) / "data"
    else:
        path = Path.cwd() / ".price_alchemy"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def default_warehouse_path() -> Path:
    return data_dir() / "warehouse.duckdb"


def default_assets_db_path() -> Path:
    """Asset tables (validated and rejected listings) live apart from the source warehouse,
    so a running ingest never holds the lock the pipeline needs."""
    return data_dir() / "assets.duckdb"


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


PREDICTION_LOG_ENV = "PRICE_ALCHEMY_PREDICTION_LOG"


def default_prediction_log_url() -> str:
    """An SQLite file beside the other local state; PostgreSQL in production (PRICE_ALCHEMY_PREDICTION_LOG)."""
    return f"sqlite:///{data_dir() / 'predictions.sqlite'}"


MODEL_STORE_ENV = "PRICE_ALCHEMY_MODEL_STORE"
GCS_BUCKET_ENV = "PRICE_ALCHEMY_GCS_BUCKET"
GCS_PREFIX_ENV = "PRICE_ALCHEMY_GCS_PREFIX"
GCP_PROJECT_ENV = "PRICE_ALCHEMY_GCP_PROJECT"
GCP_CREDENTIALS_ENV = "PRICE_ALCHEMY_GCP_CREDENTIALS"


def default_model_store() -> Path:
    return data_dir() / "model_store"


def model_store_location() -> str:
    """PRICE_ALCHEMY_MODEL_STORE (a folder or gs://bucket/path), else the data dir's folder."""
    return os.environ.get(MODEL_STORE_ENV) or str(default_model_store())


def gcp_project() -> str | None:
    return os.environ.get(GCP_PROJECT_ENV) or None


def gcp_credentials() -> str | None:
    """A base64 service-account key; unset: Application Default Credentials."""
    return os.environ.get(GCP_CREDENTIALS_ENV) or None


def default_model_cache() -> Path:
    """Where bundles from a GCS model store are downloaded to be loaded."""
    return data_dir() / "model_cache"


def default_mlflow_tracking_uri() -> str:
    """A local SQLite tracking store; a remote MLflow server is PRICE_ALCHEMY_MLFLOW_TRACKING_URI."""
    return f"sqlite:///{data_dir() / 'mlflow.db'}"


def default_mlflow_artifacts() -> Path:
    return data_dir() / "mlartifacts"
