"""The bundle's numbers worked by hand: the range a seller reads around a log price, the conformal
half-width, what a saved bundle holds and gives back, and what one quick training records. Fast,
so mutation testing runs it."""

from __future__ import annotations

import json
import math

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_info, threadpool_limits

from price_alchemy_assets.listings.profile import ListingsProfile
from price_alchemy_assets.listings.synthetic import synthetic_market as market
from price_alchemy_assets.model.bundle import (
    PRICE_COLUMNS,
    PriceModel,
    TrainingConfig,
    category_prices,
    conformal_half_width,
    limit_blas_threads,
    read_reference,
    train_price_model,
)
from price_alchemy_assets.model.ensemble import LIGHTGBM, MLP, RIDGE, Blend, BlendConfig, RidgeLearner
from price_alchemy_assets.model.explain import PriceExplainer
from price_alchemy_assets.model.features import FeaturizerConfig, ListingFeaturizer
from price_alchemy_assets.model.mlp import MLPConfig
from price_alchemy_assets.model.split import TRAIN, VALIDATION, assign_split
from price_alchemy_assets.model.trees import BoostedTrees
from price_alchemy_assets.model.tuning import TuningBudget


def test_the_range_is_the_half_width_either_side_in_log_price():
    model = PriceModel.__new__(PriceModel)
    model.interval_half_width = 0.5
    log_prices = np.array([math.log1p(10.0), 0.0, 0.2, -0.1])
    expected = [
        [10.0, math.expm1(math.log1p(10.0) - 0.5), math.expm1(math.log1p(10.0) + 0.5)],
        [0.0, 0.0, math.expm1(0.5)],  # a low end below $0 is $0
        [math.expm1(0.2), 0.0, math.expm1(0.7)],
        [0.0, 0.0, math.expm1(0.4)],  # a price below $0 is $0
    ]
    np.testing.assert_allclose(model.price_range(log_prices), expected, rtol=1e-12, atol=1e-12)


def test_conformal_half_width_is_the_corrected_quantile_of_the_absolute_residuals():
    residuals = np.array([(-1) ** i * (i + 1.0) for i in range(20)])  # |r| = 1..20
    # ceil((20 + 1) * 0.5) / 20 = 0.55; the "higher" quantile at 0.55 of 1..20 is the 12th value
    assert conformal_half_width(residuals, 0.5) == 12.0
    # ceil(21 * 0.8) / 20 = 0.85: 19 * 0.85 = 16.15, so the 18th value
    assert conformal_half_width(residuals, 0.8) == 18.0
    # ceil(4 * 0.9) / 3 = 4 / 3, capped at 1: the largest
    assert conformal_half_width(np.array([0.1, -0.3, 0.2]), 0.9) == 0.3


def test_category_prices_need_the_column_and_min_listings():
    assert category_prices(pd.DataFrame({"price": [1.0, 2.0]})) == {}
    rows = pd.DataFrame({"category_name": ["A/B/C"] * 3 + ["A/B/D"], "price": [1.0, 2.0, 3.0, 4.0]})
    assert set(category_prices(rows, min_listings=3)) == {"*", "A", "A/B", "A/B/C"}
    assert set(category_prices(rows, min_listings=4)) == {"*", "A", "A/B"}
    assert category_prices(rows, min_listings=1)["A/B/D"] == {"listings": 1, "p25": 4.0, "median": 4.0, "p75": 4.0}


@pytest.fixture(scope="module")
def listings() -> pd.DataFrame:
    return market(400, seed=3)


@pytest.fixture(scope="module")
def hand_model(listings) -> PriceModel:
    """A Ridge and 5 LightGBM rounds on 400 listings, blended 0.3 / 0.7: a format-2 bundle in a second."""
    featurizer = ListingFeaturizer(FeaturizerConfig(text_max_features=0)).fit(listings)
    x, y = featurizer.transform(listings), np.log1p(listings["price"].to_numpy())
    ridge = RidgeLearner(alpha=3.0).fit(x, y)
    booster = lgb.train({"verbosity": -1, "num_threads": 1, "num_leaves": 7, "seed": 0}, lgb.Dataset(x, y), 5)
    blend = Blend({RIDGE: ridge, LIGHTGBM: BoostedTrees(booster)}, {RIDGE: 0.3, LIGHTGBM: 0.7})
    profile = ListingsProfile.from_listings(listings)
    return PriceModel(featurizer, blend, 0.4, 0.8, {"train_rows": 400}, category_prices(listings), profile)


def test_a_prediction_is_the_blend_of_the_featurized_listings_with_its_range(hand_model, listings):
    rows = listings.iloc[[5, 1, 7]]
    x = hand_model.featurizer.transform(rows)
    learners = hand_model.blend.learners
    log_price = 0.3 * learners[RIDGE].predict(x) + 0.7 * learners[LIGHTGBM].booster.predict(x)
    np.testing.assert_allclose(hand_model.predict_log(rows), log_price, rtol=1e-9)
    predicted = hand_model.predict(rows)
    assert list(predicted.columns) == PRICE_COLUMNS and list(predicted.index) == [5, 1, 7]
    np.testing.assert_allclose(predicted["price"], np.expm1(log_price), rtol=1e-9)
    np.testing.assert_allclose(predicted["price_low"], np.expm1(log_price - 0.4), rtol=1e-9)
    np.testing.assert_allclose(predicted["price_high"], np.expm1(log_price + 0.4), rtol=1e-9)


def test_a_saved_bundle_gives_back_everything_it_holds(hand_model, listings, tmp_path):
    directory = hand_model.save(tmp_path / "store" / "bundle")  # folders made as needed
    assert hand_model.save(directory) == directory  # and saved again over itself
    meta = json.loads((directory / "model.json").read_text())
    assert meta["format_version"] == 2 and meta["weights"] == {RIDGE: 0.3, LIGHTGBM: 0.7}
    loaded = PriceModel.load(directory)
    np.testing.assert_allclose(loaded.predict(listings).to_numpy(), hand_model.predict(listings).to_numpy(), rtol=1e-9)
    assert (loaded.interval_half_width, loaded.interval_coverage) == (0.4, 0.8)
    assert loaded.blend.weights == {RIDGE: 0.3, LIGHTGBM: 0.7} and loaded.info == {"train_rows": 400}
    assert loaded.category_prices == json.loads(json.dumps(hand_model.category_prices))
    assert loaded.training_profile == hand_model.training_profile
    profile, info = read_reference(directory)
    assert profile == hand_model.training_profile and info == {"train_rows": 400}

    (directory / "profile.json").unlink()  # a bundle saved before profiles existed
    assert PriceModel.load(directory).training_profile is None and read_reference(directory) == (None, info)
    for unreadable in (3, None):
        (directory / "model.json").write_text(json.dumps({**meta, "format_version": unreadable}))
        with pytest.raises(ValueError, match=rf"{directory}: model format {unreadable}, expected one of \(1, 2\)"):
            PriceModel.load(directory)


def test_a_format_1_bundle_still_loads_predicts_and_explains(listings, tmp_path):
    """A champion trained before the blend (Ridge + LightGBM, one weight) keeps serving."""
    featurizer = ListingFeaturizer(
        FeaturizerConfig(title_chars_max_features=0, crossed_max_features=0, text_max_features=0, category_pairs=False)
    ).fit(listings)
    x, y = featurizer.transform(listings), np.log1p(listings["price"].to_numpy())
    ridge = Ridge(alpha=3.0).fit(x, y)
    booster = lgb.train({"verbosity": -1, "num_threads": 1, "num_leaves": 7}, lgb.Dataset(x, y), 10)
    joblib.dump({"featurizer": featurizer, "ridge": ridge}, tmp_path / "sklearn.joblib")
    (tmp_path / "lightgbm.txt").write_text(booster.model_to_string())
    meta = {"format_version": 1, "ridge_weight": 0.4, "interval_half_width": 0.5, "interval_coverage": 0.8}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    model = PriceModel.load(tmp_path)
    assert (model.info, model.category_prices, model.training_profile) == ({}, {}, None)
    rows = listings.head(20)
    expected = 0.4 * ridge.predict(featurizer.transform(rows)) + 0.6 * booster.predict(featurizer.transform(rows))
    np.testing.assert_allclose(model.predict_log(rows), expected, rtol=1e-6)
    explanation = PriceExplainer(model).explain(rows.iloc[[0]])
    product = explanation.base_price * math.prod(1 + d.effect for d in explanation.drivers)
    assert product * (1 + explanation.other_effect) == pytest.approx(
        model.predict(rows.iloc[[0]])["price"].iloc[0], rel=1e-6
    )


def test_scoring_uses_one_blas_thread():
    threadpool_limits(2, user_api="blas")  # whatever an earlier test left
    limit_blas_threads()
    assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {1}


QUICK = TrainingConfig(
    featurizer=FeaturizerConfig(text_max_features=0, title_chars_max_features=0),
    budget=TuningBudget(max_evals=2, timeout_seconds=600, max_boost_rounds=30, early_stopping_rounds=5, threads=1),
    blend=BlendConfig(folds=2, mlp=MLPConfig(networks=1, epochs=1, threads=1), threads=1),
    interval_coverage=0.7,
)


def test_one_quick_training_records_what_it_did():
    frame = market(900, seed=4)
    split = assign_split(frame["listing_id"])
    train, validation = frame[split == TRAIN], frame[split == VALIDATION]
    stages, trials = [], []
    model, tuning = train_price_model(train, validation, QUICK, on_trial=trials.append, on_stage=stages.append)
    both = pd.concat([train, validation])
    info = model.info
    assert (info["train_rows"], info["validation_rows"]) == (len(train), len(validation))
    # a few hundred listings: out-of-fold over both splits, then every learner refitted on both
    assert info["refitted_on_validation"] is True and info["final_training_rows"] == len(both)
    assert info["held_out_rows"] == len(both)
    assert info["trials"] == 2 == len(trials) == len(tuning.trials) and info["lightgbm_params"] == tuning.best.params
    assert info["lightgbm_best_iteration"] == tuning.best.best_iteration
    assert info["blend_weights"] == model.blend.weights and set(model.blend.weights) == {RIDGE, MLP, LIGHTGBM}
    assert info["ridge_block_weights"] == QUICK.blend.ridge_block_weights
    assert info["featurizer"] == model.featurizer.describe()
    assert {f"validation_rmsle_{name}" for name in (RIDGE, MLP, LIGHTGBM)} <= set(info)
    assert 0 < info["validation_rmsle"] < 1.5 and "validation_rmsle_blend" not in info
    assert stages[0] == "LightGBM search (at most 2 trials, 600 s)"
    assert model.interval_coverage == 0.7 and model.interval_half_width > 0
    assert model.category_prices == category_prices(both)
    assert model.training_profile.rows == len(train)
