"""Training the price model bundle with a tiny budget: better than the rules, repeatable,
a range that covers what it promises, and a save/load round trip that predicts the same."""

from __future__ import annotations

import numpy as np
import pytest

from price_alchemy_assets.model.baseline import RulesBaseline
from price_alchemy_assets.model.bundle import PriceModel, TrainingConfig, conformal_half_width, train_price_model
from price_alchemy_assets.model.metrics import price_metrics
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION, assign_split
from price_alchemy_assets.model.tuning import TuningBudget

from .test_model_pieces import market

TINY = TrainingConfig(
    budget=TuningBudget(max_evals=3, timeout_seconds=60, max_boost_rounds=150, early_stopping_rounds=20)
)


@pytest.fixture(scope="module")
def splits():
    frame = market(4_000, seed=9)
    split = assign_split(frame["listing_id"])
    return frame[split == TRAIN], frame[split == VALIDATION], frame[split == TEST]


@pytest.fixture(scope="module")
def trained(splits):
    train, validation, _ = splits
    trials = []
    model, tuning = train_price_model(train, validation, TINY, on_trial=trials.append)
    return model, tuning, trials


def test_model_beats_rules_and_reports_its_trials(trained, splits):
    model, tuning, trials = trained
    train, _, test = splits
    predicted = model.predict(test)
    assert len(trials) == 3 == len(tuning.trials) and tuning.best in trials
    assert predicted.notna().all().all() and (predicted["price"] > 0).all()
    assert (predicted["price_low"] <= predicted["price"]).all() and (
        predicted["price"] <= predicted["price_high"]
    ).all()
    ours = price_metrics(test["price"], predicted["price"], predicted["price_low"], predicted["price_high"])
    rules = price_metrics(test["price"], RulesBaseline().fit(train).predict(test))
    assert ours["rmsle"] < rules["rmsle"] - 0.03
    assert 0.65 <= ours["coverage"] <= 0.95
    assert 0.0 <= model.ridge_weight <= 1.0 and model.info["validation_rmsle"] > 0
    # the shipped booster is the best trial's, cut at its best iteration
    assert model.info["validation_rmsle_lightgbm"] == pytest.approx(tuning.best.validation_rmsle)
    assert model.booster.num_trees() == tuning.best.best_iteration


def test_same_seed_same_model(trained, splits):
    train, validation, test = splits
    again, _ = train_price_model(train, validation, TINY)
    np.testing.assert_allclose(again.predict(test).to_numpy(), trained[0].predict(test).to_numpy())


def test_save_and_load_predict_the_same(trained, splits, tmp_path):
    model = trained[0]
    test = splits[2]
    loaded = PriceModel.load(model.save(tmp_path / "bundle"))
    np.testing.assert_allclose(loaded.predict(test).to_numpy(), model.predict(test).to_numpy(), rtol=1e-6)
    assert loaded.info["train_rows"] == len(splits[0])
    # the bundle carries what it learned from: the drift sensor's reference and the page's typical prices
    assert loaded.training_profile == model.training_profile and loaded.training_profile.rows == len(splits[0])
    assert loaded.category_prices == model.category_prices and loaded.category_prices["*"]["listings"] == len(splits[0])


def test_conformal_half_width_covers():
    residuals = np.random.default_rng(0).normal(0, 1, 2_000)
    width = conformal_half_width(residuals, 0.8)
    assert np.mean(np.abs(residuals) <= width) >= 0.8
    assert width == pytest.approx(1.2816, abs=0.08)


def test_batch_scoring_sets_bad_rows_aside_and_finishes(trained, tmp_path):
    from price_alchemy_assets.model.scoring import score_file

    source = tmp_path / "test.tsv"
    source.write_text(
        "test_id\tname\titem_condition_id\tcategory_name\tbrand_name\tshipping\titem_description\n"
        "1\tNike shoes\t3\tMen/Shoes/Athletic\tNike\t1\tok\n"
        "2\t\t3\tMen/Shoes/Athletic\tNike\t1\tblank name\n"
        "3\tThing\tbad\tMen\t\t1\tx\n"
        "4\tThing\t9\tMen\t\t1\tx\n"
        "5\tshort\n"
        "6\tLEGO set\t1\tKids/Toys/Building Toys\tLEGO\t0\tsealed\n"
    )
    result = score_file(source, trained[0], tmp_path / "out.csv", chunk_rows=2)
    assert (result.scored, result.rejected) == (2, 4)
    lines = result.output.read_text().splitlines()
    assert lines[0] == "test_id,price,price_low,price_high" and [line.split(",")[0] for line in lines[1:]] == ["1", "6"]
    rejects = result.rejects.read_text()
    for expected in (
        "name: is blank",
        "'bad' is not a whole number",
        "is not one of (1, 2, 3, 4, 5)",
        "expected 7 tab-separated fields, found 2",
    ):
        assert expected in rejects
    assert not list(tmp_path.glob("*.partial"))
