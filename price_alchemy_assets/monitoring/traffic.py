"""Live traffic as the drift sensor sees it: what the service was asked to price, read from the
prediction log with GROUP BY queries (SQLite or PostgreSQL), never whole tables.

Only requests the given model version answered count: traffic is compared with the profile of
the data that version learned from.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.listings.profile import CATEGORICAL, TEXT, ListingsProfile
from price_alchemy_assets.monitoring.prediction_log_table import prediction_log_engine, predictions, shadow_predictions

_MEASURES = {
    **{feature: predictions.c[feature] for feature in CATEGORICAL},
    "name_chars": sa.func.length(predictions.c.name),
    "description_chars": sa.func.coalesce(sa.func.length(predictions.c.item_description), 0),
}


def _no_counts() -> pd.DataFrame:
    return pd.DataFrame({"value": [], "listings": []})


class PredictionLogReader:
    """Reads within a `with` block, which opens the log once (one engine, one check that the
    table exists) for all the reads of a sensor tick. A log that does not exist yet (the service
    never ran) reads as no traffic; a reader never creates one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: sa.Engine | None = None

    def __enter__(self) -> PredictionLogReader:
        if self.url.startswith("sqlite:///") and not Path(self.url.removeprefix("sqlite:///")).is_file():
            return self
        engine = prediction_log_engine(self.url)
        try:
            exists = sa.inspect(engine).has_table(predictions.name)
        except Exception:
            engine.dispose()
            raise
        if exists:
            self.engine = engine
        else:
            engine.dispose()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    @staticmethod
    def no_traffic() -> ListingsProfile:
        return ListingsProfile.from_counts({name: _no_counts() for name in (*CATEGORICAL, "price", *TEXT)})

    def profile(self, model_version: str) -> ListingsProfile:
        """The profile of the listings `model_version` priced (no prices: traffic is unlabelled)."""
        if self.engine is None:
            return self.no_traffic()
        counts = {"price": _no_counts()}
        with self.engine.connect() as connection:
            for name, measure in _MEASURES.items():
                value = measure.label("value")
                query = (
                    sa.select(value, sa.func.count().label("listings"))
                    .where(predictions.c.model_version == model_version)
                    .group_by(value)
                )
                counts[name] = pd.DataFrame(connection.execute(query).all(), columns=["value", "listings"])
        counts["shipping"]["listings"] = counts["shipping"]["listings"].astype("int64")
        return ListingsProfile.from_counts(counts)

    def latest(self, model_version: str, limit: int) -> pd.DataFrame:
        """The seller fields of the newest `limit` listings `model_version` priced."""
        if self.engine is None:
            return pd.DataFrame(columns=list(SELLER_FIELDS))
        query = (
            sa.select(*(predictions.c[field] for field in SELLER_FIELDS))
            .where(predictions.c.model_version == model_version)
            .order_by(predictions.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return pd.DataFrame(connection.execute(query).all(), columns=list(SELLER_FIELDS))

    def served(self, logged_after: datetime) -> pd.DataFrame:
        """Every suggestion logged after a moment: seller fields, the suggested price and range, the
        model version and when, for matching with the prices listings later asked."""
        return self._suggestions(predictions, logged_after)

    def shadowed(self, logged_after: datetime) -> pd.DataFrame:
        """The challenger's suggestions for the same requests, as `served` gives the champion's."""
        return self._suggestions(shadow_predictions, logged_after)

    def _suggestions(self, table: sa.Table, logged_after: datetime) -> pd.DataFrame:
        columns = [*SELLER_FIELDS, "price", "price_low", "price_high", "model_version", "logged_at"]
        if self.engine is None or not sa.inspect(self.engine).has_table(table.name):
            return pd.DataFrame(columns=columns)
        query = sa.select(*(table.c[column] for column in columns)).where(table.c.logged_at > logged_after)
        with self.engine.connect() as connection:
            frame = pd.DataFrame(connection.execute(query).all(), columns=columns)
        frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True)
        return frame
