"""The listing featurizer: raw listing fields in, one sparse matrix out (scikit-learn style).

Word TF-IDF on the name and on the description, one-hot brand, category (whole path and each
level), condition and shipping, and a few engineered numbers (text lengths, "new with tags",
bundle size, storage size). Fitted on the train split only.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import OneHotEncoder

NO_DESCRIPTION = "No description yet"
_BUNDLE = re.compile(r"\b(?:bundle|lot) of (\d{1,2})\b", re.IGNORECASE)
_STORAGE = re.compile(r"\b(\d{2,4}) ?gb\b", re.IGNORECASE)
_NEW_WITH_TAGS = re.compile(r"\b(?:nwt|new with tags|bnwt|brand new|nib|new in box|sealed)\b", re.IGNORECASE)
_CATEGORICAL = ["brand_name", "category_name", "category_1", "category_2", "item_condition_id", "shipping"]
ENGINEERED = [
    "name_chars",
    "description_chars",
    "description_words",
    "has_description",
    "has_brand",
    "new_with_tags",
    "bundle_size",
    "storage_gb",
]


@dataclass(frozen=True)
class FeaturizerConfig:
    name_max_features: int = 30_000
    description_max_features: int = 50_000
    min_df: int = 2
    max_ngram: int = 2
    min_category_count: int = 2


def _text(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    name = frame["name"].fillna("").astype(str)
    brand = frame["brand_name"].fillna("").astype(str)
    description = frame["item_description"].fillna("").astype(str).replace(NO_DESCRIPTION, "")
    return name + " " + brand, description


def _categorical(frame: pd.DataFrame) -> pd.DataFrame:
    category = frame["category_name"].fillna("(none)").astype(str)
    levels = category.str.split("/", n=2, expand=True).reindex(columns=[0, 1], fill_value="(none)").fillna("(none)")
    return pd.DataFrame(
        {
            "brand_name": frame["brand_name"].fillna("(none)").astype(str),
            "category_name": category,
            "category_1": levels[0],
            "category_2": levels[0] + "/" + levels[1],
            "item_condition_id": frame["item_condition_id"].astype("int64").astype(str),
            "shipping": frame["shipping"].astype("int64").astype(str),
        }
    )


def _engineered(frame: pd.DataFrame, name: pd.Series, description: pd.Series) -> pd.DataFrame:
    """`name` and `description` as _text made them for the vectorizers, so the text is built once."""
    everything = name + " " + description
    bundle = everything.str.extract(_BUNDLE, expand=False).astype("float64").fillna(1.0)
    storage = everything.str.extract(_STORAGE, expand=False).astype("float64").fillna(0.0)
    return pd.DataFrame(
        {
            "name_chars": np.log1p(frame["name"].fillna("").str.len()),
            "description_chars": np.log1p(description.str.len()),
            "description_words": np.log1p(description.str.split().str.len().fillna(0)),
            "has_description": (description != "").astype("float64"),
            "has_brand": frame["brand_name"].notna().astype("float64"),
            "new_with_tags": everything.str.contains(_NEW_WITH_TAGS).astype("float64"),
            "bundle_size": np.log(bundle.clip(1, 20)),
            "storage_gb": np.log2(storage.clip(0, 4096) + 1) / 12,
        },
        index=frame.index,
    )


class ListingFeaturizer:
    """fit(train listings) then transform(any listings) -> CSR float32 matrix."""

    def __init__(self, config: FeaturizerConfig = FeaturizerConfig()):
        self.config = config

    def fit(self, frame: pd.DataFrame) -> ListingFeaturizer:
        started = time.perf_counter()
        config = self.config
        name, description = _text(frame)
        self.name_vectorizer_ = self._tfidf(config.name_max_features).fit(name)
        self.description_vectorizer_ = self._tfidf(config.description_max_features).fit(description)
        self.encoder_ = OneHotEncoder(
            handle_unknown="infrequent_if_exist", min_frequency=config.min_category_count, dtype=np.float32
        ).fit(_categorical(frame))
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _tfidf(self, max_features: int) -> TfidfVectorizer:
        return TfidfVectorizer(
            ngram_range=(1, self.config.max_ngram),
            min_df=self.config.min_df,
            max_features=max_features,
            sublinear_tf=True,
            dtype=np.float32,
        )

    def transform(self, frame: pd.DataFrame) -> sp.csr_matrix:
        name, description = _text(frame)
        blocks = [
            self.name_vectorizer_.transform(name),
            self.description_vectorizer_.transform(description),
            self.encoder_.transform(_categorical(frame)),
            sp.csr_matrix(_engineered(frame, name, description).to_numpy(dtype=np.float32)),
        ]
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def fit_transform(self, frame: pd.DataFrame) -> sp.csr_matrix:
        return self.fit(frame).transform(frame)

    @property
    def vocabulary_sizes(self) -> dict[str, int]:
        return {
            "name": len(self.name_vectorizer_.vocabulary_),
            "description": len(self.description_vectorizer_.vocabulary_),
            "categorical": int(sum(len(c) for c in self.encoder_.categories_)),
            "engineered": len(ENGINEERED),
        }

    def feature_names(self) -> list[str]:
        return (
            [f"name:{t}" for t in self.name_vectorizer_.get_feature_names_out()]
            + [f"description:{t}" for t in self.description_vectorizer_.get_feature_names_out()]
            + [f"onehot:{t}" for t in self.encoder_.get_feature_names_out()]
            + [f"engineered:{t}" for t in ENGINEERED]
        )

    def describe(self) -> dict:
        return {
            "config": asdict(self.config),
            "vocabulary_sizes": self.vocabulary_sizes,
            "fit_seconds": round(getattr(self, "fit_seconds_", 0.0), 3),
        }
