"""The seller's "why", worked by hand: a one-learner model whose only non-zero coefficients are the
ones a test sets, so the drivers it must show, their labels and their effects are known without
running the explainer's own arithmetic. Fast (no training), so mutation testing runs it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from price_alchemy_assets.listings.synthetic import synthetic_market as market
from price_alchemy_assets.model.bundle import PriceModel
from price_alchemy_assets.model.ensemble import RIDGE, Blend, RidgeLearner
from price_alchemy_assets.model.explain import PriceExplainer
from price_alchemy_assets.model.features import ListingFeaturizer

SHOES = {
    "name": "Air Max running shoes",
    "brand_name": "Nike",
    "category_name": "Men/Shoes/Athletic",
    "item_condition_id": 2,
    "shipping": 1,
    "item_description": "Barely worn, great cushion. New with tags",
    "price": 80.0,
}
MUG = {
    "name": "Blue mug",
    "brand_name": None,
    "category_name": None,
    "item_condition_id": 5,
    "shipping": 0,
    "item_description": None,
    "price": 5.0,
}
INTERCEPT = math.log1p(20.0)
"""An empty listing's log1p price: $20."""


@pytest.fixture(scope="module")
def featurizer() -> ListingFeaturizer:
    return ListingFeaturizer().fit(pd.concat([market(300), pd.DataFrame([SHOES] * 3 + [MUG] * 3)], ignore_index=True))


def model_with(featurizer: ListingFeaturizer, coefficients: dict[str, float], intercept: float = INTERCEPT):
    """A Ridge-only model: zero everywhere but `coefficients` (feature name -> coefficient)."""
    names = featurizer.feature_names()
    ridge = Ridge()
    ridge.coef_ = np.zeros(len(names))
    for name, value in coefficients.items():
        ridge.coef_[names.index(name)] = value
    ridge.intercept_ = intercept
    return PriceModel(featurizer, Blend({RIDGE: RidgeLearner.of(ridge)}, {RIDGE: 1.0}), 0.5, 0.8)


def feature_value(featurizer: ListingFeaturizer, listing: dict, name: str) -> float:
    return float(featurizer.transform(pd.DataFrame([listing]))[0, featurizer.feature_names().index(name)])


CONDITION_2 = "condition 2 (like new)"
ATHLETIC = "category Men/Shoes/Athletic"

ONE_COLUMN = [
    # (listing, feature column, the labels the seller must read: the column's move shared among them)
    (SHOES, "name:running", ['"running" in the title']),
    (SHOES, "name:nike", ["brand Nike"]),  # the brand's word, not in the seller's title
    (SHOES, "name:air max", ['"air" in the title', '"max" in the title']),
    (SHOES, "name:shoes nike", ['"shoes" in the title', "brand Nike"]),
    (SHOES, "description:cushion", ['"cushion" in the description']),
    (SHOES, "description:new with", ['"new" in the description', '"with" in the description']),
    (SHOES, "text:worn", ['"worn" in the description']),
    (SHOES, "text:shoes", ['"shoes" in the title']),  # the title, before the category it also names
    (SHOES, "text:nike", ["brand Nike"]),
    (SHOES, "text:athletic", [ATHLETIC]),
    (SHOES, "text:nike men", ["brand Nike", ATHLETIC]),
    (SHOES, "title_chars: ai", ['"air" in the title']),
    (SHOES, "title_chars:ni", ['"running" in the title', "brand Nike"]),  # ruNNIng, NIke
    (SHOES, "title_chars:e ", ["brand Nike"]),
    (SHOES, "crossed:nike__max", ['"max" in the title']),
    (SHOES, "crossed:men/shoes/athletic__running", ['"running" in the title']),
    (SHOES, "engineered:name_chars", ["title length"]),
    (SHOES, "engineered:description_words", ["description word count"]),
    (SHOES, "engineered:has_brand", ["has a brand"]),
    (SHOES, "engineered:new_with_tags", ["says new / with tags"]),
    (SHOES, "onehot:brand_name_Nike", ["brand Nike"]),
    (SHOES, "onehot:category_name_Men/Shoes/Athletic", [ATHLETIC]),
    (SHOES, "onehot:category_1_Men", [ATHLETIC]),
    (SHOES, "onehot:category_2_Men/Shoes", [ATHLETIC]),
    (SHOES, "onehot:item_condition_id_2", [CONDITION_2]),
    (SHOES, "onehot:shipping_1", ["seller pays shipping"]),
    (SHOES, "category_pairs:category_condition_Men/Shoes/Athletic|2", [ATHLETIC, CONDITION_2]),
    (SHOES, "category_pairs:brand_category_Nike|Men/Shoes/Athletic", ["brand Nike", ATHLETIC]),
    (SHOES, "category_pairs:category_shipping_Men/Shoes/Athletic|1", [ATHLETIC, "seller pays shipping"]),
    (SHOES, "category_pairs:brand_condition_Nike|2", ["brand Nike", CONDITION_2]),
    (
        SHOES,
        "category_pairs:category_2_condition_shipping_Men/Shoes|2|1",
        [ATHLETIC, CONDITION_2, "seller pays shipping"],
    ),
    (MUG, "name:blue mug", ['"blue" in the title', '"mug" in the title']),
    (MUG, "onehot:brand_name_(none)", ["no brand"]),
    (MUG, "onehot:category_name_(none)", ["no category"]),
    (MUG, "onehot:item_condition_id_5", ["condition 5 (poor)"]),
    (MUG, "onehot:shipping_0", ["buyer pays shipping"]),
    (MUG, "category_pairs:brand_category_(none)|(none)", ["no brand", "no category"]),
    (MUG, "category_pairs:category_shipping_(none)|0", ["no category", "buyer pays shipping"]),
]


@pytest.mark.parametrize(("listing", "column", "labels"), ONE_COLUMN, ids=[case[1] for case in ONE_COLUMN])
@pytest.mark.parametrize("coefficient", [0.7, -0.4])
def test_one_feature_moves_the_price_and_its_labels_share_the_move(featurizer, listing, column, labels, coefficient):
    model = model_with(featurizer, {column: coefficient})
    value = feature_value(featurizer, listing, column)
    assert value > 0, f"{column} is not a feature of the listing"
    price = math.expm1(INTERCEPT + coefficient * value)
    explanation = PriceExplainer(model).prepare().explain(pd.DataFrame([listing]))
    assert explanation.price == pytest.approx(price, rel=1e-6)
    assert explanation.base_price == pytest.approx(20.0, rel=1e-9)
    # each label carries an equal share of the move in log price, so together they multiply to it
    share = (price / 20.0) ** (1 / len(labels)) - 1
    assert sorted(d.feature for d in explanation.drivers) == sorted(labels)
    assert [d.effect for d in explanation.drivers] == pytest.approx([share] * len(labels), rel=1e-6)
    assert explanation.other_effect == pytest.approx(0.0, abs=1e-9)


def test_the_strongest_drivers_show_first_and_the_rest_is_other(featurizer):
    moves = {"onehot:brand_name_Nike": 0.9, "description:cushion": -0.6, "onehot:shipping_1": 0.3}
    moves |= {"engineered:has_brand": 0.2, "text:men": 0.1, "onehot:item_condition_id_2": -0.05}
    model = model_with(featurizer, moves)
    contributions = {name: c * feature_value(featurizer, SHOES, name) for name, c in moves.items()}
    price = math.expm1(INTERCEPT + sum(contributions.values()))
    # log1p -> log: every contribution scaled alike, so the moves add up to log(price / base)
    scale = math.log(price / 20.0) / sum(contributions.values())
    labels = {
        "onehot:brand_name_Nike": "brand Nike",
        "description:cushion": '"cushion" in the description',
        "onehot:shipping_1": "seller pays shipping",
        "engineered:has_brand": "has a brand",
        "text:men": ATHLETIC,
        "onehot:item_condition_id_2": CONDITION_2,
    }
    ranked = sorted(contributions, key=lambda name: -abs(contributions[name]))
    for top in (1, 2, 5, 6):
        explanation = PriceExplainer(model).explain(pd.DataFrame([SHOES]), top=top)
        shown = ranked[:top]
        assert [d.feature for d in explanation.drivers] == [labels[name] for name in shown]
        expected = [math.expm1(contributions[name] * scale) for name in shown]
        assert [d.effect for d in explanation.drivers] == pytest.approx(expected, rel=1e-6)
        rest = sum(contributions[name] for name in ranked[top:]) * scale
        assert explanation.other_effect == pytest.approx(math.expm1(rest), rel=1e-6, abs=1e-12)
        product = explanation.base_price * math.prod(1 + d.effect for d in explanation.drivers)
        assert product * (1 + explanation.other_effect) == pytest.approx(price, rel=1e-9)
    assert len(PriceExplainer(model).explain(pd.DataFrame([SHOES])).drivers) == 5  # the default top


def test_the_same_label_from_several_columns_is_one_driver(featurizer):
    """The brand's one-hot column and its word in the title-plus-brand text are both "brand Nike"."""
    model = model_with(featurizer, {"onehot:brand_name_Nike": 0.3, "text:nike": 0.4, "name:running": -0.2})
    explanation = PriceExplainer(model).explain(pd.DataFrame([SHOES]))
    brand = 0.3 * feature_value(featurizer, SHOES, "onehot:brand_name_Nike")
    brand += 0.4 * feature_value(featurizer, SHOES, "text:nike")
    running = -0.2 * feature_value(featurizer, SHOES, "name:running")
    scale = math.log(explanation.price / 20.0) / (brand + running)
    assert [d.feature for d in explanation.drivers] == ["brand Nike", '"running" in the title']
    assert [d.effect for d in explanation.drivers] == pytest.approx(
        [math.expm1(brand * scale), math.expm1(running * scale)], rel=1e-6
    )


def test_a_listing_without_the_model_s_features_has_no_drivers(featurizer):
    """Coefficients only on columns the mug lacks: its price is the empty listing's, nothing moved it."""
    model = model_with(featurizer, {"onehot:brand_name_Nike": 0.9, "onehot:shipping_1": -0.5, "text:worn": 0.2})
    explanation = PriceExplainer(model).explain(pd.DataFrame([MUG]))
    assert explanation.price == pytest.approx(20.0) and explanation.base_price == pytest.approx(20.0)
    assert explanation.drivers == [] and explanation.other_effect == 0.0


def test_prices_below_a_cent_are_a_cent(featurizer):
    """An empty listing a learner prices below zero: the base is a cent, and the effects still
    multiply out to the price."""
    model = model_with(featurizer, {"onehot:brand_name_Nike": 4.0}, intercept=-1.0)
    explanation = PriceExplainer(model).explain(pd.DataFrame([SHOES]))
    price = math.expm1(-1.0 + 4.0 * feature_value(featurizer, SHOES, "onehot:brand_name_Nike"))
    assert explanation.base_price == 0.01 and explanation.price == pytest.approx(price, rel=1e-9)
    assert [(d.feature, d.effect) for d in explanation.drivers] == [("brand Nike", pytest.approx(price / 0.01 - 1))]
    cheap = PriceExplainer(model_with(featurizer, {"onehot:brand_name_Nike": -4.0})).explain(pd.DataFrame([SHOES]))
    assert cheap.price == 0.01 and cheap.drivers[0].effect == pytest.approx(0.01 / 20.0 - 1)


def test_an_n_gram_shares_its_move_equally_among_its_words(featurizer):
    """A bigram's move is split in halves, a character n-gram's among the title words holding it:
    beside a one-word column, each part carries its share, not the whole."""
    moves = {"name:air max": 0.6, "name:running": 0.3, "description:new with": -0.4}
    moves |= {"text:nike men": 0.2, "title_chars:ni": 0.5, "crossed:nike__max": 0.1}
    model = model_with(featurizer, moves)
    contribution = {name: c * feature_value(featurizer, SHOES, name) for name, c in moves.items()}
    explanation = PriceExplainer(model).explain(pd.DataFrame([SHOES]), top=20)
    scale = math.log(explanation.price / 20.0) / sum(contribution.values())
    expected = {
        '"air" in the title': contribution["name:air max"] / 2,
        '"max" in the title': contribution["name:air max"] / 2 + contribution["crossed:nike__max"],
        '"running" in the title': contribution["name:running"] + contribution["title_chars:ni"] / 2,
        '"new" in the description': contribution["description:new with"] / 2,
        '"with" in the description': contribution["description:new with"] / 2,
        "brand Nike": contribution["text:nike men"] / 2 + contribution["title_chars:ni"] / 2,
        ATHLETIC: contribution["text:nike men"] / 2,
    }
    shown = {d.feature: d.effect for d in explanation.drivers}
    assert shown == pytest.approx({label: math.expm1(value * scale) for label, value in expected.items()}, rel=1e-6)
