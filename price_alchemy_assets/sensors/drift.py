"""The drift sensor: compares (a) listings that reached the warehouse after the champion's
training watermark and (b) the live traffic the champion priced (the service's prediction log)
with the champion's reference profile, and asks for a retraining run when either drifts.

Thin wiring around price_alchemy_assets.monitoring: a tick runs GROUP BY queries in the
warehouse and the prediction log (never reads whole tables), records each evaluation as a
`drift_report` materialization per source, and keeps in its cursor what it last triggered on,
so a restart of the daemon neither repeats nor forgets a trigger. Live traffic triggers at most
one run per champion: traffic keeps arriving, and retraining answers it once.
"""

import json
import os
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import dagster as dg
from sqlalchemy.exc import SQLAlchemyError

from price_alchemy_assets.jobs import main_job
from price_alchemy_assets.listings.profile import OOV_SAMPLE, warehouse_profile
from price_alchemy_assets.model.bundle import PriceModel
from price_alchemy_assets.model.metrics import rmsle
from price_alchemy_assets.model.store import ModelStore
from price_alchemy_assets.monitoring.drift import DriftReport, LabelledError, compare
from price_alchemy_assets.monitoring.traffic import PredictionLogReader
from price_alchemy_assets.resources import (
    DriftMonitorResource,
    ModelStoreResource,
    PredictionLogResource,
    WarehouseResource,
)
from price_alchemy_assets.warehouse import WarehouseBusy

DRIFT_REPORT = dg.AssetKey("drift_report")
drift_report = dg.AssetSpec(
    DRIFT_REPORT,
    group_name="monitoring",
    description="Each drift evaluation of new listings and of live traffic against the champion's training profile.",
    kinds={"python"},
)
NEW_LISTINGS, LIVE_TRAFFIC = "new listings", "live traffic"


def _champion_model(store: ModelStore, path: str) -> PriceModel:
    """The code server keeps serving ticks: load each champion once (a tick makes a new store)."""
    return _loaded_bundle(store.bundle_dir(path))


@lru_cache(maxsize=2)
def _loaded_bundle(bundle_dir: Path) -> PriceModel:
    return PriceModel.load(bundle_dir)


def _report_event(source: str, champion_version: str, report: DriftReport, since: str) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(
        DRIFT_REPORT,
        description=f"{source}: {'; '.join(report.reasons) or 'no drift'}",
        metadata={
            "source": source,
            "champion_version": champion_version,
            "since": since,
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
    job=main_job,
    minimum_interval_seconds=int(os.environ.get("PRICE_ALCHEMY_DRIFT_SENSOR_SECONDS") or 60),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Retrains when new listings or live traffic drift from the champion's training profile.",
)
def listings_drift_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    model_store: ModelStoreResource,
    drift_monitor: DriftMonitorResource,
    prediction_log: PredictionLogResource,
) -> dg.SensorResult | dg.SkipReason:
    store = model_store.store()
    champion = store.champion()
    if champion is None:
        return dg.SkipReason("no champion yet: nothing to compare new listings with")
    reference, info = store.read_reference(champion.model_path)
    if reference is None or not info.get("ingested_through"):
        return dg.SkipReason(f"champion {champion.version} has no training profile; retrain to monitor drift")
    watermark = datetime.fromisoformat(info["ingested_through"])
    thresholds = drift_monitor.thresholds()

    listings = warehouse.open()
    try:
        batch = warehouse_profile(listings, ingested_after=watermark)
        sample = listings.sample_labelled(drift_monitor.labelled_sample, ingested_after=watermark)
    except WarehouseBusy as busy:
        return dg.SkipReason(f"warehouse busy, trying again next tick: {busy}")
    labelled = None
    if len(sample):
        model = _champion_model(store, champion.model_path)
        batch = batch.with_oov_rate(model.featurizer, sample)
        if len(sample) >= thresholds.min_labelled and "rmsle" in champion.metrics:
            predicted = model.predict(sample)["price"]
            labelled = LabelledError(len(sample), rmsle(sample["price"], predicted), float(champion.metrics["rmsle"]))
    listings_report = compare(reference, batch, thresholds, labelled)

    try:
        with prediction_log.reader() as traffic_log:
            traffic = traffic_log.profile(champion.version)
            recent = traffic_log.latest(champion.version, OOV_SAMPLE) if traffic.rows else None
        if recent is not None:
            traffic = traffic.with_oov_rate(_champion_model(store, champion.model_path).featurizer, recent)
    except SQLAlchemyError as error:  # new listings are still judged; the tick says what it could not read
        context.log.warning("live traffic not evaluated, the prediction log is unreachable: %s", error)
        traffic = PredictionLogReader.no_traffic()
    traffic_report = compare(reference, traffic, thresholds)

    reports = {NEW_LISTINGS: listings_report, LIVE_TRAFFIC: traffic_report}
    for source, report in reports.items():
        context.log.info(
            "drift of %d %s vs champion %s: %s",
            report.rows,
            source,
            champion.version,
            "; ".join(report.reasons) or "none",
        )
    events = [
        _report_event(NEW_LISTINGS, champion.version, listings_report, f"ingested after {watermark.isoformat()}"),
        _report_event(LIVE_TRAFFIC, champion.version, traffic_report, f"served by {champion.version}"),
    ]

    def skipped(reason: str) -> dg.SensorResult:
        """A tick without a run still records its drift_reports and keeps the cursor."""
        return dg.SensorResult(skip_reason=reason, asset_events=events, cursor=context.cursor)

    drifted = [source for source, report in reports.items() if report.drifted]
    if not drifted:
        return skipped("no drift in new listings or live traffic")
    triggered = (json.loads(context.cursor) if context.cursor else {}).get("triggered") or {}
    same_champion = triggered.get("champion") == champion.version
    fresh = [
        source
        for source in drifted
        if not same_champion
        or (source == NEW_LISTINGS and batch.rows > triggered.get("rows", -1))
        or (source == LIVE_TRAFFIC and not triggered.get("traffic"))
    ]
    if not fresh:
        return skipped(f"drift already triggered run {triggered['run_key']} for these listings")
    now = datetime.now(UTC)
    if triggered and now - datetime.fromisoformat(triggered["at"]) < timedelta(minutes=drift_monitor.cooldown_minutes):
        return skipped(f"drift, but in cooldown since {triggered['at']}")
    run_key = f"drift-{champion.version}-{batch.rows}-{traffic.rows}"
    reasons = "; ".join(f"{source}: {reason}" for source in fresh for reason in reports[source].reasons)
    request = dg.RunRequest(
        run_key=run_key,
        run_config=drift_monitor.retrain_run_config(),
        tags={
            "price_alchemy/trigger": ",".join(
                {NEW_LISTINGS: "listings_drift", LIVE_TRAFFIC: "traffic_drift"}[source] for source in fresh
            ),
            "price_alchemy/champion": champion.version,
            "price_alchemy/drift_reasons": reasons[:1000],
            "price_alchemy/new_listings": str(batch.rows),
            "price_alchemy/traffic_listings": str(traffic.rows),
        },
    )
    cursor = {
        "triggered": {
            "champion": champion.version,
            "rows": batch.rows if NEW_LISTINGS in fresh else triggered.get("rows", -1) if same_champion else -1,
            "traffic": LIVE_TRAFFIC in fresh or (same_champion and bool(triggered.get("traffic"))),
            "run_key": run_key,
            "at": now.isoformat(),
        }
    }
    return dg.SensorResult(run_requests=[request], asset_events=events, cursor=json.dumps(cursor))
