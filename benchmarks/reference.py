"""The reference baseline the benchmarks compare against: Ridge on one TF-IDF of all the text."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge


def listing_text(frame: pd.DataFrame) -> pd.Series:
    return (
        frame["name"].fillna("")
        + " "
        + frame["brand_name"].fillna("")
        + " "
        + frame["category_name"].fillna("")
        + " "
        + frame["item_description"].fillna("")
    )


def ridge_tfidf_prices(train: pd.DataFrame, test: pd.DataFrame, alpha: float = 3.0) -> np.ndarray:
    """Word 1-2-gram TF-IDF of name + brand + category + description, Ridge on log1p price."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1)
    model = Ridge(alpha=alpha).fit(vectorizer.fit_transform(listing_text(train)), np.log1p(train["price"]))
    return np.expm1(model.predict(vectorizer.transform(listing_text(test))))
