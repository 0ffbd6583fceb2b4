"""Data-quality measurements on listings; the asset checks turn these numbers into verdicts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

NULL_RATE_LIMITS: dict[str, float] = {
    "listing_id": 0.0,
    "name": 0.0,
    "item_condition_id": 0.0,
    "shipping": 0.0,
    "created_at": 0.0,
    "category_name": 0.05,
    "brand_name": 0.65,
    "item_description": 0.05,
}
"""Highest acceptable share of missing values; Mercari has ~43 % unbranded listings and a few
uncategorised ones, so those are normal up to a point."""


def null_rates(frame: pd.DataFrame) -> dict[str, float]:
    return {column: float(frame[column].isna().mean()) if len(frame) else 0.0 for column in NULL_RATE_LIMITS}


@dataclass(frozen=True)
class OutlierReport:
    labelled: int
    outliers: int
    mean_log_price: float
    std_log_price: float

    @property
    def share(self) -> float:
        return self.outliers / self.labelled if self.labelled else 0.0


def log_price_outliers(price: pd.Series, z: float = 3.0) -> OutlierReport:
    """Listings whose log price is more than `z` standard deviations from the mean."""
    log_price = np.log(price[price > 0].astype("float64"))
    if len(log_price) < 2:
        return OutlierReport(len(log_price), 0, float(log_price.mean()) if len(log_price) else 0.0, 0.0)
    mean, std = float(log_price.mean()), float(log_price.std())
    outliers = int((np.abs(log_price - mean) > z * std).sum()) if std > 0 else 0
    return OutlierReport(len(log_price), outliers, mean, std)


@dataclass(frozen=True)
class CategoryCoverage:
    previous: int
    current: int
    kept: int
    new: int

    @property
    def kept_share(self) -> float:
        return self.kept / self.previous if self.previous else 1.0


def category_coverage(previous: Iterable[str], current: Iterable[str]) -> CategoryCoverage:
    """How many of the categories seen last time are still present, and how many are new."""
    before, now = set(previous), set(current)
    return CategoryCoverage(len(before), len(now), len(before & now), len(now - before))


def newest_listing_age_hours(created_at: pd.Series, now: datetime) -> float | None:
    if created_at.empty:
        return None
    return (pd.Timestamp(now) - pd.Timestamp(created_at.max())).total_seconds() / 3600.0
