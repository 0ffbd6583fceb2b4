"""The rules baseline: mean log price of similar listings, before any machine learning.

A listing is priced at the mean log price of its category x condition x brand group when
that group has enough support, else category x condition, category, top-level category,
and finally the global mean. A model earns its keep only by beating this.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_LEVELS = (
    ("category_name", "item_condition_id", "brand_name"),
    ("category_name", "item_condition_id"),
    ("category_name",),
    ("top_category",),
)


class RulesBaseline:
    def __init__(self, min_support: int = 10):
        self.min_support = min_support

    @staticmethod
    def _keys(frame: pd.DataFrame) -> pd.DataFrame:
        keys = pd.DataFrame(index=frame.index)
        keys["category_name"] = frame["category_name"].fillna("(none)")
        keys["brand_name"] = frame["brand_name"].fillna("(none)")
        keys["item_condition_id"] = frame["item_condition_id"].astype("int64")
        keys["top_category"] = keys["category_name"].str.split("/").str[0]
        return keys

    def fit(self, frame: pd.DataFrame) -> RulesBaseline:
        """`frame` needs the listing fields and a positive `price`."""
        keys = self._keys(frame).assign(log_price=np.log1p(frame["price"].astype("float64")))
        self.global_mean_ = float(keys["log_price"].mean())
        self.tables_ = []
        for level in _LEVELS:
            groups = keys.groupby(list(level))["log_price"].agg(["mean", "count"])
            self.tables_.append(groups[groups["count"] >= self.min_support]["mean"].rename("level_mean"))
        return self

    def predict_log(self, frame: pd.DataFrame) -> np.ndarray:
        keys = self._keys(frame)
        prediction = pd.Series(np.nan, index=frame.index)
        for level, table in zip(_LEVELS, self.tables_, strict=True):
            missing = prediction.isna()
            if not missing.any():
                break
            found = keys.loc[missing, list(level)].join(table, on=list(level))["level_mean"]
            prediction[missing] = found
        return prediction.fillna(self.global_mean_).to_numpy()

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Suggested prices in dollars."""
        return np.expm1(self.predict_log(frame))
