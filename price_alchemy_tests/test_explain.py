"""The seller's "why" is true: every learner's attribution adds up exactly and touches only the
listing's own features, and the explanation multiplies out to the suggested price with drivers
the listing really has, on genuine Mercari rows."""

from __future__ import annotations

import math
import re

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from price_alchemy_assets.listings.files import ListingsFile
from price_alchemy_assets.model.bundle import PriceModel, TrainingConfig, category_prices, train_price_model
from price_alchemy_assets.model.ensemble import BlendConfig
from price_alchemy_assets.model.explain import PriceExplainer, typical_price
from price_alchemy_assets.model.features import ListingFeaturizer
from price_alchemy_assets.model.mlp import MLPConfig, SparseMLPRegressor
from price_alchemy_assets.model.split import TRAIN, VALIDATION, assign_split
from price_alchemy_assets.model.trees import BoostedTrees
from price_alchemy_assets.model.tuning import TuningBudget

from .conftest import GENUINE_TEST, GENUINE_TRAIN


def _rows(path) -> pd.DataFrame:
    if not path.is_file():
        pytest.skip(f"genuine Mercari rows not found at {path} (../shared/data is absent)")
    with ListingsFile(path) as listings:
        frame = pd.concat(listings.chunks()).reset_index(drop=True)
    return frame[frame["price"].isna() | (frame["price"] > 0)].reset_index(drop=True)


@pytest.fixture(scope="module")
def genuine() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labelled genuine rows and the unlabelled test sample."""
    return _rows(GENUINE_TRAIN), _rows(GENUINE_TEST)


@pytest.fixture(scope="module")
def featurized(genuine):
    train = genuine[0]
    featurizer = ListingFeaturizer().fit(train)
    return featurizer, featurizer.transform(train), np.log1p(train["price"].to_numpy())


def _empty(width: int) -> sp.csr_matrix:
    return sp.csr_matrix((1, width), dtype=np.float32)


def test_tree_shapley_values_are_exact_on_deep_trees(featurized):
    """The trees that made LightGBM's own contributions blow up: 179 leaves, 5 listings a leaf (on
    the columns the shipped trees learn from)."""
    featurizer, wide, y = featurized
    x = wide[:, : featurizer.tree_columns]
    params = {"num_leaves": 179, "min_data_in_leaf": 5, "learning_rate": 0.1, "feature_fraction": 0.5}
    booster = lgb.train({**params, "verbosity": -1, "num_threads": 2, "seed": 0}, lgb.Dataset(x, y), 120)
    trees = BoostedTrees(booster)
    empty = booster.predict(_empty(x.shape[1]))[0]
    predicted = booster.predict(x[:150])
    # the full featurizer's wider rows give the trees' prices unchanged, on one thread (a few rows)
    # as on LightGBM's threads (a large batch)
    np.testing.assert_array_equal(trees.predict(wide[:150]), predicted)
    np.testing.assert_array_equal(trees.predict(wide[:1]), predicted[:1])
    np.testing.assert_array_equal(trees.predict(wide[:1000]), booster.predict(x[:1000]))
    for i in range(150):
        row = x[i]
        at_empty, at_listing, values = trees.attribute(row)
        assert at_listing == pytest.approx(predicted[i], abs=1e-9) and at_empty == pytest.approx(empty, abs=1e-9)
        assert sum(values.values()) == pytest.approx(predicted[i] - empty, abs=1e-9)
        assert set(values) <= set(row.indices.tolist())  # nothing for a feature the listing lacks
        assert all(math.isfinite(v) for v in values.values())
    # LightGBM's own TreeSHAP measures against the training average: absent features get effects
    contributions = booster.predict(x[:1], pred_contrib=True)
    dense = np.asarray(contributions.todense() if sp.issparse(contributions) else contributions)[0, :-1]
    assert set(np.flatnonzero(dense)) - set(x[0].indices.tolist())


def test_tree_shapley_values_on_a_hand_made_tree():
    """One split on feature 0 and one on feature 1: v(S) is known, so the Shapley values are too."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25, dtype=np.float64)
    y = 10 * x[:, 0] + 3 * x[:, 0] * x[:, 1]
    params = {
        "num_leaves": 4,
        "min_data_in_leaf": 1,
        "learning_rate": 1.0,
        "verbosity": -1,
        "min_sum_hessian_in_leaf": 0,
    }
    booster = lgb.train({**params, "boost_from_average": False, "num_threads": 1}, lgb.Dataset(x, y), 1)
    empty, listing, values = BoostedTrees(booster).attribute(sp.csr_matrix([[1.0, 1.0]]))
    # v({}) = 0, v({0}) = 10, v({1}) = 0, v({0, 1}) = 13: phi_0 = (10 + 13) / 2, phi_1 = (0 + 3) / 2
    assert (empty, listing) == pytest.approx((0.0, 13.0))
    assert values[0] == pytest.approx(11.5) and values[1] == pytest.approx(1.5)


def test_mlp_attribution_adds_up_and_touches_only_the_listing(featurized):
    _, x, y = featurized
    mlp = SparseMLPRegressor(MLPConfig(networks=2, epochs=3)).fit(x[:3000], y[:3000])
    predicted, empty = mlp.predict(x[3000:3100]), mlp.predict(_empty(x.shape[1]))[0]
    for i, row in enumerate(x[3000:3100]):
        at_empty, at_listing, values = mlp.attribute(row)
        assert at_listing == pytest.approx(predicted[i], abs=1e-4) and at_empty == pytest.approx(empty, abs=1e-4)
        assert sum(values.values()) == pytest.approx(predicted[i] - empty, abs=1e-4)
        assert set(values) <= set(row.indices.tolist())
    assert np.sqrt(np.mean((predicted - y[3000:3100]) ** 2)) < np.std(y[3000:3100])  # it learned something


@pytest.fixture(scope="module")
def genuine_model(genuine) -> PriceModel:
    train = genuine[0]
    split = assign_split(train["listing_id"])
    config = TrainingConfig(
        budget=TuningBudget(max_evals=2, timeout_seconds=60, max_boost_rounds=300, early_stopping_rounds=20),
        blend=BlendConfig(folds=3, mlp=MLPConfig(networks=2)),
    )
    model, _ = train_price_model(train[split == TRAIN], train[split == VALIDATION], config)
    return model


_QUOTED = re.compile(r'^"(.+)" in the (title|description)$')


def _is_true_of(label: str, listing: pd.Series) -> bool:
    """A driver's label names something this listing has."""

    def text(column):
        return listing[column] if isinstance(listing[column], str) else ""

    quoted = _QUOTED.match(label)
    if quoted:
        word, where = quoted.groups()
        haystack = text("name") if where == "title" else text("item_description")
        return word in haystack.lower()
    fixed = {
        f"brand {text('brand_name')}": bool(text("brand_name")),
        "no brand": not text("brand_name"),
        f"category {text('category_name')}": bool(text("category_name")),
        "no category": not text("category_name"),
        "seller pays shipping": listing["shipping"] == 1,
        "buyer pays shipping": listing["shipping"] == 0,
        "title length": True,
        "description length": bool(text("item_description")),
        "description word count": bool(text("item_description")),
        "has a description": bool(text("item_description")),
        "has a brand": bool(text("brand_name")),
    }
    if label.startswith("condition "):
        return label.startswith(f"condition {listing['item_condition_id']} ")
    return fixed.get(label, label in ("says new / with tags", "sold as a bundle", "storage size"))


def test_explanations_of_genuine_listings_multiply_out_to_the_price_with_true_drivers(genuine, genuine_model):
    explainer = PriceExplainer(genuine_model).prepare()
    listings = genuine[1].head(200)
    prices = genuine_model.predict(listings)["price"].to_numpy()
    shown = 0
    for i in range(len(listings)):
        listing = listings.iloc[[i]]
        explanation = explainer.explain(listing)
        product = explanation.base_price * math.prod(1 + d.effect for d in explanation.drivers)
        product *= 1 + explanation.other_effect
        assert product == pytest.approx(prices[i], rel=0.01)
        assert explanation.price == pytest.approx(prices[i], rel=1e-4)
        assert explanation.drivers and len(explanation.drivers) <= 5
        for driver in explanation.drivers:
            assert math.isfinite(driver.effect) and driver.effect > -1
            assert _is_true_of(driver.feature, listing.iloc[0]), (driver.feature, listing.iloc[0].to_dict())
        shown += len(explanation.drivers)
        moves = [abs(math.log1p(d.effect)) for d in explanation.drivers]
        assert moves == sorted(moves, reverse=True)  # the strongest first
    assert shown >= 4 * len(listings)


def test_a_word_the_model_never_saw_is_never_a_driver(genuine_model):
    """A word of unseen characters in the title, and an unseen word in the description (only word
    features read it), move nothing; words and categories the listing lacks never show."""
    listing = pd.DataFrame(
        [
            {
                "name": "Nike Air Max 90 running shoes size 10 ǂǂǂǂ",
                "item_condition_id": 3,
                "category_name": "Men/Shoes/Athletic",
                "brand_name": "Nike",
                "shipping": 0,
                "item_description": "worn a few times qwvzunseen",
            }
        ]
    )
    explanation = PriceExplainer(genuine_model).explain(listing, top=50)
    labels = [d.feature for d in explanation.drivers]
    assert len(labels) >= 10 and not [label for label in labels if "ǂ" in label or "qwvzunseen" in label]
    assert not [label for label in labels if "makeup" in label or "Women/" in label]
    assert all(_is_true_of(label, listing.iloc[0]) for label in labels)


def test_typical_price_is_the_quartiles_of_the_most_specific_category_with_enough_listings():
    """Quartiles worked by hand (pandas' linear interpolation); a category with fewer than five
    listings falls back to its prefix, then to all listings ("*")."""
    rows = [("Women/Tops/T-shirts", p) for p in (10, 20, 30, 40, 50)]
    rows += [("Women/Tops/Blouses", 100), ("Women/Tops/Blouses", 100)]  # too few for their own
    rows += [("Men/Shoes/Athletic", p) for p in (5, 6, 7)] + [(None, 8)]
    prices = category_prices(pd.DataFrame(rows, columns=["category_name", "price"]))
    assert set(prices) == {"*", "Women", "Women/Tops", "Women/Tops/T-shirts"}
    model = PriceModel.__new__(PriceModel)
    model.category_prices = prices

    def typical(category: str | None) -> tuple:
        found = typical_price(model, category)
        return found.category, found.listings, found.p25, found.median, found.p75

    assert typical("Women/Tops/T-shirts") == ("Women/Tops/T-shirts", 5, 20, 30, 40)
    # 10 20 30 40 50 100 100: p25 halfway 20..30, p75 halfway 50..100
    assert typical("Women/Tops/Blouses") == ("Women/Tops", 7, 25, 40, 75)
    # all eleven: 5 6 7 8 10 20 30 40 50 100 100
    for category in ("Men/Shoes/Athletic", "Unknown/Thing", None, ""):
        assert typical(category) == ("*", 11, 7.5, 20, 45), category
    model.category_prices = {}  # a bundle saved before typical prices existed
    assert typical_price(model, "Women/Tops/T-shirts") is None
