"""The price model bundle: one object that predicts a price and its range from raw listing fields.

Inside: the fitted featurizer, a Ridge regression and a tuned LightGBM booster on the same
sparse features, blended in log-price space with a weight chosen on the validation split, and
a split-conformal half-width (also from the validation split) that turns the point estimate
into a range with the promised coverage. Batch scoring and the service load it the same way:
`ModelStore.load_bundle` (model/store.py), which ends in `PriceModel.load(directory)`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
import sklearn
from sklearn.linear_model import Ridge

from price_alchemy_assets.model.features import FeaturizerConfig, ListingFeaturizer
from price_alchemy_assets.model.tuning import SearchSpace, TuningBudget, TuningResult, tune_lightgbm
from price_alchemy_assets.monitoring.profile import ListingsProfile

FORMAT_VERSION = 1
BLEND_GRID = np.linspace(0.0, 1.0, 21)


@dataclass
class PriceModel:
    featurizer: ListingFeaturizer
    ridge: Ridge
    booster: lgb.Booster
    ridge_weight: float
    interval_half_width: float
    interval_coverage: float
    info: dict = field(default_factory=dict)
    category_prices: dict[str, dict] = field(default_factory=dict)
    """Training price quartiles by category path and by each path prefix: the seller's "typical price"."""
    training_profile: ListingsProfile | None = None
    """What the model learned from, for drift monitoring (profile.json in the bundle)."""

    def predict_log(self, frame: pd.DataFrame) -> np.ndarray:
        # the fitted pieces' inputs are ours and already valid; sklearn's per-call checks are a
        # fixed cost that dominates the small batches a service sends
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            features = self.featurizer.transform(frame)
            return blend(self.ridge.predict(features), self.booster.predict(features), self.ridge_weight)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """price, price_low, price_high in dollars, one row per listing, index kept."""
        log_price = self.predict_log(frame)
        return pd.DataFrame(
            {
                "price": np.expm1(log_price).clip(0, None),
                "price_low": np.expm1(log_price - self.interval_half_width).clip(0, None),
                "price_high": np.expm1(log_price + self.interval_half_width),
            },
            index=frame.index,
        )

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump({"featurizer": self.featurizer, "ridge": self.ridge}, directory / "sklearn.joblib")
        (directory / "lightgbm.txt").write_text(self.booster.model_to_string())
        meta = {
            "format_version": FORMAT_VERSION,
            "ridge_weight": self.ridge_weight,
            "interval_half_width": self.interval_half_width,
            "interval_coverage": self.interval_coverage,
            "info": self.info,
            "category_prices": self.category_prices,
        }
        (directory / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        if self.training_profile is not None:
            (directory / "profile.json").write_text(json.dumps(self.training_profile.to_json()))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> PriceModel:
        directory = Path(directory)
        meta = json.loads((directory / "model.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{directory}: model format {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        parts = joblib.load(directory / "sklearn.joblib")
        booster = lgb.Booster(model_str=(directory / "lightgbm.txt").read_text())
        return cls(
            parts["featurizer"],
            parts["ridge"],
            booster,
            meta["ridge_weight"],
            meta["interval_half_width"],
            meta["interval_coverage"],
            meta.get("info", {}),
            meta.get("category_prices", {}),
            _read_profile(directory),
        )


def read_reference(directory: str | Path) -> tuple[ListingsProfile | None, dict]:
    """A bundle's training profile and info without loading the model (what a sensor tick needs)."""
    directory = Path(directory)
    info = json.loads((directory / "model.json").read_text()).get("info", {})
    return _read_profile(directory), info


def _read_profile(directory: Path) -> ListingsProfile | None:
    """profile.json, which bundles saved before profiles existed lack."""
    path = directory / "profile.json"
    return ListingsProfile.from_json(json.loads(path.read_text())) if path.exists() else None


def blend(ridge_log: np.ndarray, booster_log: np.ndarray, ridge_weight: float) -> np.ndarray:
    return ridge_weight * ridge_log + (1 - ridge_weight) * booster_log


@dataclass(frozen=True)
class TrainingConfig:
    featurizer: FeaturizerConfig = FeaturizerConfig()
    budget: TuningBudget = TuningBudget()
    space: SearchSpace = SearchSpace()
    ridge_alpha: float = 3.0
    interval_coverage: float = 0.8


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
) -> tuple[PriceModel, TuningResult]:
    """Fit on `train`, tune, blend and calibrate on `validation`; both need a positive `price`.

    A featurizer already fitted on `train` (and its matrices) may be passed in to avoid refitting,
    and the train split's profile, where `train` holds only some columns.
    """
    if featurizer is None:
        featurizer = ListingFeaturizer(config.featurizer).fit(train)
    if profile is None:
        profile = ListingsProfile.from_listings(train).with_oov_rate(featurizer, validation)
    x_train = featurizer.transform(train) if train_features is None else train_features
    x_valid = featurizer.transform(validation) if validation_features is None else validation_features
    y_train, y_valid = np.log1p(train["price"].to_numpy()), np.log1p(validation["price"].to_numpy())

    ridge = Ridge(alpha=config.ridge_alpha, random_state=config.budget.seed).fit(x_train, y_train)
    tuning = tune_lightgbm(x_train, y_train, x_valid, y_valid, config.budget, config.space, on_trial)
    booster = tuning.booster

    ridge_valid, booster_valid = ridge.predict(x_valid), booster.predict(x_valid)
    errors = [float(np.sqrt(np.mean((blend(ridge_valid, booster_valid, w) - y_valid) ** 2))) for w in BLEND_GRID]
    weight = float(BLEND_GRID[int(np.argmin(errors))])
    half_width = conformal_half_width(blend(ridge_valid, booster_valid, weight) - y_valid, config.interval_coverage)
    info = {
        "train_rows": len(train),
        "validation_rows": len(validation),
        "validation_rmsle": min(errors),
        "validation_rmsle_ridge": errors[-1],
        "validation_rmsle_lightgbm": errors[0],
        "lightgbm_params": tuning.best.params,
        "lightgbm_best_iteration": tuning.best.best_iteration,
        "trials": len(tuning.trials),
        "featurizer": featurizer.describe(),
    }
    model = PriceModel(
        featurizer, ridge, booster, weight, half_width, config.interval_coverage, info, category_prices(train), profile
    )
    return model, tuning
