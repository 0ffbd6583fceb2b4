"""The drift watch: is the champion still pricing the market it learned from?

Two sources are compared with the champion's training profile: new listings (in the warehouse,
ingested after its training watermark; with the champion's error on those that carry a price)
and live traffic (what the service was asked to price, from the prediction log). Only GROUP BY
queries run, never reads of whole tables. A drifted source asks for retraining once per champion:
new listings again only when more of them arrived, live traffic once (it keeps arriving, and one
retraining answers it), and never within the cooldown of the last trigger.

No Dagster here: the drift sensor (defs/drift.py) hands over the last trigger it remembers,
and turns the verdict into drift_report materializations, a run request and its new cursor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from price_alchemy_assets.listings.profile import OOV_SAMPLE, ListingsProfile, warehouse_profile
from price_alchemy_assets.model.bundle import PriceModel
from price_alchemy_assets.model.metrics import rmsle
from price_alchemy_assets.model.store import ChampionRecord, ModelStore
from price_alchemy_assets.monitoring.drift import DriftReport, LabelledError, compare
from price_alchemy_assets.monitoring.drift_thresholds import DriftWatchSettings
from price_alchemy_assets.monitoring.traffic import PredictionLogReader
from price_alchemy_assets.warehouse import Warehouse, WarehouseBusy

NEW_LISTINGS, LIVE_TRAFFIC = "new listings", "live traffic"
TRIGGER_NAMES = {NEW_LISTINGS: "listings_drift", LIVE_TRAFFIC: "traffic_drift"}
"""How a retraining run names what triggered it."""


@dataclass(frozen=True)
class SourceReport:
    """One source's drift report and which rows it judged."""

    report: DriftReport
    rows_judged: str


@dataclass(frozen=True)
class Retraining:
    """A retraining the verdict asks for: its idempotency key, and what triggered it."""

    run_key: str
    sources: list[str]
    reasons: str
    new_listings: int
    traffic_listings: int


@dataclass(frozen=True)
class DriftVerdict:
    """`reports` is empty when nothing could be judged (no champion, no profile, a busy warehouse);
    `decision` says why there is, or is not, a retraining; `trigger` is what to remember of the
    last trigger (unchanged without a retraining)."""

    decision: str
    champion_version: str | None = None
    reports: dict[str, SourceReport] = field(default_factory=dict)
    retraining: Retraining | None = None
    trigger: dict | None = None
    warnings: list[str] = field(default_factory=list)


def watch_drift(
    store: ModelStore,
    listings: Warehouse,
    traffic_log: PredictionLogReader,
    settings: DriftWatchSettings,
    last_trigger: dict | None,
    now: datetime,
) -> DriftVerdict:
    """Judge new listings and live traffic against the champion's training profile, and decide
    whether to retrain. `last_trigger` is the previous verdict's `trigger` (None at first)."""
    champion = store.champion()
    if champion is None:
        return DriftVerdict("no champion yet: nothing to compare new listings with", trigger=last_trigger)
    reference, info = store.read_reference(champion.model_path)
    if reference is None or not info.get("ingested_through"):
        return DriftVerdict(
            f"champion {champion.version} has no training profile; retrain to monitor drift", trigger=last_trigger
        )
    watermark = datetime.fromisoformat(info["ingested_through"])
    try:
        batch = warehouse_profile(listings, ingested_after=watermark)
        sample = listings.sample_labelled(settings.labelled_sample, ingested_after=watermark)
    except WarehouseBusy as busy:
        return DriftVerdict(f"warehouse busy, trying again next tick: {busy}", trigger=last_trigger)
    labelled = None
    if len(sample):
        model = champion_model(store, champion)
        batch = batch.with_oov_rate(model.featurizer, sample)
        if len(sample) >= settings.thresholds.min_labelled and "rmsle" in champion.metrics:
            predicted = model.predict(sample)["price"]
            labelled = LabelledError(len(sample), rmsle(sample["price"], predicted), float(champion.metrics["rmsle"]))
    traffic, warnings = _traffic_profile(store, champion, traffic_log)
    reports = {
        NEW_LISTINGS: SourceReport(
            compare(reference, batch, settings.thresholds, labelled), f"ingested after {watermark.isoformat()}"
        ),
        LIVE_TRAFFIC: SourceReport(compare(reference, traffic, settings.thresholds), f"served by {champion.version}"),
    }
    decision, retraining, trigger = decide_retraining(
        champion.version, reports, batch.rows, traffic.rows, settings, last_trigger, now
    )
    return DriftVerdict(decision, champion.version, reports, retraining, trigger, warnings)


def _traffic_profile(
    store: ModelStore, champion: ChampionRecord, traffic_log: PredictionLogReader
) -> tuple[ListingsProfile, list[str]]:
    """What the champion was asked to price; no traffic (and a warning) when the log is unreachable:
    new listings are still judged."""
    try:
        with traffic_log as log:
            traffic = log.profile(champion.version)
            recent = log.latest(champion.version, OOV_SAMPLE) if traffic.rows else None
        if recent is not None:
            traffic = traffic.with_oov_rate(champion_model(store, champion).featurizer, recent)
        return traffic, []
    except SQLAlchemyError as error:
        return PredictionLogReader.no_traffic(), [
            f"live traffic not evaluated, the prediction log is unreachable: {error}"
        ]


def decide_retraining(
    champion: str,
    reports: dict[str, SourceReport],
    new_listings: int,
    traffic_listings: int,
    settings: DriftWatchSettings,
    last: dict | None,
    now: datetime,
) -> tuple[str, Retraining | None, dict | None]:
    """(why, the retraining or None, the trigger to remember): a drifted source retrains once per
    champion (new listings again when more arrived), never within the cooldown of `last`."""
    drifted = [source for source, seen in reports.items() if seen.report.drifted]
    if not drifted:
        return "no drift in new listings or live traffic", None, last
    last = last or {}
    same_champion = last.get("champion") == champion
    fresh = [
        source
        for source in drifted
        if not same_champion
        or (source == NEW_LISTINGS and new_listings > last.get("rows", -1))
        or (source == LIVE_TRAFFIC and not last.get("traffic"))
    ]
    if not fresh:
        return f"drift already triggered run {last['run_key']} for these listings", None, last
    if last and now - datetime.fromisoformat(last["at"]) < settings.cooldown:
        return f"drift, but in cooldown since {last['at']}", None, last
    run_key = f"drift-{champion}-{new_listings}-{traffic_listings}"
    reasons = "; ".join(f"{source}: {reason}" for source in fresh for reason in reports[source].report.reasons)
    trigger = {
        "champion": champion,
        "rows": new_listings if NEW_LISTINGS in fresh else last.get("rows", -1) if same_champion else -1,
        "traffic": LIVE_TRAFFIC in fresh or (same_champion and bool(last.get("traffic"))),
        "run_key": run_key,
        "at": now.isoformat(),
    }
    retraining = Retraining(run_key, fresh, reasons, new_listings, traffic_listings)
    return f"retraining: {reasons}", retraining, trigger


def champion_model(store: ModelStore, champion: ChampionRecord) -> PriceModel:
    """Each champion loaded once: a long-lived process (the code server) judges tick after tick."""
    return _loaded_bundle(store.bundle_dir(champion.model_path))


@lru_cache(maxsize=2)
def _loaded_bundle(bundle_dir: Path) -> PriceModel:
    return PriceModel.load(bundle_dir)
