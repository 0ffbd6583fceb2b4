"""How the synthetic marketplace compares with genuine Mercari rows (../shared/data).

Prints a Markdown table of the statistics a price model cares about, for the genuine 7,000
labelled rows and for synthetic samples of the same and a larger size, plus how learnable the
price is: RMSLE of the global mean and of Ridge on TF-IDF, on a fixed 70/30 split of each.

    .venv/bin/python benchmarks/synthetic_vs_genuine.py [--output docs/synthetic-data-table.md]
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

REPO = Path(__file__).resolve().parents[1]
# run as a script, `benchmarks.reference` (a sibling) needs the repository on the path
sys.path.insert(0, str(REPO))
from benchmarks.reference import ridge_tfidf_prices  # noqa: E402
from price_alchemy_assets.listings.synthetic import MarketplaceSynthesizer  # noqa: E402
from price_alchemy_assets.model.metrics import rmsle  # noqa: E402

GENUINE = REPO.parent / "shared" / "data" / "mercari_train_sample.tsv"


def learnability(frame: pd.DataFrame) -> tuple[float, float]:
    """RMSLE of the global mean and of Ridge on TF-IDF on a fixed 70/30 split."""
    frame = frame[frame["price"] > 0]
    train, test = train_test_split(frame, test_size=0.3, random_state=0)
    mean = rmsle(test["price"], np.full(len(test), np.expm1(np.log1p(train["price"]).mean())))
    return mean, rmsle(test["price"], ridge_tfidf_prices(train, test))


def statistics(frame: pd.DataFrame) -> dict[str, str]:
    price = frame["price"]
    log_price = np.log1p(price)
    levels = frame["category_name"].dropna().str.count("/") + 1
    tops = frame["category_name"].dropna().str.split("/").str[0].value_counts(normalize=True)
    conditions = frame["item_condition_id"].value_counts(normalize=True).reindex(range(1, 6), fill_value=0)
    mean_error, ridge_error = learnability(frame)
    shipping_gap = log_price[frame["shipping"] == 0].mean() - log_price[frame["shipping"] == 1].mean()
    by_condition = log_price.groupby(frame["item_condition_id"]).mean()
    condition_gap = by_condition.get(1, np.nan) - by_condition.get(3, np.nan)
    return {
        "rows": f"{len(frame):,}",
        "distinct categories": f"{frame['category_name'].nunique():,}",
        "top-level categories": f"{len(tops)}",
        "categories with exactly 3 levels": f"{(levels == 3).mean():.1%}",
        "top-3 top-level shares": ", ".join(f"{name} {share:.0%}" for name, share in tops.head(3).items()),
        "missing category": f"{frame['category_name'].isna().mean():.1%}",
        "missing brand": f"{frame['brand_name'].isna().mean():.1%}",
        "distinct brands": f"{frame['brand_name'].nunique():,}",
        "condition 1/2/3/4/5": " / ".join(f"{share:.0%}" for share in conditions),
        "seller pays shipping": f"{frame['shipping'].mean():.1%}",
        "price mean / median / p90 / max": f"{price.mean():.1f} / {price.median():.0f} / "
        f"{price.quantile(0.9):.0f} / {price.max():.0f}",
        "price = 0": f"{(price == 0).mean():.2%}",
        "log1p(price) mean / std": f"{log_price.mean():.2f} / {log_price.std():.2f}",
        "log1p(price): buyer pays - seller pays": f"{shipping_gap:+.2f}",
        "log1p(price): condition 1 - condition 3": f"{condition_gap:+.2f}",
        "name length mean / max (chars)": f"{frame['name'].str.len().mean():.0f} / {frame['name'].str.len().max()}",
        "description length mean (chars)": f"{frame['item_description'].fillna('').str.len().mean():.0f}",
        "'No description yet'": f"{(frame['item_description'] == 'No description yet').mean():.1%}",
        "RMSLE, global mean (70/30 split)": f"{mean_error:.3f}",
        "RMSLE, Ridge on TF-IDF (same split)": f"{ridge_error:.3f}",
    }


def synthetic(rows: int) -> pd.DataFrame:
    synthesizer = MarketplaceSynthesizer(seed=1)
    return pd.concat(synthesizer.batches(rows, datetime(2026, 10, 1, tzinfo=UTC), 30.0), ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if not GENUINE.is_file():
        sys.exit(f"genuine rows not found at {GENUINE} (../shared/data is absent)")
    columns = {
        "genuine (7,000 rows)": statistics(pd.read_csv(GENUINE, sep="\t")),
        "synthetic (7,000 rows)": statistics(synthetic(7_000)),
        "synthetic (100,000 rows)": statistics(synthetic(100_000)),
    }
    table = pd.DataFrame(columns)
    report = (
        f"Measured {datetime.now(UTC):%Y-%m-%d} with benchmarks/synthetic_vs_genuine.py\n\n"
        + table.to_markdown()
        + "\n"
    )
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
