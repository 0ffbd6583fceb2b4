"""The price model bundle: one object that predicts a price and its range from raw listing fields.

Inside: the fitted featurizer and a blend of learners on its sparse features (Ridge, sparse
MLPs, tuned LightGBM; ensemble.py), weighted in log-price space by weights chosen on held-out
rows, and a split-conformal half-width (from the same held-out rows) that turns the point
estimate into a range with the promised coverage. Batch scoring and the service load it the
same way: `ModelStore.load_bundle` (model/store.py), which ends in `PriceModel.load(directory)`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
import sklearn
from threadpoolctl import threadpool_limits

from price_alchemy_assets.listings.profile import ListingsProfile
from price_alchemy_assets.model.comparables import ComparableListings
from price_alchemy_assets.model.ensemble import (
    LIGHTGBM,
    RIDGE,
    Blend,
    BlendConfig,
    ColumnLayout,
    RidgeLearner,
    fit_blend,
)
from price_alchemy_assets.model.features import FeaturizerConfig, ListingFeaturizer, Listings, leading_columns
from price_alchemy_assets.model.trees import BoostedTrees
from price_alchemy_assets.model.tuning import SearchSpace, TuningBudget, TuningResult, tune_lightgbm

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
"""Format 1 (Ridge + LightGBM, one weight) still loads: a champion trained before the blend
keeps serving, and a new candidate is still judged against it."""


PRICE_COLUMNS = ["price", "price_low", "price_high"]
"""What a prediction gives for each listing, in dollars."""


@dataclass
class PriceModel:
    featurizer: ListingFeaturizer
    blend: Blend
    interval_half_width: float
    interval_coverage: float
    info: dict = field(default_factory=dict)
    category_prices: dict[str, dict] = field(default_factory=dict)
    """Training price quartiles by category path and by each path prefix: the seller's "typical price"."""
    training_profile: ListingsProfile | None = None
    """What the model learned from, for drift monitoring (profile.json in the bundle)."""
    comparables: ComparableListings | None = None
    """The listings it learned from, to show a seller the most similar (comparables/ in the bundle;
    loaded only when asked, by the explanation process: prices do not need them)."""

    def features(self, listings: Listings) -> sp.csr_matrix:
        # the fitted pieces' inputs are ours and already valid; sklearn's per-call checks are a
        # fixed cost that dominates the small batches a service sends
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return self.featurizer.transform(listings)

    def predict_log(self, listings: Listings) -> np.ndarray:
        features = self.features(listings)
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return self.blend.predict(features)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """price, price_low, price_high in dollars, one row per listing, index kept."""
        return pd.DataFrame(self.price_range(self.predict_log(frame)), columns=PRICE_COLUMNS, index=frame.index)

    def price_range(self, log_price: np.ndarray) -> np.ndarray:
        """Log1p prices as the dollars and range a seller sees: one row per listing, PRICE_COLUMNS.
        An array, not a frame: building a frame is a tenth of the time of a lone listing's price."""
        return np.column_stack(
            [
                np.expm1(log_price).clip(0, None),
                np.expm1(log_price - self.interval_half_width).clip(0, None),
                np.expm1(log_price + self.interval_half_width),
            ]
        )

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        trees = self.blend.learners[LIGHTGBM]
        others = {name: learner for name, learner in self.blend.learners.items() if name != LIGHTGBM}
        joblib.dump({"featurizer": self.featurizer, "learners": others}, directory / "sklearn.joblib")
        (directory / "lightgbm.txt").write_text(trees.booster.model_to_string())
        meta = {
            "format_version": FORMAT_VERSION,
            "weights": self.blend.weights,
            "interval_half_width": self.interval_half_width,
            "interval_coverage": self.interval_coverage,
            "info": self.info,
            "category_prices": self.category_prices,
        }
        (directory / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        if self.training_profile is not None:
            (directory / "profile.json").write_text(json.dumps(self.training_profile.to_json()))
        if self.comparables is not None:
            self.comparables.save(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path, with_comparables: bool = False) -> PriceModel:
        directory = Path(directory)
        meta = json.loads((directory / "model.json").read_text())
        if meta.get("format_version") not in READABLE_FORMATS:
            raise ValueError(
                f"{directory}: model format {meta.get('format_version')!r}, expected one of {READABLE_FORMATS}"
            )
        parts = joblib.load(directory / "sklearn.joblib")
        trees = BoostedTrees(lgb.Booster(model_str=(directory / "lightgbm.txt").read_text()))
        if meta["format_version"] == 1:
            learners = {RIDGE: RidgeLearner.of(parts["ridge"]), LIGHTGBM: trees}
            weights = {RIDGE: meta["ridge_weight"], LIGHTGBM: 1 - meta["ridge_weight"]}
        else:
            learners, weights = parts["learners"] | {LIGHTGBM: trees}, meta["weights"]
        return cls(
            parts["featurizer"],
            Blend(learners, weights),
            meta["interval_half_width"],
            meta["interval_coverage"],
            meta.get("info", {}),
            meta.get("category_prices", {}),
            _read_profile(directory),
            ComparableListings.load(directory) if with_comparables else None,
        )


def limit_blas_threads() -> None:
    """One BLAS thread for this process, for scoring: a prediction's dense products (the networks'
    upper layers) are small, and OpenBLAS's threads spin for a while after each one, taking the two
    cores from the threads that run the networks' sparse first layer (a 1,000-listing MLP call went
    35 -> 18 ms with one BLAS thread)."""
    threadpool_limits(1, user_api="blas")


def read_reference(directory: str | Path) -> tuple[ListingsProfile | None, dict]:
    """A bundle's training profile and info without loading the model (what a sensor tick needs)."""
    directory = Path(directory)
    info = json.loads((directory / "model.json").read_text()).get("info", {})
    return _read_profile(directory), info


def _read_profile(directory: Path) -> ListingsProfile | None:
    """profile.json, which bundles saved before profiles existed lack."""
    path = directory / "profile.json"
    return ListingsProfile.from_json(json.loads(path.read_text())) if path.exists() else None


@dataclass(frozen=True)
class TrainingConfig:
    featurizer: FeaturizerConfig = FeaturizerConfig()
    budget: TuningBudget = TuningBudget()
    space: SearchSpace = SearchSpace()
    blend: BlendConfig = BlendConfig()
    interval_coverage: float = 0.8
    """Share of held-out prices the suggested range is sized to hold (from the blend's residuals)."""


def category_prices(listings: pd.DataFrame, min_listings: int = 5) -> dict[str, dict]:
    """Price quartiles of `listings` by category, by every category prefix ("Women", "Women/Tops") and
    over all of them ("*")."""
    if "category_name" not in listings:
        return {}
    category = listings["category_name"].fillna("").astype(str)
    parts = category.str.split("/", n=2, expand=True).reindex(columns=[0, 1, 2]).fillna("")
    prefixes = [pd.Series("*", index=category.index), parts[0], parts[0] + "/" + parts[1], category]
    keyed = pd.concat([pd.DataFrame({"key": p, "price": listings["price"].to_numpy()}) for p in prefixes])
    keyed = keyed[(keyed["key"] != "") & ~keyed["key"].str.endswith("/")]
    stats = keyed.groupby("key")["price"].describe(percentiles=[0.25, 0.5, 0.75])
    stats = stats[stats["count"] >= min_listings]
    return {
        key: {"listings": int(row["count"]), "p25": row["25%"], "median": row["50%"], "p75": row["75%"]}
        for key, row in stats.iterrows()
    }


def conformal_half_width(residuals: np.ndarray, coverage: float) -> float:
    """Split-conformal quantile of |residual|, with the finite-sample correction."""
    n = len(residuals)
    level = min(1.0, np.ceil((n + 1) * coverage) / n)
    return float(np.quantile(np.abs(residuals), level, method="higher"))


def train_price_model(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    config: TrainingConfig = TrainingConfig(),
    on_trial=None,
    featurizer: ListingFeaturizer | None = None,
    train_features: sp.csr_matrix | None = None,
    validation_features: sp.csr_matrix | None = None,
    profile: ListingsProfile | None = None,
    on_stage=None,
) -> tuple[PriceModel, TuningResult]:
    """Fit on `train`, tune LightGBM and choose the blend on held-out rows, calibrate the range
    on the same held-out predictions, then refit the learners on train + validation; both frames
    need a positive `price` and the fields a seller sees of a comparable listing (comparables.FIELDS).

    A featurizer already fitted (and its matrices) may be passed in to avoid refitting, and the
    train split's profile, where `train` holds only some columns (the pipeline measures its
    out-of-vocabulary rate on its test split; here, without one, it is the validation rows',
    which the featurizer has read). `on_stage` hears each stage's name as it starts.
    """
    say = on_stage or (lambda stage: None)
    if featurizer is None:
        featurizer = ListingFeaturizer(config.featurizer).fit(pd.concat([train, validation]))
    if profile is None:
        profile = ListingsProfile.from_listings(train).with_oov_rate(featurizer, validation)
    x_train = featurizer.transform(train) if train_features is None else train_features
    x_valid = featurizer.transform(validation) if validation_features is None else validation_features
    y_train, y_valid = np.log1p(train["price"].to_numpy()), np.log1p(validation["price"].to_numpy())

    say(f"LightGBM search (at most {config.budget.max_evals} trials, {config.budget.timeout_seconds:.0f} s)")
    started = time.perf_counter()
    columns = featurizer.tree_columns
    tuning = tune_lightgbm(
        leading_columns(x_train, columns),
        y_train,
        leading_columns(x_valid, columns),
        y_valid,
        config.budget,
        config.space,
        on_trial,
    )
    search_seconds = time.perf_counter() - started
    layout = ColumnLayout(
        trees=columns,
        neural=featurizer.neural_columns,
        ridge_weights=featurizer.column_weights(config.blend.ridge_block_weights),
    )
    fitted = fit_blend(
        x_train, y_train, x_valid, y_valid, tuning.best.params, tuning.booster, layout, config.blend, say
    )
    half_width = conformal_half_width(fitted.held_out_residuals, config.interval_coverage)
    info = {
        "train_rows": len(train),
        "validation_rows": len(validation),
        "final_training_rows": len(train) + len(validation) if fitted.refitted else len(train),
        "held_out_rows": len(fitted.held_out_residuals),
        "validation_rmsle": fitted.held_out_rmsle["blend"],
        **{f"validation_rmsle_{name}": value for name, value in fitted.held_out_rmsle.items() if name != "blend"},
        "blend_weights": fitted.blend.weights,
        "ridge_alpha": fitted.ridge_alpha,
        "ridge_block_weights": config.blend.ridge_block_weights,
        "lightgbm_params": tuning.best.params,
        "lightgbm_best_iteration": tuning.best.best_iteration,
        "lightgbm_final_rounds": fitted.lightgbm_rounds,
        "refitted_on_validation": fitted.refitted,
        "trials": len(tuning.trials),
        "seconds": {"lightgbm_search": round(search_seconds, 1), **fitted.seconds},
        "featurizer": featurizer.describe(),
    }
    learned_from = pd.concat([train, validation])
    say("comparable listings")
    model = PriceModel(
        featurizer,
        fitted.blend,
        half_width,
        config.interval_coverage,
        info,
        category_prices(learned_from),
        profile,
        ComparableListings.fit(learned_from),
    )
    return model, tuning
