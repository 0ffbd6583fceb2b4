"""validated_listings -> tfidf_features -> tuned_model -> eval_report -> champion.

Thin wiring: the work is in price_alchemy_assets.model; here are run config, MLflow and the
model store, and the metadata the Dagster UI shows.
"""

import base64
import tempfile
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from price_alchemy_assets.assets.code_versions import source_version
from price_alchemy_assets.listings.profile import ListingsProfile
from price_alchemy_assets.model.baseline import RulesBaseline
from price_alchemy_assets.model.bundle import TrainingConfig, train_price_model
from price_alchemy_assets.model.dataset import SPLITS, TrainingData, build_training_data
from price_alchemy_assets.model.ensemble import RIDGE_BLOCK_WEIGHTS, BlendConfig
from price_alchemy_assets.model.evaluation import CANDIDATE, EvalReport, evaluate, plot_report, should_promote
from price_alchemy_assets.model.features import FeaturizerConfig
from price_alchemy_assets.model.mlp import MLPConfig
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION, SplitFractions
from price_alchemy_assets.model.store import ChampionRecord, now_iso
from price_alchemy_assets.model.tuning import SearchSpace, TuningBudget
from price_alchemy_assets.resources import MlflowTrackingResource, ModelStoreResource
from price_alchemy_assets.run_progress import PROGRESS_PREFIX

MODEL_GROUP = "model"
_MODEL = "price_alchemy_assets.model."
FEATURES_VERSION = source_version(
    *(_MODEL + name for name in ("dataset", "features", "split")), "price_alchemy_assets.listings.profile", __name__
)
MODEL_VERSION = source_version(
    *(_MODEL + name for name in ("bundle", "ensemble", "features", "mlp", "trees", "tuning", "tracking")), __name__
)
"""tuned_model's code version: the one a champion and its registry version record."""
EVALUATION_VERSION = source_version(*(_MODEL + name for name in ("evaluation", "metrics", "baseline")), __name__)
CHAMPION_VERSION = source_version(_MODEL + "evaluation", _MODEL + "store", __name__)


TUNING_COLUMNS = ["listing_id", "price", "split", "category_name", "ingested_at"]
"""The listing columns tuned_model reads: labels, typical prices, the ingest watermark (not the text)."""


class FeaturesConfig(dg.Config):
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    name_max_features: int = FeaturizerConfig.name_max_features
    description_max_features: int = FeaturizerConfig.description_max_features
    min_df: int = FeaturizerConfig.min_df
    max_ngram: int = FeaturizerConfig.max_ngram
    title_chars_max_features: int = FeaturizerConfig.title_chars_max_features
    crossed_max_features: int = FeaturizerConfig.crossed_max_features
    text_max_features: int = FeaturizerConfig.text_max_features
    category_pairs: bool = Field(
        default=FeaturizerConfig.category_pairs, description="one-hot category x condition, brand x category..."
    )
    extra_blocks_max_rows: int = Field(
        default=FeaturizerConfig.extra_blocks_max_rows,
        description="above this many listings, word blocks only (no title characters, crossed tokens, whole text)",
    )
    vocabulary_max_rows: int = Field(
        default=FeaturizerConfig.vocabulary_max_rows, description="text vocabularies fitted on a sample this big"
    )


class TuningConfig(dg.Config):
    """The search budget; defaults finish the demo in minutes on 2 cores."""

    max_evals: int = Field(default=TuningBudget.max_evals, description="hyperopt trials at most")
    timeout_seconds: float = Field(default=TuningBudget.timeout_seconds, description="wall-clock budget for the search")
    max_boost_rounds: int = TuningBudget.max_boost_rounds
    early_stopping_rounds: int = TuningBudget.early_stopping_rounds
    seed: int = 0
    num_leaves: list[int] = list(SearchSpace.num_leaves)
    max_depth: list[int] = list(SearchSpace.max_depth)
    learning_rate: list[float] = list(SearchSpace.learning_rate)
    min_data_in_leaf: list[int] = list(SearchSpace.min_data_in_leaf)
    feature_fraction: list[float] = list(SearchSpace.feature_fraction)
    lambda_l2: list[float] = list(SearchSpace.lambda_l2)
    ridge_alphas: list[float] = Field(
        default=list(BlendConfig.ridge_alphas), description="Ridge regularizations tried on held-out rows"
    )
    ridge_block_weights: dict[str, float] = Field(
        default=dict(RIDGE_BLOCK_WEIGHTS),
        description="Ridge's column scale per feature block (a block scaled by w is penalized as by alpha / w^2)",
    )
    mlp_networks: int = Field(default=MLPConfig.networks, description="sparse MLPs averaged (0: none)")
    mlp_epochs: int = MLPConfig.epochs
    blend_folds: int = Field(default=BlendConfig.folds, description="folds for held-out predictions on small data")
    blend_folds_max_rows: int = Field(
        default=BlendConfig.folds_max_rows, description="above this many listings, the validation split alone"
    )
    interval_coverage: float = 0.8

    def training(self) -> TrainingConfig:
        return TrainingConfig(
            budget=TuningBudget(
                self.max_evals, self.timeout_seconds, self.max_boost_rounds, self.early_stopping_rounds, self.seed
            ),
            space=SearchSpace(
                num_leaves=tuple(self.num_leaves),
                max_depth=tuple(self.max_depth),
                learning_rate=tuple(self.learning_rate),
                min_data_in_leaf=tuple(self.min_data_in_leaf),
                feature_fraction=tuple(self.feature_fraction),
                lambda_l2=tuple(self.lambda_l2),
            ),
            blend=BlendConfig(
                ridge_alphas=tuple(self.ridge_alphas),
                ridge_block_weights=dict(self.ridge_block_weights),
                mlp=MLPConfig(networks=self.mlp_networks, epochs=self.mlp_epochs, seed=self.seed),
                folds=self.blend_folds,
                folds_max_rows=self.blend_folds_max_rows,
                seed=self.seed,
            ),
            interval_coverage=self.interval_coverage,
        )


class PromotionConfig(dg.Config):
    margin: float = Field(default=0.0, description="RMSLE the candidate must win by to replace the champion")


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
        FeaturizerConfig(
            name_max_features=config.name_max_features,
            description_max_features=config.description_max_features,
            min_df=config.min_df,
            max_ngram=config.max_ngram,
            title_chars_max_features=config.title_chars_max_features,
            crossed_max_features=config.crossed_max_features,
            text_max_features=config.text_max_features,
            category_pairs=config.category_pairs,
            extra_blocks_max_rows=config.extra_blocks_max_rows,
            vocabulary_max_rows=config.vocabulary_max_rows,
        ),
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
    training, train = config.training(), data.rows(TRAIN)
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


def significant(value: float, digits: int = 4) -> float:
    """A metric as the UI shows it: 0.5123, not 0.5123456789012345."""
    return float(f"{value:.{digits}g}")


def per_category_table(report: EvalReport) -> dg.TableMetadataValue:
    """RMSLE by top-level category, one column per model, as a sortable table in the UI."""
    frame = report.per_category
    columns = [dg.TableColumn("category", "string"), dg.TableColumn("rows", "int")]
    columns += [dg.TableColumn(name, "float") for name in frame.columns[2:]]
    records = [
        dg.TableRecord(
            {"category": row["category"], "rows": int(row["rows"])}
            | {name: significant(row[name]) for name in frame.columns[2:]}
        )
        for row in frame.to_dict("records")
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


@dg.asset(group_name=MODEL_GROUP, io_manager_key="record_io_manager", code_version=EVALUATION_VERSION)
def eval_report(
    context: dg.AssetExecutionContext,
    tfidf_features: TrainingData,
    tuned_model: CandidateModel,
    model_store: ModelStoreResource,
    mlflow: MlflowTrackingResource,
) -> dg.Output[dict]:
    """The candidate on the test split beside the rules baseline and the champion, same rows."""
    data, store, tracker = tfidf_features, model_store.store(), mlflow.tracker()
    test = data.rows(TEST)
    candidate = store.load(tuned_model.version).predict(test)
    rules = RulesBaseline().fit(pd.concat([data.rows(TRAIN), data.rows(VALIDATION)])).predict(test)
    current = store.load_champion()
    champion_prediction = current[1].predict(test) if current else None
    report = evaluate(test, candidate, rules, champion_prediction)
    with tempfile.TemporaryDirectory() as folder:
        plots = plot_report(test, candidate, report, Path(folder))
        tracker.log_artifacts(tuned_model.mlflow_run_id, plots, "eval_report")
        pictures = "\n\n".join(
            f"![{path.stem}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})" for path in plots
        )
    tracker.client.log_metric(tuned_model.mlflow_run_id, "test_rmsle", report.metrics[CANDIDATE]["rmsle"])
    summary = {
        "candidate_version": tuned_model.version,
        "champion_version": current[0].version if current else None,
        "metrics": report.metrics,
        "prediction_checks": {
            "nan": int(candidate.isna().sum().sum()),
            "negative": int((candidate < 0).sum().sum()),
            "range_inverted": int(
                ((candidate["price_low"] > candidate["price"]) | (candidate["price"] > candidate["price_high"])).sum()
            ),
            "min_price": float(candidate["price"].min()),
            "max_price": float(candidate["price"].max()),
            "max_actual_price": float(test["price"].max()),
        },
    }
    run_url = tracker.run_url(tuned_model.mlflow_run_id)
    metadata = {
        "report": dg.MetadataValue.md(report.markdown()),
        "plots": dg.MetadataValue.md(pictures),
        "rmsle_by_category": per_category_table(report),
        "test_rows": report.rows,
        "mlflow_run": dg.MetadataValue.url(run_url) if run_url else tuned_model.mlflow_run_id,
    }
    for name, metrics in report.metrics.items():
        metadata |= {f"{name}/{key}": significant(value) for key, value in metrics.items() if key != "rows"}
    context.log.info("eval report:\n%s", report.table().to_string())
    return dg.Output(summary, metadata=metadata)


CHAMPION_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=14), warn_window=timedelta(days=8))
"""A champion judged more than 8 days ago warns, 14 days fails: the weekly retraining (or drift) should
have judged a new candidate by then, whether or not it was promoted."""


@dg.asset(group_name=MODEL_GROUP, code_version=CHAMPION_VERSION, freshness_policy=CHAMPION_FRESHNESS)
def champion(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    eval_report: dict,
    tuned_model: CandidateModel,
    model_store: ModelStoreResource,
    mlflow: MlflowTrackingResource,
) -> dg.MaterializeResult:
    """The model a service should serve: the candidate, if it beats the champion on the same rows.
    Runs only after eval_report's blocking checks pass."""
    store = model_store.store()
    promote, reason = should_promote(eval_report["metrics"], config.margin)
    context.log.info(reason)
    if promote:
        record = ChampionRecord(
            version=tuned_model.version,
            model_path=tuned_model.model_path,
            promoted_at=now_iso(),
            dagster_run_id=context.run_id,
            mlflow_run_id=tuned_model.mlflow_run_id,
            registered_model_version=tuned_model.registered_version,
            data_version=tuned_model.data_version,
            code_version=MODEL_VERSION,
            training_rows=tuned_model.training_rows,
            metrics=eval_report["metrics"][CANDIDATE],
        )
        store.promote(record)
        if tuned_model.registered_version:
            mlflow.tracker().set_champion(tuned_model.registered_version)
    current = store.champion()
    return dg.MaterializeResult(
        metadata={
            "promoted": promote,
            "reason": reason,
            "champion_version": current.version if current else "",
            "champion_test_rmsle": float(current.metrics.get("rmsle", np.nan)) if current else float("nan"),
            "champion": dg.MetadataValue.json(asdict(current)) if current else dg.MetadataValue.json({}),
        }
    )
