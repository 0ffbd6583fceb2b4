"""The drift sensor: each tick, monitoring.drift_watch judges new listings and live traffic
against the champion's training profile and decides whether to retrain; the sensor records each
judgement as a `drift_report` materialization per source and turns a decision to retrain into a
run of the main job, and a run of online_evaluation beside it.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from price_alchemy_assets.defs.jobs import main_job
from price_alchemy_assets.defs.online_evaluation import ONLINE_EVALUATION, online_evaluation_job
from price_alchemy_assets.defs.resources import (
    DriftMonitorResource,
    ModelStoreResource,
    PredictionLogResource,
    WarehouseResource,
)
from price_alchemy_assets.monitoring.drift_watch import TRIGGER_NAMES, SourceReport, watch_drift
from price_alchemy_assets.settings import settings_at_start

DRIFT_REPORT = dg.AssetKey("drift_report")
drift_report = dg.AssetSpec(
    DRIFT_REPORT,
    group_name="monitoring",
    description="Each drift evaluation of new listings and of live traffic against the champion's training profile.",
    kinds={"python"},
)


def _report_event(source: str, champion_version: str, seen: SourceReport) -> dg.AssetMaterialization:
    report = seen.report
    return dg.AssetMaterialization(
        DRIFT_REPORT,
        description=f"{source}: {'; '.join(report.reasons) or 'no drift'}",
        metadata={
            "source": source,
            "champion_version": champion_version,
            "since": seen.rows_judged,
            "new_listings": report.rows,
            "drifted": report.drifted,
            "report": dg.MetadataValue.md(report.to_markdown()),
            "max_psi": max((f.psi for f in report.features), default=0.0),
            "unseen_category_share": report.unseen_category_share,
            "unseen_brand_share": report.unseen_brand_share,
            "oov_rate": report.oov_rate if report.oov_rate is not None else float("nan"),
            "labelled_rows": report.labelled_rows,
            "labelled_rmsle": report.labelled_rmsle if report.labelled_rmsle is not None else float("nan"),
        },
    )


@dg.sensor(
    jobs=[main_job, online_evaluation_job],
    minimum_interval_seconds=settings_at_start().drift.sensor_seconds,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Retrains when new listings or live traffic drift from the champion's training profile, "
    "and evaluates the prices served so far against the prices listings asked (online_evaluation).",
)
def listings_and_traffic_drift_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    model_store: ModelStoreResource,
    drift_monitor: DriftMonitorResource,
    prediction_log: PredictionLogResource,
) -> dg.SensorResult | dg.SkipReason:
    """The cursor remembers the last trigger, so a restarted daemon neither repeats nor forgets one."""
    last_trigger = (json.loads(context.cursor) if context.cursor else {}).get("triggered")
    verdict = watch_drift(
        model_store.store(),
        warehouse.open(),
        prediction_log.reader(),
        drift_monitor.watch_settings(),
        last_trigger,
        datetime.now(UTC),
    )
    for warning in verdict.warnings:
        context.log.warning(warning)
    if not verdict.reports:
        return dg.SkipReason(verdict.decision)
    for source, seen in verdict.reports.items():
        reasons = "; ".join(seen.report.reasons) or "none"
        context.log.info(
            "drift of %d %s vs champion %s: %s", seen.report.rows, source, verdict.champion_version, reasons
        )
    events = [_report_event(source, verdict.champion_version, seen) for source, seen in verdict.reports.items()]
    cursor = json.dumps({"triggered": verdict.trigger}) if verdict.trigger else context.cursor
    if verdict.retraining is None:  # the tick still records its drift_reports
        return dg.SensorResult(skip_reason=verdict.decision, asset_events=events, cursor=cursor)
    retraining = verdict.retraining
    trigger = ",".join(TRIGGER_NAMES[source] for source in retraining.sources)
    request = dg.RunRequest(
        job_name=main_job.name,
        run_key=retraining.run_key,
        run_config=drift_monitor.retrain_run_config(),
        tags={
            "price_alchemy/trigger": trigger,
            "price_alchemy/champion": verdict.champion_version,
            "price_alchemy/drift_reasons": retraining.reasons[:1000],
            "price_alchemy/new_listings": str(retraining.new_listings),
            "price_alchemy/traffic_listings": str(retraining.traffic_listings),
        },
    )
    # drift says the market moved: how did the prices served before it do against what sold since?
    online = dg.RunRequest(
        job_name=online_evaluation_job.name,
        run_key=f"{ONLINE_EVALUATION}-{retraining.run_key}",
        tags={"price_alchemy/trigger": trigger, "price_alchemy/champion": verdict.champion_version},
    )
    return dg.SensorResult(run_requests=[request, online], asset_events=events, cursor=cursor)
