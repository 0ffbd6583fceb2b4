"""The price model's learners and their blend, in log price.

Three kinds of learner see the same sparse features: Ridge (with its regularization chosen on
held-out rows), an average of sparse MLPs, and LightGBM (tuned by hyperopt in tuning.py). Their
out-of-fold predictions choose non-negative blend weights (NNLS) and the range's half-width:
out of K folds over train + validation when the data is small (on the 7,000 genuine rows a
560-row validation split chose weights 0.003-0.006 RMSLE worse than out-of-fold ones), from the
validation split alone from a few tens of thousands of listings (its 2,000+ rows decide three
weights well, and K refits would multiply the training time). The final learners are then
refitted on train + validation, up to a few hundred thousand listings (beyond, the validation
split adds little and a refit would double the cost). LightGBM learns from the featurizer's leading columns only
(`tree_columns`); Ridge and the MLPs from all of them.

Each learner also explains one listing against the empty listing (all features zero):
`attribute(row) -> (f(empty), f(listing), {column: contribution})`, contributions of the
listing's own features only, adding up to f(listing) - f(empty). Ridge's is exact (coefficient
times value), the MLP's is DeepLIFT (exact sum), the trees' exact Shapley values; the blend's
is their weighted sum, so it adds up too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls
from sklearn.linear_model import Ridge

from price_alchemy_assets.model.features import leading_columns
from price_alchemy_assets.model.mlp import MLPConfig, SparseMLPRegressor
from price_alchemy_assets.model.trees import BoostedTrees
from price_alchemy_assets.model.tuning import TuningBudget

RIDGE, MLP, LIGHTGBM = "ridge", "mlp", "lightgbm"
LEARNERS = (RIDGE, MLP, LIGHTGBM)


RIDGE_BLOCK_WEIGHTS = {
    "description": 0.75,
    "onehot": 0.5,
    "engineered": 2.0,
    "title_chars": 0.75,
    "category_pairs": 0.3,
}
"""Ridge's penalty per feature block, as a column scale (1 where absent): a block scaled by w is
penalized as if its alpha were alpha / w^2. Chosen by coordinate search over 5-fold CV of the 7,000
genuine rows (Ridge alone 0.5427 -> 0.5355 RMSLE; the one-hot columns, worth 1 where the text
columns' tf-idf values are a few tenths, were the most underpenalized)."""


@dataclass(frozen=True)
class ColumnLayout:
    """Which feature columns each learner reads: the trees and the networks a leading slice of
    them (ListingFeaturizer.tree_columns, .neural_columns), Ridge all, each with its penalty weight."""

    trees: int
    neural: int
    ridge_weights: np.ndarray | None = None


@dataclass(frozen=True)
class BlendConfig:
    ridge_alphas: tuple[float, ...] = (1.5, 3.0, 6.0)
    """Ridge regularizations tried on held-out rows."""
    ridge_block_weights: dict[str, float] = field(default_factory=lambda: dict(RIDGE_BLOCK_WEIGHTS))
    """Ridge's column scale per feature block (a block scaled by w is penalized as by alpha / w^2)."""
    mlp: MLPConfig = MLPConfig()
    folds: int = 5
    """Out-of-fold predictions over train + validation from this many folds..."""
    folds_max_rows: int = 20_000
    """...when train + validation holds at most this many listings; else the validation split."""
    refit_max_rows: int = 200_000
    """Above this many listings the learners fitted on the train split are kept: the validation
    split's tenth more rows would cost a second fit of every learner."""
    threads: int = TuningBudget.threads
    seed: int = 0


def scale_columns(x: sp.csr_matrix, weights: np.ndarray | None, chunk: int = 4_000_000) -> sp.csr_matrix:
    """x with each column multiplied by its weight: a new data array, the index arrays shared, and
    the weights gathered `chunk` values at a time (at a million listings a gather of every value
    would be another quarter gigabyte)."""
    if weights is None or np.all(weights == 1.0):
        return x
    weights = weights.astype(x.dtype)
    data = np.empty_like(x.data)
    for start in range(0, len(data), chunk):
        window = slice(start, start + chunk)
        np.multiply(x.data[window], weights[x.indices[window]], out=data[window])
    return sp.csr_matrix((data, x.indices, x.indptr), shape=x.shape)


class RidgeLearner:
    """scikit-learn's Ridge with the blend's interface.

    Fitted on columns scaled by weights (scale_columns), it is Ridge with a penalty per column,
    alpha * sum((coef / weight)^2); `rescaled` then folds the weights into the coefficients, so
    prediction and attribution read the raw columns."""

    def __init__(self, alpha: float, seed: int = 0):
        self.alpha, self.seed = alpha, seed

    def fit(self, x: sp.csr_matrix, y: np.ndarray) -> RidgeLearner:
        # copy_X off: sparse input is never modified (centering is implicit), and a copy of 10^6 rows is
        # half a gigabyte per alpha
        self.ridge_ = Ridge(alpha=self.alpha, copy_X=False, random_state=self.seed).fit(x, y)
        return self

    def rescaled(self, weights: np.ndarray | None) -> RidgeLearner:
        """After fitting on scale_columns(x, weights): coefficients for the raw columns."""
        if weights is not None:
            self.ridge_.coef_ = self.ridge_.coef_ * weights
        return self

    @classmethod
    def of(cls, ridge: Ridge) -> RidgeLearner:
        """A Ridge fitted elsewhere (a format-1 bundle's)."""
        learner = cls(ridge.alpha)
        learner.ridge_ = ridge
        return learner

    def predict(self, x: sp.csr_matrix) -> np.ndarray:
        # Ridge.predict's arithmetic without its input checks (a third of a listing's Ridge time)
        return np.asarray(x @ self.ridge_.coef_, dtype=np.float64) + self.ridge_.intercept_

    def attribute(self, row: sp.csr_matrix) -> tuple[float, float, dict[int, float]]:
        intercept = float(self.ridge_.intercept_)
        products = row.data.astype(np.float64) * self.ridge_.coef_[row.indices]
        contributions = dict(zip(row.indices.tolist(), products.tolist(), strict=True))
        return intercept, intercept + float(products.sum()), contributions


@dataclass
class Blend:
    """Weighted sum of learners' log prices (weights non-negative, chosen out of fold)."""

    learners: dict[str, object]
    weights: dict[str, float]

    def predict(self, x: sp.csr_matrix) -> np.ndarray:
        return sum(weight * self.learners[name].predict(x) for name, weight in self.weights.items() if weight)

    def attribute(self, row: sp.csr_matrix) -> tuple[float, float, dict[int, float]]:
        empty = listing = 0.0
        contributions: dict[int, float] = {}
        for name, weight in self.weights.items():
            if not weight:
                continue
            part_empty, part_listing, parts = self.learners[name].attribute(row)
            empty, listing = empty + weight * part_empty, listing + weight * part_listing
            for column, value in parts.items():
                contributions[column] = contributions.get(column, 0.0) + weight * value
        return empty, listing, contributions

    def prepare(self) -> Blend:
        """Whatever `attribute` builds once (the trees' node tables), built now."""
        for learner in self.learners.values():
            if hasattr(learner, "prepare"):
                learner.prepare()
        return self


@dataclass
class BlendFit:
    """The fitted blend and what choosing it measured, on held-out rows."""

    blend: Blend
    held_out_residuals: np.ndarray
    """Log-price residuals of the blend on rows its learners had not seen (for the range)."""
    held_out_rmsle: dict[str, float]
    ridge_alpha: float
    lightgbm_rounds: int
    refitted: bool
    seconds: dict[str, float] = field(default_factory=dict)


def fold_of_rows(rows: int, folds: int, seed: int) -> np.ndarray:
    """Each row's fold, balanced and the same for the same seed."""
    return np.random.default_rng([seed, rows]).permutation(np.arange(rows) % folds)


def fit_blend(
    x_train: sp.csr_matrix,
    y_train: np.ndarray,
    x_valid: sp.csr_matrix,
    y_valid: np.ndarray,
    lightgbm_params: dict,
    lightgbm_booster: lgb.Booster,
    layout: ColumnLayout,
    config: BlendConfig = BlendConfig(),
    on_stage: Callable[[str], None] | None = None,
) -> BlendFit:
    """Choose the Ridge alpha and the weights on held-out rows, then refit on train + validation.

    `lightgbm_*`: the tuned booster (cut at its best iteration) and its parameters; `layout`: the
    columns each learner reads."""
    say = on_stage or (lambda stage: None)
    seconds: dict[str, float] = {}
    rows = len(y_train) + len(y_valid)
    small = rows <= config.folds_max_rows and config.folds > 1
    # fold fits never saw every training row, so the small regime always refits
    refit = small or rows <= config.refit_max_rows
    x_all = sp.vstack([x_train, x_valid], format="csr") if small or refit else None
    y_all = np.concatenate([y_train, y_valid])
    if small:
        fold = fold_of_rows(rows, config.folds, config.seed)
        splits = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(config.folds)]
    else:
        splits = [(None, np.arange(len(y_train), rows))]
    held = np.concatenate([held_rows for _, held_rows in splits])
    kinds = [kind for kind in LEARNERS if kind != MLP or config.mlp.networks]
    names = [f"{RIDGE}:{alpha}" for alpha in config.ridge_alphas] + kinds[1:]
    out_of_fold = {name: np.zeros(rows) for name in names}
    fitted_on_train: dict[str, object] = {}
    for number, (fit_rows, held_rows) in enumerate(splits):
        say(f"held-out predictions, fold {number + 1} of {len(splits)}")
        if small:
            x_fit, y_fit, x_held = x_all[fit_rows], y_all[fit_rows], x_all[held_rows]
        else:
            x_fit, y_fit, x_held = x_train, y_train, x_valid
        started = time.perf_counter()
        ridges = _fit_ridges(x_fit, y_fit, config, layout.ridge_weights)
        for alpha, ridge in ridges.items():
            out_of_fold[f"{RIDGE}:{alpha}"][held_rows] = ridge.predict(x_held)
        _add(seconds, RIDGE, started)
        if MLP in kinds:
            started = time.perf_counter()
            mlp = SparseMLPRegressor(config.mlp).fit(leading_columns(x_fit, layout.neural), y_fit)
            out_of_fold[MLP][held_rows] = mlp.predict(x_held)
            _add(seconds, MLP, started)
        started = time.perf_counter()
        if small:
            trees = lgb.Dataset(leading_columns(x_fit, layout.trees), y_fit)
            booster = lgb.train(lightgbm_params, trees, num_boost_round=lightgbm_booster.current_iteration())
        else:
            booster = lightgbm_booster
            fitted_on_train = {RIDGE: ridges, MLP: mlp if MLP in kinds else None}
        out_of_fold[LIGHTGBM][held_rows] = booster.predict(leading_columns(x_held, layout.trees))
        _add(seconds, LIGHTGBM, started)
        del x_fit, x_held

    y_held = y_all[held]
    error = {name: _rmse(out_of_fold[name][held], y_held) for name in names}
    alpha = min(config.ridge_alphas, key=lambda a: error[f"{RIDGE}:{a}"])
    chosen = {kind: f"{RIDGE}:{alpha}" if kind == RIDGE else kind for kind in kinds}
    predictions = np.column_stack([out_of_fold[chosen[kind]][held] for kind in kinds])
    weights, _ = nnls(predictions, y_held)
    residuals = y_held - predictions @ weights

    if refit:
        say("final learners on train + validation")
        learners, rounds = _refit(
            x_all,
            y_all,
            kinds,
            alpha,
            lightgbm_params,
            lightgbm_booster,
            layout,
            len(y_train),
            config,
            seconds,
        )
    else:
        learners = {RIDGE: fitted_on_train[RIDGE][alpha], LIGHTGBM: BoostedTrees(lightgbm_booster)}
        if MLP in kinds:
            learners[MLP] = fitted_on_train[MLP]
        rounds = lightgbm_booster.current_iteration()
    held_out = {kind: error[chosen[kind]] for kind in kinds} | {"blend": _rmse(predictions @ weights, y_held)}
    blend = Blend(learners, {kind: float(w) for kind, w in zip(kinds, weights, strict=True)})
    return BlendFit(blend, residuals, held_out, alpha, rounds, refit, {k: round(v, 1) for k, v in seconds.items()})


def _fit_ridges(
    x: sp.csr_matrix, y: np.ndarray, config: BlendConfig, weights: np.ndarray | None, alphas=None
) -> dict[float, RidgeLearner]:
    """One Ridge per alpha on the same weighted columns, side by side (its conjugate-gradient
    products release the GIL)."""
    alphas = alphas or config.ridge_alphas
    scaled = scale_columns(x, weights)
    with ThreadPoolExecutor(max(1, config.threads)) as pool:
        fitted = pool.map(lambda alpha: RidgeLearner(alpha, config.seed).fit(scaled, y).rescaled(weights), alphas)
        return dict(zip(alphas, fitted, strict=True))


def _refit(
    x_all, y_all, kinds, alpha, lightgbm_params, lightgbm_booster, layout, train_rows, config, seconds
) -> tuple[dict[str, object], int]:
    """The chosen learners fitted again on train + validation; LightGBM's rounds grow with its rows."""
    rounds = max(1, round(lightgbm_booster.current_iteration() * len(y_all) / train_rows))
    started = time.perf_counter()
    learners: dict[str, object] = {RIDGE: _fit_ridges(x_all, y_all, config, layout.ridge_weights, [alpha])[alpha]}
    _add(seconds, RIDGE, started)
    if MLP in kinds:
        started = time.perf_counter()
        learners[MLP] = SparseMLPRegressor(config.mlp).fit(leading_columns(x_all, layout.neural), y_all)
        _add(seconds, MLP, started)
    started = time.perf_counter()
    trees = lgb.Dataset(leading_columns(x_all, layout.trees), y_all)
    learners[LIGHTGBM] = BoostedTrees(lgb.train(lightgbm_params, trees, num_boost_round=rounds))
    _add(seconds, LIGHTGBM, started)
    return learners, rounds


def _rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def _add(seconds: dict[str, float], name: str, started: float) -> None:
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
