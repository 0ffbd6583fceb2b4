"""Training the price model bundle with a tiny budget: better than the rules, repeatable,
a range that covers what it promises, and a save/load round trip that predicts the same."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.linear_model import Ridge

from price_alchemy_assets.listings.synthetic import synthetic_market as market
from price_alchemy_assets.model.baseline import RulesBaseline
from price_alchemy_assets.model.bundle import PriceModel, TrainingConfig, conformal_half_width, train_price_model
from price_alchemy_assets.model.ensemble import LEARNERS, LIGHTGBM, BlendConfig, fold_of_rows, scale_columns
from price_alchemy_assets.model.features import leading_columns
from price_alchemy_assets.model.metrics import price_metrics
from price_alchemy_assets.model.mlp import MLPConfig, SparseMLPRegressor
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION, assign_split
from price_alchemy_assets.model.tuning import TuningBudget

TINY = TrainingConfig(
    budget=TuningBudget(max_evals=3, timeout_seconds=900, max_boost_rounds=150, early_stopping_rounds=20),
    blend=BlendConfig(folds=3, mlp=MLPConfig(networks=2)),
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
    weights = model.blend.weights
    assert set(weights) == set(LEARNERS) and all(w >= 0 for w in weights.values()) and sum(weights.values()) > 0.8
    # the blend, chosen on held-out rows, is no worse there than any one learner
    held_out = {name: model.info[f"validation_rmsle_{name}"] for name in LEARNERS}
    assert model.info["validation_rmsle"] <= min(held_out.values()) + 1e-9
    # every train + validation row was held out once (3 folds), and the final learners saw them all
    assert model.info["held_out_rows"] == model.info["final_training_rows"] == len(train) + len(splits[1])
    # the final booster is refitted with the best trial's parameters, its rounds scaled to the rows
    booster = model.blend.learners[LIGHTGBM].booster
    rows = len(train) + len(splits[1])
    assert booster.num_trees() == max(1, round(tuning.best.best_iteration * rows / len(train)))
    assert booster.params["num_leaves"] == tuning.best.params["num_leaves"]
    # depth is searched within its bounds: no tree deeper than the best trial's cap
    assert 6 <= booster.params["max_depth"] == tuning.best.params["max_depth"] <= 16
    trees = booster.dump_model()["tree_info"]
    assert all(_depth(tree["tree_structure"]) <= booster.params["max_depth"] for tree in trees)


def _depth(node: dict) -> int:
    if "leaf_value" in node:
        return 0
    return 1 + max(_depth(node["left_child"]), _depth(node["right_child"]))


def test_large_data_regime_holds_out_the_validation_split_and_keeps_the_train_fit(splits):
    """Above folds_max_rows the weights come from the validation split; above refit_max_rows the
    learners fitted on the train split are the final ones (the tuned booster itself)."""
    train, validation, _ = splits
    large = replace(TINY, blend=replace(TINY.blend, folds_max_rows=100, refit_max_rows=100))
    model, tuning = train_price_model(train, validation, large)
    assert model.info["held_out_rows"] == len(validation) and model.info["final_training_rows"] == len(train)
    assert model.info["refitted_on_validation"] is False
    assert model.blend.learners[LIGHTGBM].booster.model_to_string() == tuning.booster.model_to_string()
    # Ridge with a penalty per block: sklearn's Ridge on the columns scaled by the block weights
    x_train = model.featurizer.transform(train)
    weights = model.featurizer.column_weights(large.blend.ridge_block_weights)
    assert sorted(set(weights)) == sorted({1.0, *large.blend.ridge_block_weights.values()})
    scaled = (x_train @ sp.diags(weights.astype(np.float32))).astype(np.float32).tocsr()
    scaled.sort_indices()  # the solver sums in index order: unsorted rows move its answer by 1e-3
    ridge = Ridge(alpha=model.info["ridge_alpha"]).fit(scaled, np.log1p(train["price"].to_numpy()))
    np.testing.assert_allclose(model.blend.learners["ridge"].predict(x_train), ridge.predict(scaled), atol=1e-5)
    # the validation split chose the weights: the blend is no worse there than any one learner
    held_out = {name: model.info[f"validation_rmsle_{name}"] for name in LEARNERS}
    assert model.info["validation_rmsle"] <= min(held_out.values()) + 1e-9


def test_mlp_predicts_the_mean_of_its_networks_in_any_batch_and_after_pickling():
    """The first layers stacked into one product (and split over threads for large batches) change
    nothing: each row's price is the mean of its networks' own forward passes, alone or in a batch,
    and the wider rows of the full featurizer are cut to the columns it learned from."""
    import pickle

    rng = np.random.default_rng(0)
    x = sp.random(2_000, 300, density=0.05, format="csr", dtype=np.float32, random_state=1)
    y = x @ rng.standard_normal(300) + rng.normal(0, 0.1, 2_000)
    mlp = SparseMLPRegressor(MLPConfig(networks=3, epochs=2)).fit(x[:, :250], y)
    manual = np.mean([network.forward(x[:, :250])[-1][:, 0] for network in mlp.networks_], axis=0)
    expected = manual.astype(np.float64) * mlp.y_scale_ + mlp.y_mean_
    batch = mlp.predict(x)  # 2,000 rows: the threaded path
    np.testing.assert_allclose(batch, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose([mlp.predict(x[[i]])[0] for i in range(0, 2_000, 250)], expected[::250], rtol=1e-5)
    again = pickle.loads(pickle.dumps(mlp))
    assert "_first_layers" in mlp.__dict__ and "_first_layers" not in again.__dict__
    np.testing.assert_allclose(again.predict(x), batch, rtol=1e-6)


def test_scaled_columns_are_the_product_with_the_weights_in_any_chunk_size():
    x = sp.random(300, 40, density=0.2, format="csr", dtype=np.float32, random_state=2)
    weights = np.random.default_rng(3).uniform(0.2, 3, 40)
    expected = (x @ sp.diags(weights.astype(np.float32))).toarray()
    for chunk in (7, 1_000, 10_000_000):
        scaled = scale_columns(x, weights, chunk=chunk)
        np.testing.assert_allclose(scaled.toarray(), expected, rtol=1e-6)
        assert np.shares_memory(scaled.indices, x.indices) and not np.shares_memory(scaled.data, x.data)
    assert scale_columns(x, np.ones(40)) is x and scale_columns(x, None) is x


def test_leading_columns_are_the_first_columns_for_a_few_rows_and_for_many():
    for rows, density in ((5, 0.3), (3_000, 0.2)):  # masked (nnz 300) and scipy's slice (nnz 120,000)
        x = sp.random(rows, 200, density=density, format="csr", dtype=np.float32, random_state=rows)
        x = (sp.diags((np.arange(rows) != 1).astype(np.float32)) @ x).tocsr()  # row 1 empty
        x.eliminate_zeros()
        assert x[1].nnz == 0
        lead = leading_columns(x, 70)
        assert lead.shape == (rows, 70)
        np.testing.assert_array_equal(lead.toarray(), x.toarray()[:, :70])
    assert leading_columns(x, 200) is x and leading_columns(x, 500) is x


def test_mlp_networks_and_epochs_shrink_to_the_budget():
    config = MLPConfig(networks=3, epochs=5, max_rows_seen=1_500_000)
    assert (config.within_budget(10_000).networks, config.within_budget(10_000).epochs) == (3, 5)
    assert (config.within_budget(200_000).networks, config.within_budget(200_000).epochs) == (1, 5)
    assert (config.within_budget(500_000).networks, config.within_budget(500_000).epochs) == (1, 3)
    assert (config.within_budget(5_000_000).networks, config.within_budget(5_000_000).epochs) == (1, 1)


def test_folds_are_balanced_and_repeatable():
    fold = fold_of_rows(1_003, 5, seed=0)
    assert sorted(np.bincount(fold).tolist()) == [200, 200, 201, 201, 201]
    assert (fold == fold_of_rows(1_003, 5, seed=0)).all() and not (fold == fold_of_rows(1_003, 5, seed=1)).all()


def test_same_seed_same_model(trained, splits):
    train, validation, test = splits
    again, _ = train_price_model(train, validation, TINY)
    np.testing.assert_allclose(again.predict(test).to_numpy(), trained[0].predict(test).to_numpy())


def test_save_and_load_predict_the_same(trained, splits, tmp_path):
    model = trained[0]
    test = splits[2]
    loaded = PriceModel.load(model.save(tmp_path / "bundle"))
    np.testing.assert_allclose(loaded.predict(test).to_numpy(), model.predict(test).to_numpy(), rtol=1e-6)
    assert loaded.info["train_rows"] == len(splits[0]) and loaded.blend.weights == model.blend.weights
    # the bundle carries what it learned from: the drift sensor's reference and the page's typical prices
    assert loaded.training_profile == model.training_profile and loaded.training_profile.rows == len(splits[0])
    fitted = len(splits[0]) + len(splits[1])
    assert loaded.category_prices == model.category_prices and loaded.category_prices["*"]["listings"] == fitted


def test_conformal_half_width_covers():
    residuals = np.random.default_rng(0).normal(0, 1, 2_000)
    width = conformal_half_width(residuals, 0.8)
    assert np.mean(np.abs(residuals) <= width) >= 0.8
    assert width == pytest.approx(1.2816, abs=0.08)


def test_batch_scoring_sets_bad_rows_aside_and_finishes(trained, tmp_path):
    from price_alchemy_assets.model.scoring import score_file

    source = tmp_path / "test.tsv"
    source.write_bytes(
        b"test_id\tname\titem_condition_id\tcategory_name\tbrand_name\tshipping\titem_description\n"
        b"1\tNike shoes\t3\tMen/Shoes/Athletic\tNike\t1\tok\n"
        b"2\t\t3\tMen/Shoes/Athletic\tNike\t1\tblank name\n"
        b"3\tThing\tbad\tMen\t\t1\tx\n"
        b"4\tThing\t9\tMen\t\t1\tx\n"
        b"5\tshort\n"
        + b"6\tCaf\xe9 mug\t3\tHome\t\t1\tlatin-1 bytes\n"
        + f"7\tLamp\t3\tHome\t\t1\t{'x' * 2_000_000}\n".encode()
        + b"8\tLEGO set\t1\tKids/Toys/Building Toys\tLEGO\t0\tsealed\n"
    )
    result = score_file(source, trained[0], tmp_path / "out.csv", chunk_rows=2)
    assert (result.scored, result.rejected) == (2, 6)
    lines = result.output.read_text().splitlines()
    assert lines[0] == "test_id,price,price_low,price_high" and [line.split(",")[0] for line in lines[1:]] == ["1", "8"]
    good = pd.DataFrame(
        [
            ["Nike shoes", 3, "Men/Shoes/Athletic", "Nike", 1, "ok"],
            ["LEGO set", 1, "Kids/Toys/Building Toys", "LEGO", 0, "sealed"],
        ],
        columns=["name", "item_condition_id", "category_name", "brand_name", "shipping", "item_description"],
    )
    written = pd.read_csv(result.output).set_index("test_id")
    expected = trained[0].predict(good).round(2).set_axis([1, 8])
    pd.testing.assert_frame_equal(written, expected, check_names=False, atol=0.0051)  # the model's own prices
    rejects = pd.read_csv(result.rejects, dtype=str, keep_default_na=False)
    reasons = dict(zip(rejects["line"].astype(int), rejects["column"] + ": " + rejects["reason"], strict=True))
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8]
    for line, expected in {
        3: "name: is blank",
        4: "'bad' is not a whole number",
        5: "is not one of (1, 2, 3, 4, 5)",
        6: "expected 7 tab-separated fields, found 2",
        7: "not valid UTF-8 (byte 0xe9",
        8: "item_description: longer than 1,048,576 characters",
    }.items():
        assert expected in reasons[line], (line, reasons[line])
    assert not list(tmp_path.glob("*.partial"))


def test_the_search_deadline_also_ends_a_trial_that_is_still_boosting(splits):
    """hyperopt checks its timeout only between trials; the deadline stops the boosting too, and
    the best iteration reached is kept."""
    from price_alchemy_assets.model.features import ListingFeaturizer
    from price_alchemy_assets.model.tuning import fit_lightgbm, lightgbm_datasets, lightgbm_params

    train, validation, _ = splits
    featurizer = ListingFeaturizer().fit(train)
    y, yv = np.log1p(train["price"].to_numpy()), np.log1p(validation["price"].to_numpy())
    datasets = lightgbm_datasets(featurizer.transform(train), y, featurizer.transform(validation), yv, 0, 5)
    budget = TuningBudget(max_boost_rounds=100_000, early_stopping_rounds=100_000)
    sampled = {"num_leaves": 15, "max_depth": 8, "learning_rate": 0.3, "min_data_in_leaf": 5}
    sampled |= {"feature_fraction": 0.5, "lambda_l2": 1}
    booster = fit_lightgbm(lightgbm_params(sampled, budget), *datasets, budget, deadline=time.monotonic() + 1.0)
    assert 0 < booster.best_iteration <= booster.current_iteration() < 100_000
