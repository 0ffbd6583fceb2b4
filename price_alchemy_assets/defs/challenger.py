"""The challenger's way to the champion: online_evaluation judges it against the champion on the
same listings' realized prices (a paired test); when its verdict is to promote, this sensor asks
for a run of `promote_challenger_job`, which swaps the champion pointer the way the gate does
(ModelStore.promote_challenger) and moves the MLflow alias. The service follows the pointer."""

import dagster as dg
from pydantic import Field

from price_alchemy_assets.defs.online_evaluation import ONLINE_EVALUATION, PROMOTE
from price_alchemy_assets.defs.resources import MlflowTrackingResource, ModelStoreResource

CHAMPION = dg.AssetKey("champion")


class ChallengerPromotionConfig(dg.Config):
    challenger_version: str = Field(
        description="the challenger judged better; nothing happens if it is no longer the challenger"
    )
    reason: str = Field(default="", description="why: online_evaluation's verdict")


@dg.op(description="Make the challenger the champion: one pointer swap, then the MLflow aliases.")
def promote_challenger(
    context: dg.OpExecutionContext,
    config: ChallengerPromotionConfig,
    model_store: ModelStoreResource,
    mlflow: MlflowTrackingResource,
) -> None:
    record = model_store.store().promote_challenger(config.challenger_version, context.run_id)
    if record is None:
        context.log.warning(f"{config.challenger_version} is no longer the challenger: nothing promoted")
        return
    if record.registered_model_version:
        mlflow.tracker().set_champion(record.registered_model_version)
    context.log_event(
        dg.AssetMaterialization(
            CHAMPION,
            description=f"challenger {record.version} promoted on realized prices",
            metadata={
                "promoted": True,
                "reason": config.reason,
                "champion_version": record.version,
                "champion_test_rmsle": float(record.metrics.get("rmsle", float("nan"))),
                "promoted_from": "challenger",
            },
        )
    )
    context.log.info(f"challenger {record.version} is the champion: {config.reason}")


@dg.job(description="Promote the challenger that online_evaluation judged better on realized prices.")
def promote_challenger_job():
    promote_challenger()


@dg.asset_sensor(
    asset_key=dg.AssetKey(ONLINE_EVALUATION),
    job=promote_challenger_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Promotes the challenger when online_evaluation's paired test on realized prices says it is better.",
)
def challenger_promotion_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    materialization = asset_event.asset_materialization
    metadata = {key: value.value for key, value in (materialization.metadata if materialization else {}).items()}
    if metadata.get("challenger_verdict") != PROMOTE:
        return dg.SkipReason(f"online_evaluation: {metadata.get('challenger_reason', 'no verdict')}")
    version, reason = metadata["challenger_version"], metadata["challenger_reason"]
    return dg.RunRequest(
        run_key=f"promote-{version}-{asset_event.run_id}",
        run_config={"ops": {"promote_challenger": {"config": {"challenger_version": version, "reason": reason}}}},
        tags={"price_alchemy/trigger": "online_evaluation", "price_alchemy/challenger": version},
    )
