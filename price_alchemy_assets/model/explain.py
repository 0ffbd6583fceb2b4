"""Why a price: the listing's category's typical price, and the features that moved the suggestion.

The drivers follow the blend: the boosted trees' SHAP contributions (LightGBM `pred_contrib`)
and, for the words, brand, category, condition and shipping, the Ridge coefficient times the
feature's value (its effect against a listing without it), each weighted as in the blend and
shown as the percentage the feature moved the price. The Ridge part leaves out the always-on
engineered numbers (text lengths), whose raw products say nothing on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from price_alchemy_assets.model.bundle import PriceModel
from price_alchemy_assets.model.features import ENGINEERED

_ONEHOT_LABELS = {
    "brand_name": "brand {}",
    "category_name": "category {}",
    "category_1": "department {}",
    "category_2": "category {}",
    "item_condition_id": "condition {}",
}
_ENGINEERED_LABELS = {
    "name_chars": "title length",
    "description_chars": "description length",
    "description_words": "description word count",
    "has_description": "has a description",
    "has_brand": "has a brand",
    "new_with_tags": "says new / with tags",
    "bundle_size": "bundle size",
    "storage_gb": "storage size",
}


@dataclass(frozen=True)
class PriceDriver:
    feature: str
    effect: float
    """Fraction the feature moved the suggested price: 0.12 is +12 %."""


@dataclass(frozen=True)
class TypicalPrice:
    category: str
    listings: int
    p25: float
    median: float
    p75: float


def readable_feature(name: str) -> str:
    """featurizer.feature_names() entries in a seller's words."""
    kind, _, rest = name.partition(":")
    if kind == "name":
        return f'"{rest}" in the title'
    if kind == "description":
        return f'"{rest}" in the description'
    if kind == "engineered":
        return _ENGINEERED_LABELS.get(rest, rest)
    if rest.startswith("shipping_"):
        return "seller pays shipping" if rest.endswith("_1") else "buyer pays shipping"
    for column, label in _ONEHOT_LABELS.items():
        if rest.startswith(column + "_"):
            value = rest[len(column) + 1 :]
            return label.format("(other)" if value.endswith("infrequent_sklearn") else value)
    return rest


class PriceExplainer:
    """Built once per model; `drivers` costs one tree-SHAP pass over one listing."""

    def __init__(self, model: PriceModel):
        self.model = model

    @cached_property
    def feature_labels(self) -> list[str]:
        return [readable_feature(name) for name in self.model.featurizer.feature_names()]

    def drivers(self, listing: pd.DataFrame, top: int = 4) -> list[PriceDriver]:
        model = self.model
        features = model.featurizer.transform(listing)
        contributions = model.booster.predict(features, pred_contrib=True)
        trees = np.asarray(contributions.todense() if sp.issparse(contributions) else contributions)[0, :-1]
        linear = np.asarray(features.multiply(model.ridge.coef_).todense())[0]
        linear[-len(ENGINEERED) :] = 0.0
        row = model.ridge_weight * linear + (1 - model.ridge_weight) * trees
        moved: dict[str, float] = {}
        for index in np.flatnonzero(row):
            label = self.feature_labels[index]
            moved[label] = moved.get(label, 0.0) + float(row[index])
        strongest = sorted(moved.items(), key=lambda item: abs(item[1]), reverse=True)[:top]
        return [PriceDriver(label, float(np.expm1(log_effect))) for label, log_effect in strongest]

    def typical_price(self, category_name: str | None) -> TypicalPrice | None:
        """The most specific category (or prefix of it) with enough training listings, else all."""
        prices = self.model.category_prices
        parts = (category_name or "").split("/")
        for depth in range(len(parts), -1, -1):
            key = "/".join(parts[:depth]) if depth else "*"
            if key in prices:
                stats = prices[key]
                return TypicalPrice(key, stats["listings"], stats["p25"], stats["median"], stats["p75"])
        return None
