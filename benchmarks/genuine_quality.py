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
from dagster_duckdb_pandas import DuckDBPandasIOManager
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
GENUINE = REPO.parent / "shared" / "data" / "mercari_train_sample.tsv"

from price_alchemy_assets.definitions import defs  # noqa: E402
from price_alchemy_assets.io_managers import TrainingDataIOManager  # noqa: E402
from price_alchemy_assets.listings.ingest import ingest_listings_file  # noqa: E402
from price_alchemy_assets.model.baseline import RulesBaseline  # noqa: E402
from price_alchemy_assets.model.dataset import TrainingData  # noqa: E402
from price_alchemy_assets.model.metrics import price_metrics  # noqa: E402
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION  # noqa: E402
from price_alchemy_assets.model.store import ModelStore  # noqa: E402
from price_alchemy_assets.resources import (  # noqa: E402
    DuckDBWarehouseResource,
    MlflowTrackingResource,
    ModelStoreResource,
)


def ridge_tfidf(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    def text(frame: pd.DataFrame) -> pd.Series:
        return (
            frame["name"].fillna("")
            + " "
            + frame["brand_name"].fillna("")
            + " "
            + frame["category_name"].fillna("")
            + " "
            + frame["item_description"].fillna("")
        )

    vectorizer = TfidfVectorizer(ngram_range=(1, 2))
    model = Ridge(alpha=3.0).fit(vectorizer.fit_transform(text(train)), np.log1p(train["price"]))
    return np.expm1(model.predict(vectorizer.transform(text(test))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-evals", type=int, default=None, help="hyperopt trials (default: the asset default)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if not GENUINE.is_file():
        sys.exit(f"genuine rows not found at {GENUINE} (../shared/data is absent)")
    with tempfile.TemporaryDirectory(prefix="price-alchemy-quality-") as folder:
        root = Path(folder)
        resources = {
            "warehouse": DuckDBWarehouseResource(path=str(root / "warehouse.duckdb")),
            "io_manager": DuckDBPandasIOManager(database=str(root / "assets.duckdb"), schema="price_alchemy"),
            "mlflow_tracking": MlflowTrackingResource(
                tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "mlartifacts")
            ),
            "model_store": ModelStoreResource(root=str(root / "store")),
            "training_data_io_manager": TrainingDataIOManager(base_dir=str(root / "training_data")),
            "record_io_manager": dg.FilesystemIOManager(base_dir=str(root / "records")),
        }
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
        record, model = ModelStore(root / "store").load_champion()
        shipped = model.predict(test)
        rows = {
            "global mean": np.full(len(test), np.expm1(np.log1p(fitted["price"]).mean())),
            "rules baseline (category x condition x brand)": RulesBaseline().fit(fitted).predict(test),
            "Ridge on TF-IDF (alpha 3)": ridge_tfidf(fitted, test),
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
