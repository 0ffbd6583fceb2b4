"""Listing profiles: the distributions a model learned from, kept with its bundle, so that new
listings and live traffic can be compared with them feature by feature.

A profile holds counts only (per category, brand, condition, shipping, and per bucket of log
price and text length), so the same profile can be built from a DataFrame at training time or
from GROUP BY results in a warehouse or the prediction log, without reading whole tables. The
buckets are defined once here and are simple enough to express in SQL.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd

CATEGORICAL = ("category_name", "brand_name", "item_condition_id", "shipping")
NONE = "(none)"
LOG_PRICE_BUCKETS_PER_UNIT = 2
"""log-price bucket = floor(ln(price) * 2): half a unit of log price (x1.65) per bucket."""
LENGTH_BUCKETS_PER_DOUBLING = 2
"""text-length bucket = floor(log2(chars + 1) * 2)."""
TEXT = {"name_chars": "name", "description_chars": "item_description"}
OOV_SAMPLE = 20_000
"""Listings tokenized for an out-of-vocabulary rate: enough for a rate to +-0.5 points."""


def log_price_bucket(price: pd.Series) -> pd.Series:
    return np.floor(np.log(price) * LOG_PRICE_BUCKETS_PER_UNIT).astype("int64")


def chars_bucket(chars: pd.Series) -> pd.Series:
    return np.floor(np.log2(chars.astype("int64") + 1) * LENGTH_BUCKETS_PER_DOUBLING).astype("int64")


@dataclass
class ListingsProfile:
    rows: int
    counts: dict[str, dict[str, int]]
    """feature -> value -> listings, for CATEGORICAL (missing values as "(none)")."""
    histograms: dict[str, dict[int, int]] = field(default_factory=dict)
    """log_price, name_chars, description_chars -> bucket -> listings (log_price: labelled only)."""
    oov_rate: float | None = None
    """Share of name and description words outside the featurizer's vocabulary (see with_oov_rate)."""

    @classmethod
    def from_listings(cls, listings: pd.DataFrame) -> ListingsProfile:
        """Counts the rows the way the warehouse's GROUP BY does, then buckets as from_counts."""
        measured = {feature: listings[feature] for feature in CATEGORICAL}
        measured["price"] = listings["price"] if "price" in listings else pd.Series(dtype="float64")
        measured |= {name: listings[column].fillna("").astype(str).str.len() for name, column in TEXT.items()}
        return cls.from_counts({name: _value_counts(values) for name, values in measured.items()})

    def with_oov_rate(self, featurizer, listings: pd.DataFrame, sample: int = OOV_SAMPLE) -> ListingsProfile:
        """This profile with the out-of-vocabulary rate of (a fixed sample of) `listings` under a
        fitted ListingFeaturizer. For the reference, pass held-out rows of the same market (the
        validation split): the rows the vocabulary was fitted on undercount what new text misses."""
        picked = listings.sample(sample, random_state=0) if len(listings) > sample else listings
        return replace(self, oov_rate=featurizer.oov_rate(picked))

    @classmethod
    def from_counts(cls, counts: dict[str, pd.DataFrame]) -> ListingsProfile:
        """From GROUP BY results (`value`, `listings`) for CATEGORICAL, `price` and the TEXT lengths:
        the same buckets as from_listings, applied to the counted values."""
        categorical = {
            feature: _counts_of(counts[feature]["value"].astype("string").fillna(NONE), counts[feature])
            for feature in CATEGORICAL
        }
        rows = int(counts["shipping"]["listings"].sum())
        histograms = {}
        priced = counts["price"][counts["price"]["value"].notna() & (counts["price"]["value"] > 0)]
        if len(priced):
            histograms["log_price"] = _counts_of(log_price_bucket(priced["value"].astype("float64")), priced)
        for name in TEXT:
            histograms[name] = _counts_of(chars_bucket(counts[name]["value"]), counts[name])
        return cls(rows, categorical, histograms)

    def top_level_categories(self) -> dict[str, int]:
        merged: Counter = Counter()
        for category, listings in self.counts["category_name"].items():
            merged[category.split("/", 1)[0]] += listings
        return dict(merged)

    def to_json(self) -> dict:
        return asdict(self) | {
            "histograms": {name: {str(k): v for k, v in h.items()} for name, h in self.histograms.items()}
        }

    @classmethod
    def from_json(cls, data: dict) -> ListingsProfile:
        histograms = {name: {int(k): v for k, v in h.items()} for name, h in data.get("histograms", {}).items()}
        return cls(data["rows"], data["counts"], histograms, data.get("oov_rate"))


def _counts_of(keys: pd.Series, counted: pd.DataFrame) -> dict:
    summed = counted["listings"].groupby(keys.to_numpy()).sum()
    return {(k.item() if hasattr(k, "item") else k): int(v) for k, v in summed.items()}


def warehouse_profile(warehouse, ingested_after: datetime | None = None) -> ListingsProfile:
    """The profile of the warehouse's listings (ingested after a moment), from GROUP BY queries only."""
    return ListingsProfile.from_counts(
        warehouse.count_by_each((*CATEGORICAL, "price", *TEXT), ingested_after=ingested_after)
    )


def _value_counts(values: pd.Series) -> pd.DataFrame:
    """`value`, `listings` per distinct value, missing values included: a GROUP BY in pandas."""
    counted = values.value_counts(dropna=False)
    return pd.DataFrame({"value": counted.index, "listings": counted.to_numpy()})
