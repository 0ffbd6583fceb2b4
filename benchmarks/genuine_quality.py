"""Model quality on the genuine Mercari rows: 5-fold cross-validation of the real pipeline against
references fitted on exactly the same rows, in the same run.

The 7,000 rows of ../shared/data/mercari_train_sample.tsv are cut into 5 folds by a hash of
train_id. For each fold, the other four are written to a file, ingested into a fresh warehouse
and the main job runs raw_listings -> champion with its default budget (the job holds out its
own validation and test splits, as it would in production); the fold is then scored by batch
scoring with the champion from the model store. The references learn from every labelled row
of the same four folds (rows priced 0, which validation rejects, are left out everywhere) and
are scored on the same fold's rows:

- global mean; the rules baseline; Ridge on word TF-IDF (alpha 3);
- the strong sparse-linear reference (benchmarks/reference.py) and the mean of it with LightGBM
  stacked on its out-of-fold predictions.

Prints per-fold RMSLE, mean +- sd, the paired difference shipped - strong reference, the range's
pooled coverage and width, and each fold's job time.

    .venv/bin/python benchmarks/genuine_quality.py [--folds 5] [--max-evals N] \
        [--output docs/benchmarks/genuine-quality.md]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# run as a script, `benchmarks.reference` (a sibling) needs the repository on the path
sys.path.insert(0, str(REPO))
from benchmarks.reference import ridge_tfidf_prices, strong_reference_log_prices  # noqa: E402
from price_alchemy_assets.definitions import MAIN_JOB, defs  # noqa: E402
from price_alchemy_assets.defs.resources import resources_under  # noqa: E402
from price_alchemy_assets.model.baseline import RulesBaseline  # noqa: E402
from price_alchemy_assets.model.metrics import rmsle  # noqa: E402
from price_alchemy_assets.model.scoring import score_file  # noqa: E402
from price_alchemy_assets.model.split import hash_position  # noqa: E402
from price_alchemy_assets.warehouse.ingest import ingest_listings_file  # noqa: E402

GENUINE = REPO.parent / "shared" / "data" / "mercari_train_sample.tsv"


SHIPPED = "shipped model"
STRONG = "strong sparse-linear reference"
STACKED = "strong reference + stacked LightGBM"


def read_genuine() -> pd.DataFrame:
    return pd.read_csv(GENUINE, sep="\t", dtype={"train_id": str}, keep_default_na=False, na_values=[""])


def write_tsv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, sep="\t", index=False, quoting=csv.QUOTE_MINIMAL)
    return path


def run_fold(rows: pd.DataFrame, held: pd.DataFrame, root: Path, tuning: dict) -> dict:
    """The real pipeline on `rows`, scored on `held`; the references on the same rows."""
    resources = resources_under(root)
    ingest_listings_file(write_tsv(rows, root / "train.tsv"), resources["warehouse"].open())
    started = time.perf_counter()
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(MAIN_JOB).execute_in_process(
            instance=instance,
            resources=resources,
            run_config={"ops": {"tuned_model": {"config": tuning}}} if tuning else {},
        )
    job_seconds = time.perf_counter() - started
    if not result.success:
        raise SystemExit(f"the main job failed on fold {root.name}")
    record, model = resources["model_store"].store().load_champion()
    scored = score_file(write_tsv(held, root / "held.tsv"), model, root / "predictions.csv")
    predictions = pd.read_csv(scored.output, dtype={"train_id": str}).set_index("train_id")
    labelled, target = rows[rows["price"] > 0], held[held["price"] > 0]
    predictions = predictions.loc[target["train_id"]]
    fitted_mean = np.expm1(np.log1p(labelled["price"]).mean())
    strong, stacked = strong_reference_log_prices(labelled, target)
    prices = {
        "global mean": np.full(len(target), fitted_mean),
        "rules baseline": RulesBaseline().fit(labelled).predict(target),
        "Ridge on word TF-IDF (alpha 3)": ridge_tfidf_prices(labelled, target),
        STRONG: np.expm1(strong),
        STACKED: np.expm1(stacked),
        SHIPPED: predictions["price"].to_numpy(),
    }
    actual = target["price"].to_numpy()
    return {
        "rmsle": {name: rmsle(actual, values) for name, values in prices.items()},
        "inside": (actual >= predictions["price_low"].to_numpy()) & (actual <= predictions["price_high"].to_numpy()),
        "width": (predictions["price_high"] - predictions["price_low"]).to_numpy(),
        "job_seconds": job_seconds,
        "rows": len(target),
        "weights": model.blend.weights,
        "held_out_rows": model.info.get("held_out_rows"),
        "coverage_promised": model.interval_coverage,
        "version": record.version,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-evals", type=int, default=None, help="hyperopt trials (default: the asset default)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if not GENUINE.is_file():
        sys.exit(f"genuine rows not found at {GENUINE} (../shared/data is absent)")
    genuine = read_genuine()
    fold = np.minimum(
        (hash_position(genuine["train_id"], salt="genuine-quality-folds") * args.folds).astype(int), args.folds - 1
    )
    tuning = {"budget": {"max_evals": args.max_evals}} if args.max_evals else {}
    results = []
    for k in range(args.folds):
        with tempfile.TemporaryDirectory(prefix=f"price-alchemy-quality-{k}-") as folder:
            results.append(run_fold(genuine[fold != k], genuine[fold == k], Path(folder), tuning))
        print(f"fold {k + 1}: " + ", ".join(f"{n} {v:.4f}" for n, v in results[-1]["rmsle"].items()), flush=True)
    report = render(results, args)
    print(report)
    if args.output:
        args.output.write_text(report)


def render(results: list[dict], args) -> str:
    folds = pd.DataFrame([r["rmsle"] for r in results], index=[f"fold {k + 1}" for k in range(len(results))]).T
    table = folds.assign(mean=folds.mean(axis=1), sd=folds.std(axis=1))
    difference, versus_stacked = folds.loc[SHIPPED] - folds.loc[STRONG], folds.loc[SHIPPED] - folds.loc[STACKED]
    inside = np.concatenate([r["inside"] for r in results])
    widths = np.concatenate([r["width"] for r in results])
    promised = results[0]["coverage_promised"]
    jobs = ", ".join(f"{r['job_seconds']:.0f}" for r in results)
    weights = pd.DataFrame([r["weights"] for r in results]).mean().round(2).to_dict()
    met = difference.mean() <= -0.010 and (difference < 0).sum() >= len(results) - 1
    covered = 0.77 <= inside.mean() <= 0.83
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `.venv/bin/python benchmarks/genuine_quality.py"
        f"{' --max-evals ' + str(args.max_evals) if args.max_evals else ''}"
        " --output docs/benchmarks/genuine-quality.md` "
        f"on {GENUINE.name}: {len(results)} folds by a hash of train_id "
        f"({', '.join(str(r['rows']) for r in results)} scored listings). In each fold the real pipeline "
        f"(ingest, the main job with {'its default budget' if not args.max_evals else f'{args.max_evals} trials'}, "
        f"batch scoring) learns from the other folds; the references learn from the same rows.\n\n"
        "RMSLE on the held-out fold (lower is better):\n\n"
        + table.to_markdown(floatfmt=".4f")
        + "\n\n"
        + f"- Shipped - strong reference: {difference.mean():+.4f} +- {difference.std():.4f} "
        f"(lower on {(difference < 0).sum()} of {len(results)} folds; per fold "
        + ", ".join(f"{d:+.4f}" for d in difference)
        + f"). Target (<= -0.010 on the mean, lower on >= {len(results) - 1} folds): {'met' if met else 'NOT met'}.\n"
        f"- Shipped - strong reference with stacked LightGBM: {versus_stacked.mean():+.4f}"
        f" +- {versus_stacked.std():.4f} "
        f"(lower on {(versus_stacked < 0).sum()} of {len(results)}).\n"
        f"- The {promised:.0%} range covers {inside.mean():.1%} of the {len(inside):,} pooled held-out prices "
        f"(target 77-83 %: {'met' if covered else 'NOT met'}); median width ${np.median(widths):.2f}.\n"
        f"- Job wall time per fold (raw_listings -> champion, seconds): {jobs}.\n"
        f"- Mean blend weights: {weights}.\n"
    )


if __name__ == "__main__":
    main()
