"""Why a price: the price an empty listing would get, and what this listing's features did to it.

The blend is additive in log price, and each learner splits its own output exactly among the
listing's non-zero features against the empty listing (ensemble.py): Ridge's coefficient times
value, the MLP's DeepLIFT contributions, the trees' exact Shapley values. Grouped into what a
seller recognises (a word of the title, the brand, the category, the condition...) and moved
from log1p(price) to log(price), they multiply out exactly:

    base_price x (1 + effect_1) x ... x (1 + effect_k) x (1 + other_effect) == price

Every driver is something this listing has: a word of its title or description (n-grams,
character n-grams and brand x word tokens are shared among the words they come from), its
brand, category, condition, shipping, or one of its measured text properties.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from price_alchemy_assets.model.bundle import PriceModel
from price_alchemy_assets.model.features import CATEGORY_PAIRS, PAIRS

_LOWEST_PRICE = 0.01
"""Prices below a cent (an empty listing a learner prices below zero) are taken as a cent, so the
multiplication stays defined."""
_ENGINEERED_LABELS = {
    "name_chars": "title length",
    "description_chars": "description length",
    "description_words": "description word count",
    "has_description": "has a description",
    "has_brand": "has a brand",
    "new_with_tags": "says new / with tags",
    "bundle_size": "sold as a bundle",
    "storage_gb": "storage size",
}
_CONDITIONS = {1: "new", 2: "like new", 3: "good", 4: "fair", 5: "poor"}
_WORD = re.compile(r"(?u)\b\w\w+\b")
_EDGE_PUNCTUATION = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())


@dataclass(frozen=True)
class PriceDriver:
    feature: str
    effect: float
    """Fraction the feature moved the suggested price: 0.12 is +12 %."""


@dataclass(frozen=True)
class PriceExplanation:
    price: float
    base_price: float
    """What the model suggests for an empty listing: no words, brand, category, condition or shipping."""
    drivers: list[PriceDriver]
    other_effect: float
    """Everything else together, as a fraction."""


@dataclass(frozen=True)
class TypicalPrice:
    category: str
    listings: int
    p25: float
    median: float
    p75: float


class _Listing:
    """One listing's fields as the labels need them."""

    def __init__(self, listing: pd.Series):
        def text(column: str) -> str:
            value = listing.get(column)
            return value if isinstance(value, str) else ""

        self.name, self.brand, self.category = text("name"), text("brand_name").strip(), text("category_name")
        self.description = text("item_description")
        self.condition, self.shipping = int(listing["item_condition_id"]), int(listing["shipping"])
        self.name_words = self._words(self.name)
        self.brand_words = self._words(self.brand)
        self.description_words = set(_WORD.findall(self.description.lower()))
        self.category_words = set(_WORD.findall(self.category.lower()))
        spaced = (self.name + " " + self.brand).lower().split()
        self.title_pieces = [(f" {piece} ", piece.strip(_EDGE_PUNCTUATION) or piece) for piece in spaced]

    @staticmethod
    def _words(text: str) -> set[str]:
        """The featurizer's words of `text`, and its whitespace pieces (where character n-grams live)."""
        lowered = text.lower()
        pieces = {piece.strip(_EDGE_PUNCTUATION) or piece for piece in lowered.split()}
        return set(_WORD.findall(lowered)) | pieces

    def title_word(self, word: str) -> str:
        """A word of the name + brand text: the brand's own words count as the brand."""
        if word not in self.name_words and word in self.brand_words:
            return f"brand {self.brand}"
        return f'"{word}" in the title'

    def text_word(self, word: str) -> str:
        """A word of the whole text (title, category, description), named where the seller wrote it."""
        if word in self.description_words:
            return f'"{word}" in the description'
        if word in self.name_words or word in self.brand_words:
            return self.title_word(word)
        if word in self.category_words:
            return f"category {self.category}"
        return f'"{word}" in the description'


_ONEHOT_COLUMNS = ("brand_name", "category", "item_condition_id", "shipping")
"""Prefixes of the one-hot columns' names; every category level counts as the listing's category."""
_PAIRS_LONGEST_FIRST = sorted(PAIRS, key=len, reverse=True)


def _field_label(column: str, fields: _Listing) -> str:
    """A one-hot column carries the listing's own value (a rare one shares the "infrequent" column),
    so its label is that value."""
    if column == "brand_name":
        return f"brand {fields.brand}" if fields.brand else "no brand"
    if column.startswith("category"):
        return f"category {fields.category}" if fields.category else "no category"
    if column == "item_condition_id":
        return f"condition {fields.condition} ({_CONDITIONS.get(fields.condition, '?')})"
    if column == "shipping":
        return "seller pays shipping" if fields.shipping == 1 else "buyer pays shipping"
    return column


class PriceExplainer:
    """Built once per model (the service's explanation process builds it when a champion arrives)."""

    def __init__(self, model: PriceModel):
        self.model = model

    def prepare(self) -> PriceExplainer:
        """Build the column tables and the trees' node tables now rather than on the first request."""
        self.model.blend.prepare()
        _ = self._columns
        return self

    @cached_property
    def _columns(self) -> list[tuple[str, str]]:
        """(block, term) per feature column."""
        return [tuple(name.split(":", 1)) for name in self.model.featurizer.feature_names()]

    def explain(self, listing: pd.DataFrame, top: int = 5) -> PriceExplanation:
        """`listing`: one row of listing fields."""
        model = self.model
        features = model.features(listing)
        empty, predicted, contributions = model.blend.attribute(features)
        grouped: dict[str, float] = defaultdict(float)
        fields = _Listing(listing.iloc[0])
        for column, value in contributions.items():
            for label, share in self._labels(column, fields):
                grouped[label] += value * share
        price = max(float(np.expm1(predicted)), _LOWEST_PRICE)
        base = max(float(np.expm1(empty)), _LOWEST_PRICE)
        total = sum(grouped.values())
        # log1p -> log: the same shares of a slightly larger move, so the effects multiply to the price
        scale = (math.log(price) - math.log(base)) / total if abs(total) > 1e-12 else 0.0
        moved = sorted(((label, value * scale) for label, value in grouped.items()), key=lambda item: -abs(item[1]))
        shown = [(label, effect) for label, effect in moved[:top] if effect]
        rest = math.log(price) - math.log(base) - sum(effect for _, effect in shown)
        return PriceExplanation(
            price=price,
            base_price=base,
            drivers=[PriceDriver(label, math.expm1(effect)) for label, effect in shown],
            other_effect=math.expm1(rest),
        )

    def _labels(self, column: int, fields: _Listing) -> list[tuple[str, float]]:
        block, term = self._columns[column]
        if block == "name":
            words = term.split(" ")
            return [(fields.title_word(word), 1 / len(words)) for word in words]
        if block == "description":
            words = term.split(" ")
            return [(f'"{word}" in the description', 1 / len(words)) for word in words]
        if block == "text":
            words = term.split(" ")
            return [(fields.text_word(word), 1 / len(words)) for word in words]
        if block == "title_chars":
            pieces = [word for padded, word in fields.title_pieces if term in padded]
            pieces = pieces or [term.strip()]
            return [(fields.title_word(word), 1 / len(pieces)) for word in pieces]
        if block == "crossed":
            return [(fields.title_word(term.rsplit("__", 1)[1]), 1.0)]
        if block == "engineered":
            return [(_ENGINEERED_LABELS.get(term, term), 1.0)]
        if block == CATEGORY_PAIRS:
            # a combination (category x condition...) is shared among the parts it combines
            pair = next(pair for pair in _PAIRS_LONGEST_FIRST if term.startswith(f"{pair}_"))
            return [(_field_label(part, fields), 1 / len(PAIRS[pair])) for part in PAIRS[pair]]
        column = next((column for column in _ONEHOT_COLUMNS if term.startswith(f"{column}_")), term)
        return [(_field_label(column, fields), 1.0)]


def typical_price(model: PriceModel, category_name: str | None) -> TypicalPrice | None:
    """The most specific category (or prefix of it) with enough training listings, else all."""
    prices = model.category_prices
    parts = (category_name or "").split("/")
    for depth in range(len(parts), -1, -1):
        key = "/".join(parts[:depth]) if depth else "*"
        if key in prices:
            stats = prices[key]
            return TypicalPrice(key, stats["listings"], stats["p25"], stats["median"], stats["p75"])
    return None
