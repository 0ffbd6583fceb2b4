"""The references the quality benchmarks compare against, fitted on exactly the rows the pipeline
gets: Ridge on one TF-IDF of all the text, and the strong sparse-linear recipe (with LightGBM
stacked on its out-of-fold predictions). Written from the recipe, sharing no code with the
shipped model, so a fault in ours cannot flatter us."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.preprocessing import OneHotEncoder


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].fillna("").astype(str)


def listing_text(frame: pd.DataFrame) -> pd.Series:
    return (
        _text(frame, "name")
        + " "
        + _text(frame, "brand_name")
        + " "
        + _text(frame, "category_name")
        + " "
        + _text(frame, "item_description")
    )


def ridge_tfidf_prices(train: pd.DataFrame, test: pd.DataFrame, alpha: float = 3.0) -> np.ndarray:
    """Word 1-2-gram TF-IDF of name + brand + category + description, Ridge on log1p price."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1)
    model = Ridge(alpha=alpha).fit(vectorizer.fit_transform(listing_text(train)), np.log1p(train["price"]))
    return np.expm1(model.predict(vectorizer.transform(listing_text(test))))


def _crossed(frame: pd.DataFrame) -> list[str]:
    """brand__word and category__word for each word of the name."""
    documents = []
    for name, brand, category in zip(
        _text(frame, "name"), _text(frame, "brand_name"), _text(frame, "category_name"), strict=True
    ):
        words = name.lower().split()
        brand_key = brand.lower().replace(" ", "_") or "nobrand"
        category_key = category.lower().replace(" ", "_") or "nocategory"
        documents.append(" ".join([f"{brand_key}__{w}" for w in words] + [f"{category_key}__{w}" for w in words]))
    return documents


class StrongSparseFeatures:
    """The strong reference's features: word 1-2-gram TF-IDF (min_df 2, sublinear) of all the text,
    word 1-2-grams of name + brand, char_wb 2-4-grams (min_df 2) of name + brand, TF-IDF of the
    crossed tokens, one-hot category / brand / condition / shipping."""

    def fit(self, frame: pd.DataFrame) -> StrongSparseFeatures:
        self.vectorizers_ = [
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
            TfidfVectorizer(ngram_range=(1, 2)),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2),
            TfidfVectorizer(token_pattern=r"\S+"),
        ]
        for vectorizer, texts in zip(self.vectorizers_, self._texts(frame), strict=True):
            vectorizer.fit(texts)
        self.encoder_ = OneHotEncoder(handle_unknown="ignore").fit(self._categorical(frame))
        return self

    def transform(self, frame: pd.DataFrame) -> sp.csr_matrix:
        blocks = [v.transform(t) for v, t in zip(self.vectorizers_, self._texts(frame), strict=True)]
        return sp.hstack([*blocks, self.encoder_.transform(self._categorical(frame))], format="csr")

    @staticmethod
    def _texts(frame: pd.DataFrame) -> list:
        name_brand = _text(frame, "name") + " " + _text(frame, "brand_name")
        return [listing_text(frame), name_brand, name_brand, _crossed(frame)]

    @staticmethod
    def _categorical(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "category": _text(frame, "category_name"),
                "brand": _text(frame, "brand_name"),
                "condition": frame["item_condition_id"].astype(int).astype(str),
                "shipping": frame["shipping"].astype(int).astype(str),
            }
        )


def strong_reference_log_prices(
    train: pd.DataFrame, test: pd.DataFrame, alpha: float = 3.0, folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge (alpha 3) on StrongSparseFeatures, and the mean of it with LightGBM stacked on its
    out-of-fold predictions (the Ridge's OOF log price as an extra column beside the features).
    Both as log1p prices for `test`."""
    y = np.log1p(train["price"].to_numpy())
    features = StrongSparseFeatures().fit(train)
    x, x_test = features.transform(train), features.transform(test)
    ridge_test = Ridge(alpha=alpha).fit(x, y).predict(x_test)
    fold = np.random.default_rng(seed).permutation(np.arange(len(train)) % folds)
    out_of_fold = np.zeros(len(train))
    for k in range(folds):
        inner = StrongSparseFeatures().fit(train[fold != k])
        model = Ridge(alpha=alpha).fit(inner.transform(train[fold != k]), y[fold != k])
        out_of_fold[fold == k] = model.predict(inner.transform(train[fold == k]))
    stacked = sp.hstack([sp.csr_matrix(out_of_fold[:, None]), x], format="csr").astype(np.float32)
    stacked_test = sp.hstack([sp.csr_matrix(ridge_test[:, None]), x_test], format="csr").astype(np.float32)
    params = {
        "objective": "regression",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.5,
        "lambda_l2": 1.0,
        "num_threads": 2,
        "seed": seed,
        "verbosity": -1,
    }
    booster = lgb.train(params, lgb.Dataset(stacked, y), num_boost_round=300)
    return ridge_test, (ridge_test + booster.predict(stacked_test)) / 2
