"""online_evaluation: the realized error of the prices the service suggested (monitoring/online_evaluation.py),
with a check that warns when the champion does worse on realized prices than it did offline, and
the challenger scored in shadow against the champion on the same listings (its verdict is what
defs/challenger.py's sensor promotes on)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from price_alchemy_assets.defs.resources import ModelStoreResource, PredictionLogResource, WarehouseResource
from price_alchemy_assets.monitoring.online_evaluation import compare_challenger, evaluate_online, match_realized

ONLINE_EVALUATION = "online_evaluation"
REALIZED_ERROR_CHECK = "realized_error_within_margin"
PROMOTE, KEEP = "promote", "keep"


class OnlineEvaluationConfig(dg.Config):
    window_days: float = Field(default=28.0, description="suggestions logged this many days back are matched")
    margin: float = Field(
        default=0.05, description="warn when the champion's realized RMSLE exceeds its offline RMSLE by more"
    )
    min_matched: int = Field(
        default=30, description="realized prices the champion (and the challenger, paired) needs before it is judged"
    )
    alpha: float = Field(
        default=0.05, gt=0, lt=1, description="the paired test's significance level for promoting the challenger"
    )


@dg.asset(
    name=ONLINE_EVALUATION,
    group_name="monitoring",
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec(
            REALIZED_ERROR_CHECK,
            asset=ONLINE_EVALUATION,
            description="The champion's RMSLE on realized prices is within the margin of its offline RMSLE.",
        )
    ],
)
def online_evaluation(
    context: dg.AssetExecutionContext,
    config: OnlineEvaluationConfig,
    warehouse: WarehouseResource,
    prediction_log: PredictionLogResource,
    model_store: ModelStoreResource,
):
    """Served suggestions matched with the prices the same listings asked when ingested later:
    per model version and week, matched count, RMSLE, share inside the range, sellers' deviation."""
    since = datetime.now(UTC) - timedelta(days=config.window_days)
    with prediction_log.reader() as log:
        served = log.served(since)
        shadowed = log.shadowed(since)
    listings = warehouse.open().sample_labelled(None, ingested_after=since)
    matched = match_realized(served, listings)
    report = evaluate_online(matched)
    store = model_store.store()
    champion, challenger = store.champion(), store.challenger()
    offline = float(champion.metrics["rmsle"]) if champion and "rmsle" in champion.metrics else None
    realized = report.rmsle_of(champion.version) if champion else None
    matched_by_champion = report.matched_of(champion.version) if champion else 0
    verdict, reason, comparison = KEEP, "no challenger", {}
    if champion and challenger:
        paired = compare_challenger(matched, match_realized(shadowed, listings), champion.version, challenger.version)
        promote, reason = paired.verdict(config.min_matched, config.alpha)
        verdict = PROMOTE if promote else KEEP
        comparison = {
            "challenger_pairs": paired.pairs,
            "challenger_paired_rmsle": paired.challenger_rmsle,
            "champion_paired_rmsle": paired.champion_rmsle,
            "challenger_closer": paired.challenger_wins,
            "challenger_p_value": paired.p_value,
        }
    context.log.info(reason)
    yield dg.MaterializeResult(
        metadata={
            "challenger_version": challenger.version if challenger else "",
            "challenger_verdict": verdict,
            "challenger_reason": reason,
            **comparison,
            "served": len(served),
            "matched": len(matched),
            "champion_version": champion.version if champion else "",
            "champion_offline_rmsle": offline if offline is not None else float("nan"),
            "champion_realized_rmsle": realized if realized is not None else float("nan"),
            "champion_matched": matched_by_champion,
            "report": dg.MetadataValue.md(report.to_markdown()),
            "by_week": dg.MetadataValue.json(report.by_week.to_dict("records")),
        }
    )
    judged = offline is not None and realized is not None and matched_by_champion >= config.min_matched
    yield dg.AssetCheckResult(
        check_name=REALIZED_ERROR_CHECK,
        passed=not judged or realized <= offline + config.margin,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"champion {champion.version}: realized RMSLE {realized:.4f} on {matched_by_champion} listings, "
            f"offline {offline:.4f}, margin {config.margin}"
            if judged
            else f"not judged: {matched_by_champion} realized prices for the champion, {config.min_matched} needed"
        ),
        metadata={"matched": matched_by_champion, "margin": config.margin},
    )


online_evaluation_job = dg.define_asset_job(
    "online_evaluation_job",
    selection=dg.AssetSelection.assets(ONLINE_EVALUATION),
    description="Match served suggestions with the prices listings asked, and check the champion's realized error.",
)
daily_online_evaluation_schedule = dg.ScheduleDefinition(
    name="daily_online_evaluation",
    job=online_evaluation_job,
    cron_schedule="30 4 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 04:30: how the prices served in the last weeks did against the prices listings asked.",
)
