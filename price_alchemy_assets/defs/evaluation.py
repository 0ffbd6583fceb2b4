"""Evaluation and champion: tuned_model -> eval_report (beside the rules baseline and the champion,
same rows) -> champion (the gate), and the blocking checks on eval_report: a candidate that fails
them never reaches `champion`.
"""

import base64
import tempfile
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from price_alchemy_assets.defs.code_versions import source_version
from price_alchemy_assets.defs.features_and_model import MODEL_GROUP, MODEL_PACKAGE, MODEL_VERSION, CandidateModel
from price_alchemy_assets.defs.resources import MlflowTrackingResource, ModelStoreResource
from price_alchemy_assets.model.baseline import RulesBaseline
from price_alchemy_assets.model.dataset import TrainingData
from price_alchemy_assets.model.evaluation import (
    CANDIDATE,
    RULES,
    EvalReport,
    evaluate,
    plot_report,
    should_promote,
    worth_a_shadow_trial,
)
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION
from price_alchemy_assets.model.store import ChampionRecord, now_iso

EVALUATION_VERSION = source_version(*(MODEL_PACKAGE + name for name in ("evaluation", "metrics", "baseline")), __name__)
CHAMPION_VERSION = source_version(MODEL_PACKAGE + "evaluation", MODEL_PACKAGE + "store", __name__)


class PromotionConfig(dg.Config):
    margin: float = Field(default=0.0, description="RMSLE the candidate must win by to replace the champion")
    challenger_within: float = Field(
        default=0.01,
        description="a candidate kept out that lost by less than this RMSLE becomes the challenger the "
        "service scores in shadow (0: no challenger)",
    )


def significant(value: float, digits: int = 4) -> float:
    """A metric as the UI shows it: 0.5123, not 0.5123456789012345."""
    return float(f"{value:.{digits}g}")


def per_category_table(report: EvalReport) -> dg.TableMetadataValue:
    """RMSLE by top-level category, one column per model, as a sortable table in the UI."""
    frame = report.per_category
    columns = [dg.TableColumn("category", "string"), dg.TableColumn("rows", "int")]
    columns += [dg.TableColumn(name, "float") for name in frame.columns[2:]]
    records = [
        dg.TableRecord(
            {"category": row["category"], "rows": int(row["rows"])}
            | {name: significant(row[name]) for name in frame.columns[2:]}
        )
        for row in frame.to_dict("records")
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


@dg.asset(group_name=MODEL_GROUP, io_manager_key="record_io_manager", code_version=EVALUATION_VERSION)
def eval_report(
    context: dg.AssetExecutionContext,
    tfidf_features: TrainingData,
    tuned_model: CandidateModel,
    model_store: ModelStoreResource,
    mlflow: MlflowTrackingResource,
) -> dg.Output[dict]:
    """The candidate on the test split beside the rules baseline and the champion, same rows."""
    data, store, tracker = tfidf_features, model_store.store(), mlflow.tracker()
    test = data.rows(TEST)
    candidate = store.load(tuned_model.version).predict(test)
    rules = RulesBaseline().fit(pd.concat([data.rows(TRAIN), data.rows(VALIDATION)])).predict(test)
    current = store.load_champion()
    champion_prediction = current[1].predict(test) if current else None
    report = evaluate(test, candidate, rules, champion_prediction)
    with tempfile.TemporaryDirectory() as folder:
        plots = plot_report(test, candidate, report, Path(folder))
        tracker.log_artifacts(tuned_model.mlflow_run_id, plots, "eval_report")
        pictures = "\n\n".join(
            f"![{path.stem}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})" for path in plots
        )
    tracker.client.log_metric(tuned_model.mlflow_run_id, "test_rmsle", report.metrics[CANDIDATE]["rmsle"])
    summary = {
        "candidate_version": tuned_model.version,
        "champion_version": current[0].version if current else None,
        "metrics": report.metrics,
        "prediction_checks": {
            "nan": int(candidate.isna().sum().sum()),
            "negative": int((candidate < 0).sum().sum()),
            "range_inverted": int(
                ((candidate["price_low"] > candidate["price"]) | (candidate["price"] > candidate["price_high"])).sum()
            ),
            "min_price": float(candidate["price"].min()),
            "max_price": float(candidate["price"].max()),
            "max_actual_price": float(test["price"].max()),
        },
    }
    run_url = tracker.run_url(tuned_model.mlflow_run_id)
    metadata = {
        "report": dg.MetadataValue.md(report.markdown()),
        "plots": dg.MetadataValue.md(pictures),
        "rmsle_by_category": per_category_table(report),
        "test_rows": report.rows,
        "mlflow_run": dg.MetadataValue.url(run_url) if run_url else tuned_model.mlflow_run_id,
    }
    for name, metrics in report.metrics.items():
        metadata |= {f"{name}/{key}": significant(value) for key, value in metrics.items() if key != "rows"}
    context.log.info("eval report:\n%s", report.table().to_string())
    return dg.Output(summary, metadata=metadata)


CHAMPION_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=14), warn_window=timedelta(days=8))
"""A champion judged more than 8 days ago warns, 14 days fails: the weekly retraining (or drift) should
have judged a new candidate by then, whether or not it was promoted."""


@dg.asset(group_name=MODEL_GROUP, code_version=CHAMPION_VERSION, freshness_policy=CHAMPION_FRESHNESS)
def champion(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    eval_report: dict,
    tuned_model: CandidateModel,
    model_store: ModelStoreResource,
    mlflow: MlflowTrackingResource,
) -> dg.MaterializeResult:
    """The model a service should serve: the candidate, if it beats the champion on the same rows.
    Runs only after eval_report's blocking checks pass. A candidate kept out by a hair becomes the
    challenger instead (its own pointer and MLflow alias): the service scores it in shadow and
    online_evaluation decides on realized prices. Each judgement replaces the challenger."""
    store = model_store.store()
    promote, reason = should_promote(eval_report["metrics"], config.margin)
    challenge, challenge_reason = (
        (False, "") if promote else worth_a_shadow_trial(eval_report["metrics"], config.challenger_within)
    )
    context.log.info(f"{reason}; {challenge_reason}" if challenge_reason else reason)
    record = ChampionRecord(
        version=tuned_model.version,
        model_path=tuned_model.model_path,
        promoted_at=now_iso(),
        dagster_run_id=context.run_id,
        mlflow_run_id=tuned_model.mlflow_run_id,
        registered_model_version=tuned_model.registered_version,
        data_version=tuned_model.data_version,
        code_version=MODEL_VERSION,
        training_rows=tuned_model.training_rows,
        metrics=eval_report["metrics"][CANDIDATE],
    )
    tracker = mlflow.tracker() if tuned_model.registered_version else None
    if promote:
        store.promote(record)
        if tracker:
            tracker.set_champion(tuned_model.registered_version)
    if challenge:
        store.mark_challenger(record)
    else:  # a new champion, or a candidate far behind: the old challenger was judged against older data
        store.drop_challenger()
    if tracker:
        tracker.set_challenger(tuned_model.registered_version if challenge else None)
    current, challenger = store.champion(), store.challenger()
    return dg.MaterializeResult(
        metadata={
            "promoted": promote,
            "reason": reason,
            "challenger_version": challenger.version if challenger else "",
            "challenger_reason": challenge_reason,
            "champion_version": current.version if current else "",
            "champion_test_rmsle": float(current.metrics.get("rmsle", np.nan)) if current else float("nan"),
            "champion": dg.MetadataValue.json(asdict(current)) if current else dg.MetadataValue.json({}),
        }
    )


EVAL_REPORT = dg.AssetKey("eval_report")
MAX_PRICE_FACTOR = 10.0
_SPECS = [
    dg.AssetCheckSpec(
        "beats_rules_baseline",
        asset=EVAL_REPORT,
        blocking=True,
        description="Candidate RMSLE below the rules baseline's on the test split.",
    ),
    dg.AssetCheckSpec(
        "predictions_sane",
        asset=EVAL_REPORT,
        blocking=True,
        description="No NaN or negative predictions, ranges in order, prices in a sane range.",
    ),
]


@dg.multi_asset_check(specs=_SPECS, ins={"eval_report": dg.AssetIn("eval_report")})
def eval_report_checks(eval_report: dict):
    ours, rules = eval_report["metrics"][CANDIDATE]["rmsle"], eval_report["metrics"][RULES]["rmsle"]
    yield dg.AssetCheckResult(
        check_name="beats_rules_baseline",
        passed=bool(ours < rules),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"candidate_rmsle": ours, "rules_baseline_rmsle": rules},
    )
    checks = eval_report["prediction_checks"]
    ceiling = MAX_PRICE_FACTOR * checks["max_actual_price"]
    sane = (
        checks["nan"] == 0
        and checks["negative"] == 0
        and checks["range_inverted"] == 0
        and checks["min_price"] > 0
        and checks["max_price"] <= ceiling
    )
    yield dg.AssetCheckResult(
        check_name="predictions_sane",
        passed=bool(sane),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={**checks, "price_ceiling": ceiling},
    )
