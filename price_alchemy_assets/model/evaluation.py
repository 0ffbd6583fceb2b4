"""Judging a candidate model on the test split beside the rules baseline and the champion,
and deciding whether it takes the champion's place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from price_alchemy_assets.model.metrics import price_metrics

CANDIDATE, RULES, CHAMPION = "candidate", "rules_baseline", "champion"


@dataclass
class EvalReport:
    metrics: dict[str, dict[str, float]]
    per_category: pd.DataFrame
    rows: int

    def table(self) -> pd.DataFrame:
        table = pd.DataFrame(self.metrics).T[["rows", "rmsle", "rmse", "mae", "r2_log", "coverage", "median_width"]]
        return table.astype({"rows": "int64"})

    def markdown(self) -> str:
        """Both tables, numbers to 4 significant digits."""
        overall = self.table().to_markdown(floatfmt=".4g")
        categories = self.per_category.to_markdown(index=False, floatfmt=".4g")
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


def worth_a_shadow_trial(metrics: dict[str, dict[str, float]], within: float) -> tuple[bool, str]:
    """A candidate the gate kept out becomes the challenger when it lost to the champion by less
    than `within` RMSLE on the same rows: close enough that live traffic should decide."""
    if CHAMPION not in metrics or within <= 0:
        return False, "no challenger"
    ours, theirs = metrics[CANDIDATE]["rmsle"], metrics[CHAMPION]["rmsle"]
    if ours < theirs + within:
        return True, f"challenger: candidate RMSLE {ours:.4f} within {within} of champion {theirs:.4f}"
    return False, f"no challenger: candidate RMSLE {ours:.4f} not within {within} of champion {theirs:.4f}"


def report_figures(test: pd.DataFrame, candidate: pd.DataFrame, report: EvalReport) -> dict[str, Figure]:
    """Predicted vs actual, and RMSLE by top-level category, by file name stem. Figures made without
    pyplot's global state, so a run in a sensor's or a service's thread draws safely."""
    scatter = Figure(figsize=(6, 6))
    axis = scatter.subplots()
    axis.scatter(test["price"], candidate["price"], s=4, alpha=0.4)
    limit = float(max(test["price"].max(), candidate["price"].max()))
    axis.plot([1, limit], [1, limit], color="grey", linewidth=1)  # where suggested equals actual
    axis.set(
        xscale="log",
        yscale="log",
        xlabel="actual price ($)",
        ylabel="suggested price ($)",
        title="Test split: suggested vs actual",
    )
    scatter.tight_layout()

    bars = Figure(figsize=(8, 4))
    axis = bars.subplots()
    models = [c for c in (CANDIDATE, RULES, CHAMPION) if c in report.per_category]
    report.per_category.set_index("category")[models].plot.bar(ax=axis)
    axis.set(ylabel="RMSLE", title="Test split: error by top-level category")
    bars.tight_layout()
    return {"predicted_vs_actual": scatter, "rmsle_by_category": bars}


def plot_report(test: pd.DataFrame, candidate: pd.DataFrame, report: EvalReport, directory: Path) -> list[Path]:
    """The report's figures as PNG files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, figure in report_figures(test, candidate, report).items():
        paths.append(directory / f"{stem}.png")
        figure.savefig(paths[-1], dpi=100)
    return paths
