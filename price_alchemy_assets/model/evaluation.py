"""Judging a candidate model on the test split beside the rules baseline and the champion,
and deciding whether it takes the champion's place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from price_alchemy_assets.model.metrics import price_metrics

CANDIDATE, RULES, CHAMPION = "candidate", "rules_baseline", "champion"


@dataclass
class EvalReport:
    metrics: dict[str, dict[str, float]]
    per_category: pd.DataFrame
    rows: int

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.metrics).T[["rows", "rmsle", "rmse", "mae", "r2_log", "coverage", "median_width"]]

    def markdown(self) -> str:
        overall = self.table().to_markdown(floatfmt=".4f")
        categories = self.per_category.to_markdown(index=False, floatfmt=".4f")
        return (
            f"### Test split ({self.rows:,} listings)\n\n{overall}\n\n### RMSLE by top-level category\n\n{categories}\n"
        )


def evaluate(
    test: pd.DataFrame, candidate: pd.DataFrame, rules: np.ndarray, champion: pd.DataFrame | None = None
) -> EvalReport:
    """`candidate` and `champion` are PriceModel.predict outputs for `test`; `rules` are prices."""
    actual = test["price"].to_numpy()
    metrics = {
        CANDIDATE: price_metrics(actual, candidate["price"], candidate["price_low"], candidate["price_high"]),
        RULES: price_metrics(actual, rules),
    }
    if champion is not None:
        metrics[CHAMPION] = price_metrics(actual, champion["price"], champion["price_low"], champion["price_high"])
    top = test["category_name"].fillna("(none)").str.split("/").str[0]
    rows = []
    for category, index in top.groupby(top).groups.items():
        positions = test.index.get_indexer(index)
        row = {
            "category": category,
            "rows": len(index),
            "candidate": price_metrics(actual[positions], candidate["price"].to_numpy()[positions])["rmsle"],
            "rules_baseline": price_metrics(actual[positions], rules[positions])["rmsle"],
        }
        if champion is not None:
            row["champion"] = price_metrics(actual[positions], champion["price"].to_numpy()[positions])["rmsle"]
        rows.append(row)
    per_category = pd.DataFrame(rows).sort_values("rows", ascending=False).reset_index(drop=True)
    return EvalReport(metrics=metrics, per_category=per_category, rows=len(test))


def should_promote(metrics: dict[str, dict[str, float]], margin: float) -> tuple[bool, str]:
    """A candidate replaces the champion only if it beats it on the same rows by `margin` RMSLE
    (`metrics` as in EvalReport.metrics)."""
    ours = metrics[CANDIDATE]["rmsle"]
    if CHAMPION not in metrics:
        return True, f"no champion yet; candidate RMSLE {ours:.4f}"
    theirs = metrics[CHAMPION]["rmsle"]
    if ours < theirs - margin:
        return True, f"candidate RMSLE {ours:.4f} beats champion {theirs:.4f} by more than {margin}"
    return False, f"candidate RMSLE {ours:.4f} does not beat champion {theirs:.4f} by more than {margin}; champion kept"


def plot_report(test: pd.DataFrame, candidate: pd.DataFrame, report: EvalReport, directory: Path) -> list[Path]:
    """Predicted vs actual, and RMSLE by category, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    scatter = directory / "predicted_vs_actual.png"
    figure, axis = plt.subplots(figsize=(6, 6))
    axis.scatter(test["price"], candidate["price"], s=4, alpha=0.4)
    limit = float(max(test["price"].max(), candidate["price"].max()))
    axis.plot([1, limit], [1, limit], color="grey", linewidth=1)
    axis.set(
        xscale="log",
        yscale="log",
        xlabel="actual price ($)",
        ylabel="suggested price ($)",
        title="Test split: suggested vs actual",
    )
    figure.tight_layout()
    figure.savefig(scatter, dpi=100)
    plt.close(figure)

    bars = directory / "rmsle_by_category.png"
    figure, axis = plt.subplots(figsize=(8, 4))
    table = report.per_category.set_index("category")[
        [c for c in ("candidate", "rules_baseline", "champion") if c in report.per_category]
    ]
    table.plot.bar(ax=axis)
    axis.set(ylabel="RMSLE", title="Test split: error by top-level category")
    figure.tight_layout()
    figure.savefig(bars, dpi=100)
    plt.close(figure)
    return [scatter, bars]
