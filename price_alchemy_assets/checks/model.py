"""Blocking checks on eval_report: a candidate that fails them never reaches `champion`."""

import dagster as dg

from price_alchemy_assets.model.evaluation import CANDIDATE, RULES

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
