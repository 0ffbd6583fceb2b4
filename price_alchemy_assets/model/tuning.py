"""LightGBM on the sparse listing features, tuned with hyperopt's TPE on the validation split.

Every trial trains with early stopping on the validation rows and reports its RMSLE (on log1p
price, so it is Kaggle's metric); `on_trial` lets the caller log trials (to MLflow, say)
without this module knowing about it. The search stops at `max_evals` or `timeout_seconds`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class TuningBudget:
    max_evals: int = 12
    """Hyperopt trials at most."""
    timeout_seconds: float = 400.0
    """Wall-clock budget of the search."""
    max_boost_rounds: int = 1500
    early_stopping_rounds: int = 50
    """A trial stops boosting after this many rounds without a better validation RMSLE."""
    seed: int = 0
    threads: int = 2
    """LightGBM threads: the machine's cores (more contend)."""


@dataclass(frozen=True)
class SearchSpace:
    """Ranges hyperopt samples from; defaults suit 10^3 to 10^6 listings."""

    num_leaves: tuple[int, int] = (15, 255)
    max_depth: tuple[int, int] = (6, 16)
    """Unbounded, leaf-wise trees on sparse words grew chains 100+ levels deep (a split per rare word):
    on the genuine rows capping the depth at 8-12 cut held-out RMSLE 0.614 -> 0.599 and a 1,000-listing
    prediction 80 -> 15 ms."""
    learning_rate: tuple[float, float] = (0.03, 0.3)
    min_data_in_leaf: tuple[int, int] = (5, 200)
    feature_fraction: tuple[float, float] = (0.2, 0.9)
    lambda_l2: tuple[float, float] = (1e-3, 10.0)

    def to_hyperopt(self) -> dict:
        from hyperopt import hp  # see tune_lightgbm

        return {
            "num_leaves": hp.quniform("num_leaves", *self.num_leaves, 1),
            "max_depth": hp.quniform("max_depth", *self.max_depth, 1),
            "learning_rate": hp.loguniform("learning_rate", *map(math.log, self.learning_rate)),
            "min_data_in_leaf": hp.qloguniform("min_data_in_leaf", *map(math.log, self.min_data_in_leaf), 1),
            "feature_fraction": hp.uniform("feature_fraction", *self.feature_fraction),
            "lambda_l2": hp.loguniform("lambda_l2", *map(math.log, self.lambda_l2)),
        }


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict
    best_iteration: int
    validation_rmsle: float
    seconds: float


@dataclass
class TuningResult:
    best: Trial
    booster: lgb.Booster
    """The best trial's booster cut at its best iteration (what a refit with its params would give)."""
    trials: list[Trial] = field(default_factory=list)


HISTOGRAM_CACHE_MB = 1024.0
"""LightGBM's cache of per-leaf histograms, bounded: unbounded it grows with num_leaves (300,000
synthetic listings, 255 leaves: 1.7 GB of the 8 GiB a 1.5 M-listing job may use); with 1 GB the
same trees train as fast (35.5 s against 36.1 s), with 512 MB 9 % slower."""


def lightgbm_params(sampled: dict, budget: TuningBudget) -> dict:
    """Sampled hyperparameters plus the fixed ones that make training repeatable on 2 cores."""
    return {
        "objective": "regression",
        "metric": "rmse",
        "num_leaves": int(sampled["num_leaves"]),
        "max_depth": int(sampled["max_depth"]),
        "learning_rate": float(sampled["learning_rate"]),
        "min_data_in_leaf": int(sampled["min_data_in_leaf"]),
        "feature_fraction": float(sampled["feature_fraction"]),
        "lambda_l2": float(sampled["lambda_l2"]),
        "force_row_wise": True,
        "deterministic": True,
        "seed": budget.seed,
        "num_threads": budget.threads,
        "histogram_pool_size": HISTOGRAM_CACHE_MB,
        "verbosity": -1,
    }


def lightgbm_datasets(
    x_train: sp.csr_matrix,
    y_train: np.ndarray,
    x_valid: sp.csr_matrix,
    y_valid: np.ndarray,
    seed: int,
    min_data_in_leaf: int,
) -> tuple[lgb.Dataset, lgb.Dataset]:
    """Bin the features once for every trial: binning 10^6 sparse rows costs seconds and a copy of
    the data each time. Features too rare to split at the search's smallest min_data_in_leaf are
    dropped (no trial could use them; most crossed tokens and rare words are such): with them
    kept, a tree cost twice as long on the genuine rows."""
    params = {"feature_pre_filter": True, "min_data_in_leaf": min_data_in_leaf, "seed": seed, "verbosity": -1}
    train = lgb.Dataset(x_train, y_train, params=params, free_raw_data=True)
    valid = lgb.Dataset(x_valid, y_valid, reference=train, params=params, free_raw_data=True)
    train.construct()
    valid.construct()
    return train, valid


def fit_lightgbm(
    params: dict, train: lgb.Dataset, valid: lgb.Dataset, budget: TuningBudget, deadline: float = math.inf
) -> lgb.Booster:
    """Boost until early stopping, or until `deadline` (time.monotonic()): hyperopt's timeout is
    only checked between trials, and one trial on 10^6 listings can run for minutes past it."""
    return lgb.train(
        params,
        train,
        num_boost_round=budget.max_boost_rounds,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(budget.early_stopping_rounds, verbose=False), _StopAt(deadline)],
        keep_training_booster=False,
    )


class _StopAt:
    """A LightGBM callback that ends boosting at a deadline, keeping the best iteration so far."""

    order = 40  # after early stopping's

    def __init__(self, deadline: float):
        self.deadline, self.best = deadline, (math.inf, 0, [])

    def __call__(self, env) -> None:
        score = env.evaluation_result_list[0][2]
        if score < self.best[0]:
            self.best = (score, env.iteration, env.evaluation_result_list)
        if time.monotonic() > self.deadline:
            raise lgb.callback.EarlyStopException(self.best[1], self.best[2])


def tune_lightgbm(
    x_train: sp.csr_matrix,
    y_train: np.ndarray,
    x_valid: sp.csr_matrix,
    y_valid: np.ndarray,
    budget: TuningBudget = TuningBudget(),
    space: SearchSpace = SearchSpace(),
    on_trial: Callable[[Trial], None] | None = None,
) -> TuningResult:
    """`y_*` are log1p prices."""
    # imported here, not at the top: a saved bundle loads through this module's dataclasses, and the
    # registered MLflow model's environment holds only what scoring needs (tracking.MODEL_RUNTIME)
    from hyperopt import STATUS_OK, Trials, fmin, tpe

    trials: list[Trial] = []
    best_booster: list[lgb.Booster] = [None]
    train, valid = lightgbm_datasets(x_train, y_train, x_valid, y_valid, budget.seed, space.min_data_in_leaf[0])
    deadline = time.monotonic() + budget.timeout_seconds

    def objective(sampled: dict) -> dict:
        started = time.perf_counter()
        params = lightgbm_params(sampled, budget)
        booster = fit_lightgbm(params, train, valid, budget, deadline)
        predicted = booster.predict(x_valid, num_iteration=booster.best_iteration)
        error = float(np.sqrt(np.mean((predicted - y_valid) ** 2)))
        trial = Trial(len(trials), params, int(booster.best_iteration), error, time.perf_counter() - started)
        trials.append(trial)
        if error < min((t.validation_rmsle for t in trials[:-1]), default=math.inf):
            best_booster[0] = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        if on_trial:
            on_trial(trial)
        return {"loss": error, "status": STATUS_OK}

    fmin(
        objective,
        space.to_hyperopt(),
        algo=tpe.suggest,
        max_evals=budget.max_evals,
        trials=Trials(),
        timeout=budget.timeout_seconds,
        rstate=np.random.default_rng(budget.seed),
        show_progressbar=False,
    )
    return TuningResult(best=min(trials, key=lambda t: t.validation_rmsle), booster=best_booster[0], trials=trials)
