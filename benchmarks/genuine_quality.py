"""Model quality on the genuine Mercari rows: the shipped pipeline against baselines, same rows.

Ingests ../shared/data/mercari_train_sample.tsv into a temporary warehouse, materializes the
real assets (raw_listings -> champion) with the default tuning budget unless told otherwise,
then scores the test split with the shipped model and with baselines fitted on the same
train + validation rows: the global mean, the rules baseline, and Ridge on TF-IDF (word
1-2-grams of name + brand + category + description, alpha 3). Target: the shipped model beats
Ridge-on-TF-IDF by at least 0.03 RMSLE.

    .venv/bin/python benchmarks/genuine_quality.py [--max-evals 12] [--output docs/benchmarks/genuine-quality.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
GENUINE = REPO.parent / "shared" / "data" / "mercari_train_sample.tsv"

from benchmarks.reference import ridge_tfidf_prices  # noqa: E402
from price_alchemy_assets.definitions import defs  # noqa: E402
from price_alchemy_assets.listings.ingest import ingest_listings_file  # noqa: E402
from price_alchemy_assets.model.baseline import RulesBaseline  # noqa: E402
from price_alchemy_assets.model.dataset import TrainingData  # noqa: E402
from price_alchemy_assets.model.metrics import price_metrics  # noqa: E402
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION  # noqa: E402
from price_alchemy_assets.model.store import FolderModelStore  # noqa: E402
from price_alchemy_assets.resources import resources_under  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-evals", type=int, default=None, help="hyperopt trials (default: the asset default)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if not GENUINE.is_file():
        sys.exit(f"genuine rows not found at {GENUINE} (../shared/data is absent)")
    with tempfile.TemporaryDirectory(prefix="price-alchemy-quality-") as folder:
        root = Path(folder)
        resources = resources_under(root)
        ingest_listings_file(GENUINE, resources["warehouse"].open())
        tuning = {"max_evals": args.max_evals} if args.max_evals else {}
        started = time.perf_counter()
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def("price_alchemy_main").execute_in_process(
                instance=instance,
                resources=resources,
                run_config={"ops": {"tuned_model": {"config": tuning}}} if tuning else {},
            )
        seconds = time.perf_counter() - started
        data = TrainingData.load(root / "training_data" / "tfidf_features")
        fitted = pd.concat([data.rows(TRAIN), data.rows(VALIDATION)])
        test = data.rows(TEST)
        record, model = FolderModelStore(root / "store").load_champion()
        shipped = model.predict(test)
        rows = {
            "global mean": np.full(len(test), np.expm1(np.log1p(fitted["price"]).mean())),
            "rules baseline (category x condition x brand)": RulesBaseline().fit(fitted).predict(test),
            "Ridge on TF-IDF (alpha 3)": ridge_tfidf_prices(fitted, test),
            "shipped model (Ridge + tuned LightGBM blend)": shipped["price"].to_numpy(),
        }
        table = pd.DataFrame({name: price_metrics(test["price"], values) for name, values in rows.items()}).T
        coverage = price_metrics(test["price"], shipped["price"], shipped["price_low"], shipped["price_high"])
    margin = table.loc["Ridge on TF-IDF (alpha 3)", "rmsle"] - table.loc[table.index[-1], "rmsle"]
    report = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with benchmarks/genuine_quality.py on "
        f"{GENUINE.name}: {len(data.rows(TRAIN)):,} train / {len(data.rows(VALIDATION)):,} validation / "
        f"{len(test):,} test listings (split by id hash), tuning: {model.info.get('trials')} trials; "
        f"pipeline wall time {seconds:.0f} s; run {'succeeded' if result.success else 'FAILED'}.\n\n"
        + table[["rmsle", "rmse", "mae", "r2_log"]].to_markdown(floatfmt=".4f")
        + f"\n\nShipped model beats Ridge-on-TF-IDF by {margin:.4f} RMSLE (target: >= 0.03): "
        f"{'met' if margin >= 0.03 else 'NOT met'}. Its {model.interval_coverage:.0%} range covers "
        f"{coverage['coverage']:.1%} of test prices (median width ${coverage['median_width']:.2f}).\n"
    )
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
