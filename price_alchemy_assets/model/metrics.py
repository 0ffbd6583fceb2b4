"""Regression metrics in the units a seller and Kaggle use: RMSLE on price, errors in dollars."""

from __future__ import annotations

import numpy as np


def rmsle(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared log error, Kaggle's Mercari metric (prices in dollars)."""
    actual, predicted = np.asarray(actual, dtype="float64"), np.asarray(predicted, dtype="float64")
    return float(np.sqrt(np.mean((np.log1p(actual) - np.log1p(np.clip(predicted, 0, None))) ** 2)))


def price_metrics(actual, predicted, low=None, high=None) -> dict[str, float]:
    """RMSLE, RMSE, MAE (dollars), R² on log price, and, given a range, its coverage and width."""
    actual, predicted = np.asarray(actual, dtype="float64"), np.asarray(predicted, dtype="float64")
    log_actual, log_predicted = np.log1p(actual), np.log1p(np.clip(predicted, 0, None))
    residual = log_actual - log_predicted
    total = np.sum((log_actual - log_actual.mean()) ** 2)
    metrics = {
        "rows": float(len(actual)),
        "rmsle": float(np.sqrt(np.mean(residual**2))),
        "rmse": float(np.sqrt(np.mean((actual - predicted) ** 2))),
        "mae": float(np.mean(np.abs(actual - predicted))),
        "r2_log": float(1 - np.sum(residual**2) / total) if total > 0 else 0.0,
    }
    if low is not None and high is not None:
        low, high = np.asarray(low, dtype="float64"), np.asarray(high, dtype="float64")
        metrics["coverage"] = float(np.mean((actual >= low) & (actual <= high)))
        metrics["median_width"] = float(np.median(high - low))
    return metrics
