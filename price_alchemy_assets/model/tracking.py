"""MLflow tracking for training runs: trials as nested runs, the bundle as a registered model.

Replaces the legacy dagster-mlflow resource, which leaves runs open and changes MLflow's
global state: here every run ends (FAILED if the block raised), and the tracking URI is set
only for the duration of a run and then restored.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service import utils as tracking_utils

from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.model.bundle import PriceModel
from price_alchemy_assets.model.tuning import Trial

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
MODEL_RUNTIME = ("lightgbm", "scikit-learn", "scipy", "numpy", "pandas", "joblib", "threadpoolctl")
"""What loading and scoring a bundle imports (price_alchemy_assets.model.bundle and what it imports),
besides MLflow itself: the registered model's own environment is built from this list alone."""
EXAMPLE_LISTINGS = pd.DataFrame(
    [
        {
            "name": "Nike Air Max 90 running shoes",
            "item_condition_id": 2,
            "category_name": "Men/Shoes/Athletic",
            "brand_name": "Nike",
            "shipping": 1,
            "item_description": "Worn twice, no box.",
        },
        {
            "name": "Blue ceramic mug",
            "item_condition_id": 1,
            "category_name": None,
            "brand_name": None,
            "shipping": 0,
            "item_description": None,
        },
    ],
    columns=list(SELLER_FIELDS),
)
"""The registered model's input example; its missing fields make brand, category and description
optional in the signature, as they are for a seller."""
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
logging.getLogger("mlflow").setLevel(logging.ERROR)


def model_requirements() -> list[str]:
    """The installed versions the bundle needs, stated so MLflow need not import-trace them in a subprocess."""
    return [f"{name}=={metadata.version(name)}" for name in MODEL_RUNTIME]


class PriceModelPyfunc(mlflow.pyfunc.PythonModel):
    """The bundle as an MLflow pyfunc: listings DataFrame in, price and range out."""

    def load_context(self, context) -> None:
        self.model = PriceModel.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict(model_input)


def end_open_runs(status: str) -> None:
    """End this process's open MLflow runs, nested ones first, with `status`."""
    while mlflow.active_run() is not None:
        mlflow.end_run(status)


class ExperimentTracker:
    def __init__(self, tracking_uri: str, experiment: str, registered_model: str, artifact_root: str | None = None):
        self.tracking_uri, self.experiment, self.registered_model = tracking_uri, experiment, registered_model
        self.artifact_root = artifact_root
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found:
            return found.experiment_id
        location = Path(self.artifact_root).resolve().as_uri() if self.artifact_root else None
        return self.client.create_experiment(self.experiment, artifact_location=location)

    @contextmanager
    def run(self, name: str, tags: dict[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
        # MLflow keeps the URI in a module global and in MLFLOW_TRACKING_URI; both are put back as found
        previous, previous_env = tracking_utils._tracking_uri, os.environ.get(TRACKING_URI_ENV)
        mlflow.set_tracking_uri(self.tracking_uri)
        try:
            self.experiment_id = self._experiment_id()
            with mlflow.start_run(run_name=name, experiment_id=self.experiment_id, tags=tags or {}) as run:
                yield run
        finally:
            end_open_runs("FAILED")
            tracking_utils._tracking_uri = previous
            if previous_env is None:
                os.environ.pop(TRACKING_URI_ENV, None)
            else:
                os.environ[TRACKING_URI_ENV] = previous_env

    def log_run_facts(self, params: dict, metrics: dict[str, float]) -> None:
        """Inside `run`: the run's own parameters and metrics."""
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)

    def log_trial(self, trial: Trial) -> None:
        """Inside `run`: one nested run per hyperopt trial."""
        with mlflow.start_run(run_name=f"trial-{trial.number:03d}", nested=True, experiment_id=self.experiment_id):
            mlflow.log_params({k: v for k, v in trial.params.items() if k not in ("verbosity",)})
            mlflow.log_metrics(
                {
                    "validation_rmsle": trial.validation_rmsle,
                    "best_iteration": trial.best_iteration,
                    "seconds": trial.seconds,
                }
            )

    def log_model(self, bundle_dir: Path, model: PriceModel, tags: dict[str, str] | None = None) -> str:
        """Inside `run`: log the bundle (`model`, saved in `bundle_dir`) as a pyfunc model with its
        signature and input example, and register it with `tags` on the registry version; returns
        the registry version."""
        from mlflow.models import infer_signature

        example = EXAMPLE_LISTINGS
        with warnings.catch_warnings():
            # its hint about integer columns with missing values: condition and shipping are never missing
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
            signature = infer_signature(example, model.predict(example))
        info = mlflow.pyfunc.log_model(
            name="price_model",
            python_model=PriceModelPyfunc(),
            artifacts={"bundle": str(bundle_dir)},
            registered_model_name=self.registered_model,
            pip_requirements=model_requirements(),
            code_paths=[str(PACKAGE_DIR)],
            signature=signature,
            input_example=example,
        )
        version = str(info.registered_model_version or "")
        for key, value in (tags or {}).items():
            self.client.set_model_version_tag(self.registered_model, version, key, value)
        return version

    def log_training_listings(self, listings: pd.DataFrame, data_version: str) -> None:
        """Inside `run`: the listings the model learned from, as the run's input dataset (MLflow keeps
        their schema, size and digest, not the rows)."""
        dataset = mlflow.data.from_pandas(listings, name=f"listings@{data_version}", targets="price")
        mlflow.log_input(dataset, context="training")

    def log_artifacts(self, run_id: str, paths: list[Path], folder: str) -> None:
        for path in paths:
            self.client.log_artifact(run_id, str(path), artifact_path=folder)

    def run_url(self, run_id: str) -> str | None:
        """The run's page on a tracking server; None for a local store (no server to link to)."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return None
        experiment_id = self.client.get_run(run_id).info.experiment_id
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def set_champion(self, version: str) -> None:
        """The alias follows the champion pointer; a challenger alias on the same version goes (it won)."""
        self.client.set_registered_model_alias(self.registered_model, CHAMPION_ALIAS, version)
        if self.alias_version(CHALLENGER_ALIAS) == version:
            self.client.delete_registered_model_alias(self.registered_model, CHALLENGER_ALIAS)

    def set_challenger(self, version: str | None) -> None:
        """The alias follows the challenger pointer; None removes it."""
        if version:
            self.client.set_registered_model_alias(self.registered_model, CHALLENGER_ALIAS, version)
        elif self.alias_version(CHALLENGER_ALIAS) is not None:
            self.client.delete_registered_model_alias(self.registered_model, CHALLENGER_ALIAS)

    def alias_version(self, alias: str) -> str | None:
        try:
            return self.client.get_model_version_by_alias(self.registered_model, alias).version
        except MlflowException:  # no such alias (or no such registered model)
            return None
