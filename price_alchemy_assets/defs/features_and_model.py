"""Features and model: validated_listings -> tfidf_features -> tuned_model.

Thin wiring: the work is in price_alchemy_assets.model; here are run config, MLflow and the
model store, and the metadata the Dagster UI shows.
"""

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from price_alchemy_assets.defs.code_versions import source_version
from price_alchemy_assets.defs.resources import MlflowTrackingResource, ModelStoreResource
from price_alchemy_assets.defs.run_config import config_class, dataclass_from_config
from price_alchemy_assets.listings.profile import ListingsProfile
from price_alchemy_assets.model.bundle import TrainingConfig, train_price_model
from price_alchemy_assets.model.dataset import SPLITS, TrainingData, build_training_data
from price_alchemy_assets.model.features import FeaturizerConfig
from price_alchemy_assets.model.split import TRAIN, VALIDATION, SplitFractions
from price_alchemy_assets.run_progress import PROGRESS_PREFIX

MODEL_GROUP = "model"
MODEL_PACKAGE = "price_alchemy_assets.model."
FEATURES_VERSION = source_version(
    *(MODEL_PACKAGE + name for name in ("dataset", "features", "split")),
    "price_alchemy_assets.listings.profile",
    __name__,
)
MODEL_VERSION = source_version(
    *(MODEL_PACKAGE + name for name in ("bundle", "ensemble", "features", "mlp", "trees", "tuning", "tracking")),
    __name__,
)
"""tuned_model's code version: the one a champion and its registry version record."""


TUNING_COLUMNS = [
    "listing_id",
    "price",
    "split",
    "category_name",
    "ingested_at",
    "name",
    "brand_name",
    "item_condition_id",
]
"""The listing columns tuned_model reads: labels, typical prices, the ingest watermark and what a
seller sees of a comparable listing (not the descriptions: at 10^6 rows they are gigabytes)."""


FeaturesConfig = config_class(
    "FeaturesConfig",
    FeaturizerConfig,
    extra={"validation_fraction": (float, SplitFractions.validation), "test_fraction": (float, SplitFractions.test)},
    doc="The featurizer's knobs (FeaturizerConfig) and the split fractions.",
)
TuningConfig = config_class(
    "TuningConfig",
    TrainingConfig,
    exclude=("featurizer",),  # tfidf_features fits the featurizer
    doc="The search budget and space, the blend and the range (TrainingConfig); defaults finish the demo in "
    "minutes on 2 cores.",
)


@dataclass(frozen=True)
class CandidateModel:
    """What tuned_model hands on: where the bundle is and where it was tracked."""

    version: str
    model_path: str
    mlflow_run_id: str
    registered_version: str
    data_version: str
    training_rows: int
    validation_rmsle: float


@dg.asset(
    group_name=MODEL_GROUP,
    io_manager_key="training_data_io_manager",
    code_version=FEATURES_VERSION,
    kinds={"scikitlearn"},
)
def tfidf_features(config: FeaturesConfig, validated_listings: pd.DataFrame) -> dg.Output[TrainingData]:
    """Labelled listings split by id hash, and the featurizer fitted on the train split only."""
    data = build_training_data(
        validated_listings,
        SplitFractions(config.validation_fraction, config.test_fraction),
        dataclass_from_config(FeaturizerConfig, config),
    )
    description = data.featurizer.describe()
    metadata = {f"rows/{split}": data.matrices[split].shape[0] for split in SPLITS}
    metadata |= {f"nnz/{split}": int(data.matrices[split].nnz) for split in SPLITS}
    metadata |= {f"vocabulary/{name}": size for name, size in description["vocabulary_sizes"].items()}
    return dg.Output(
        data,
        metadata={
            **metadata,
            "features": data.matrices[TRAIN].shape[1],
            "fit_seconds": description["fit_seconds"],
            "data_version": data.data_version,
        },
    )


@dg.asset(
    group_name=MODEL_GROUP,
    io_manager_key="record_io_manager",
    code_version=MODEL_VERSION,
    kinds={"lightgbm", "mlflow"},
    ins={"tfidf_features": dg.AssetIn(metadata={"listing_columns": TUNING_COLUMNS})},
)
def tuned_model(
    context: dg.AssetExecutionContext,
    config: TuningConfig,
    tfidf_features: TrainingData,
    mlflow: MlflowTrackingResource,
    model_store: ModelStoreResource,
) -> dg.Output[CandidateModel]:
    """Ridge, sparse MLPs and LightGBM tuned with hyperopt, blended on held-out rows and refitted on
    train + validation; every trial a nested MLflow run; the bundle registered."""
    data, tracker, store = tfidf_features, mlflow.tracker(), model_store.store()
    training, train = dataclass_from_config(TrainingConfig, config), data.rows(TRAIN)
    with tracker.run("tuned_model", tags={"dagster_run_id": context.run_id, "data_version": data.data_version}) as run:
        model, tuning = train_price_model(
            train,
            data.rows(VALIDATION),
            training,
            on_trial=trial_reporter(context, tracker, training.budget.max_evals),
            featurizer=data.featurizer,
            train_features=data.matrices[TRAIN],
            validation_features=data.matrices[VALIDATION],
            profile=data.profile,
            on_stage=lambda stage: context.log.info(PROGRESS_PREFIX + stage),
        )
        model.info |= {
            "ingested_through": data.listings["ingested_at"].max().isoformat(),
            "data_version": data.data_version,
            "dagster_run_id": context.run_id,
            "code_version": MODEL_VERSION,
            "mlflow_run_id": run.info.run_id,
        }
        tracker.log_run_facts(
            params={
                "max_evals": training.budget.max_evals,
                "timeout_seconds": training.budget.timeout_seconds,
                "ridge_alphas": list(training.blend.ridge_alphas),
                "mlp_networks": training.blend.mlp.networks,
                "seed": training.budget.seed,
                "features": data.matrices[TRAIN].shape[1],
            },
            metrics={k: v for k, v in model.info.items() if k.startswith("validation_rmsle")}
            | {f"weight_{name}": weight for name, weight in model.blend.weights.items()}
            | {"interval_half_width": model.interval_half_width},
        )
        tracker.log_training_listings(train, data.data_version)
        path = store.save(model, context.run_id)
        lineage = {"dagster_run_id": context.run_id, "data_version": data.data_version, "code_version": MODEL_VERSION}
        registered = tracker.log_model(store.bundle_dir(path), model, tags=lineage)
    candidate = CandidateModel(
        context.run_id,
        path,
        run.info.run_id,
        registered,
        data.data_version,
        len(train),
        model.info["validation_rmsle"],
    )
    return dg.Output(
        candidate,
        metadata={
            "validation_rmsle": candidate.validation_rmsle,
            **{
                key: value
                for key, value in model.info.items()
                if key.startswith("validation_rmsle_") or key in ("held_out_rows", "ridge_alpha")
            },
            "blend_weights": dg.MetadataValue.json(model.blend.weights),
            "seconds": dg.MetadataValue.json(model.info["seconds"]),
            "trials": len(tuning.trials),
            "lightgbm_best_iteration": tuning.best.best_iteration,
            "lightgbm_params": dg.MetadataValue.json({k: v for k, v in tuning.best.params.items()}),
            "model_path": dg.MetadataValue.path(path),
            "mlflow_run": dg.MetadataValue.url(url) if (url := tracker.run_url(run.info.run_id)) else run.info.run_id,
            "registered_model_version": registered,
            "training_profile": dg.MetadataValue.md(profile_markdown(data.profile)),
        },
    )


def trial_reporter(context: dg.AssetExecutionContext, tracker, max_evals: int):
    """Each hyperopt trial as a nested MLflow run and as a progress line: trial n of N, best so far."""
    best = [float("inf")]

    def report(trial) -> None:
        tracker.log_trial(trial)
        best[0] = min(best[0], trial.validation_rmsle)
        context.log.info(
            f"{PROGRESS_PREFIX}trial {trial.number + 1} of {max_evals}: validation RMSLE "
            f"{trial.validation_rmsle:.4f} (best so far {best[0]:.4f}, {trial.seconds:.0f} s)"
        )

    return report


def profile_markdown(profile: ListingsProfile, top: int = 8) -> str:
    """The reference profile as the Dagster UI shows it: sizes and the largest shares."""
    lines = [
        f"{profile.rows:,} training listings; {len(profile.counts['category_name']):,} categories, "
        f"{len(profile.counts['brand_name']):,} brands.",
        "",
        "| feature | most common (share) |",
        "|---|---|",
    ]
    shares = {"top-level category": profile.top_level_categories()} | {
        name: profile.counts[name] for name in ("brand_name", "item_condition_id", "shipping")
    }
    for name, counts in shares.items():
        largest = sorted(counts.items(), key=lambda item: -item[1])[:top]
        lines.append(f"| {name} | " + ", ".join(f"{value} ({n / profile.rows:.0%})" for value, n in largest) + " |")
    return "\n".join(lines)
