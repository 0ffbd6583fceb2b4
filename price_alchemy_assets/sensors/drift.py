"""The drift sensor: compares listings that reached the warehouse after the champion's training
watermark with the champion's reference profile, and asks for a retraining run when they drift.

Thin wiring around price_alchemy_assets.monitoring: a tick runs GROUP BY queries in the
warehouse (never reads whole tables), records every evaluation as a `drift_report`
materialization, and keeps in its cursor what it last triggered on, so a restart of the daemon
neither repeats nor forgets a trigger.
"""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from price_alchemy_assets.jobs import main_job
from price_alchemy_assets.model.bundle import PriceModel, read_reference
from price_alchemy_assets.model.metrics import rmsle
from price_alchemy_assets.monitoring.drift import LabelledError, compare
from price_alchemy_assets.monitoring.profile import warehouse_profile
from price_alchemy_assets.resources import DriftMonitorResource, ModelStoreResource, WarehouseResource

DRIFT_REPORT = dg.AssetKey("drift_report")
drift_report = dg.AssetSpec(
    DRIFT_REPORT,
    group_name="monitoring",
    description="Each drift evaluation of new listings against the champion's training profile.",
    kinds={"python"},
)


@dg.sensor(
    job=main_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Retrains when listings ingested after the champion's training drift from its profile.",
)
def listings_drift_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    model_store: ModelStoreResource,
    drift_monitor: DriftMonitorResource,
) -> dg.SensorResult | dg.SkipReason:
    champion = model_store.store().champion()
    if champion is None:
        return dg.SkipReason("no champion yet: nothing to compare new listings with")
    reference, info = read_reference(champion.model_path)
    if reference is None or not info.get("ingested_through"):
        return dg.SkipReason(f"champion {champion.version} has no training profile; retrain to monitor drift")
    watermark = datetime.fromisoformat(info["ingested_through"])
    listings = warehouse.open()
    batch = warehouse_profile(listings, ingested_after=watermark)
    thresholds = drift_monitor.thresholds()
    labelled = None
    sample = listings.sample_labelled(drift_monitor.labelled_sample, ingested_after=watermark)
    if len(sample) >= thresholds.min_labelled and "rmsle" in champion.metrics:
        predicted = PriceModel.load(champion.model_path).predict(sample)["price"]
        labelled = LabelledError(len(sample), rmsle(sample["price"], predicted), float(champion.metrics["rmsle"]))
    report = compare(reference, batch, thresholds, labelled)
    cursor = json.loads(context.cursor) if context.cursor else {}
    context.log.info(
        "drift of %d listings ingested after %s vs champion %s: %s",
        batch.rows,
        watermark.isoformat(),
        champion.version,
        "; ".join(report.reasons) or "none",
    )
    event = dg.AssetMaterialization(
        DRIFT_REPORT,
        metadata={
            "champion_version": champion.version,
            "ingested_after": watermark.isoformat(),
            "new_listings": batch.rows,
            "drifted": report.drifted,
            "report": dg.MetadataValue.md(report.to_markdown()),
            "max_psi": max((f.psi for f in report.features), default=0.0),
            "unseen_category_share": report.unseen_category_share,
            "unseen_brand_share": report.unseen_brand_share,
            "labelled_rows": report.labelled_rows,
            "labelled_rmsle": report.labelled_rmsle if report.labelled_rmsle is not None else float("nan"),
        },
    )

    def skipped(reason: str) -> dg.SensorResult:
        """A tick without a run still records its drift_report and keeps the cursor."""
        return dg.SensorResult(skip_reason=reason, asset_events=[event], cursor=context.cursor)

    if not report.drifted:
        return skipped("no drift: " + ("; ".join(report.reasons) or "all within thresholds"))
    now = datetime.now(UTC)
    triggered = cursor.get("triggered")
    if triggered and triggered["champion"] == champion.version and batch.rows <= triggered["rows"]:
        return skipped(f"drift already triggered run {triggered['run_key']} for these listings")
    if triggered and now - datetime.fromisoformat(triggered["at"]) < timedelta(minutes=drift_monitor.cooldown_minutes):
        return skipped(f"drift, but in cooldown since {triggered['at']}")
    run_key = f"drift-{champion.version}-{batch.rows}"
    request = dg.RunRequest(
        run_key=run_key,
        tags={
            "price_alchemy/trigger": "listings_drift",
            "price_alchemy/champion": champion.version,
            "price_alchemy/drift_reasons": "; ".join(report.reasons)[:1000],
            "price_alchemy/new_listings": str(batch.rows),
        },
    )
    cursor = {
        "triggered": {"champion": champion.version, "rows": batch.rows, "run_key": run_key, "at": now.isoformat()}
    }
    return dg.SensorResult(run_requests=[request], asset_events=[event], cursor=json.dumps(cursor))
