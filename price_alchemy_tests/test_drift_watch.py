"""The drift watch's decision, without Dagster: which drift retrains, once, and when it waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from price_alchemy_assets.monitoring.drift import DriftReport
from price_alchemy_assets.monitoring.drift_watch import (
    LIVE_TRAFFIC,
    NEW_LISTINGS,
    DriftWatchSettings,
    SourceReport,
    decide_retraining,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SETTINGS = DriftWatchSettings(cooldown=timedelta(minutes=30))


def reports(listings_reasons: list[str], traffic_reasons: list[str]) -> dict[str, SourceReport]:
    """Drift reports as compare() makes them: drifted exactly when there are reasons."""

    def report(rows: int, reasons: list[str]) -> SourceReport:
        return SourceReport(DriftReport(rows, [], 0.0, 0.0, bool(reasons), reasons), "rows")

    return {NEW_LISTINGS: report(1_000, listings_reasons), LIVE_TRAFFIC: report(400, traffic_reasons)}


def test_no_drift_retrains_nothing_and_remembers_what_it_remembered():
    last = {"champion": "v1", "rows": 10, "traffic": False, "run_key": "k", "at": NOW.isoformat()}
    why, retraining, trigger = decide_retraining("v1", reports([], []), 1_000, 400, SETTINGS, last, NOW)
    assert retraining is None and trigger is last and why == "no drift in new listings or live traffic"


def test_drifted_listings_retrain_once_then_again_only_when_more_arrive_after_the_cooldown():
    drifted = reports(["unseen brands 30%"], [])
    why, retraining, trigger = decide_retraining("v1", drifted, 1_000, 400, SETTINGS, None, NOW)
    assert retraining.sources == [NEW_LISTINGS] and retraining.run_key == "drift-v1-1000-400"
    assert retraining.reasons == "new listings: unseen brands 30%" and why == f"retraining: {retraining.reasons}"
    assert trigger == {
        "champion": "v1",
        "rows": 1_000,
        "traffic": False,
        "run_key": "drift-v1-1000-400",
        "at": NOW.isoformat(),
    }
    # the same listings (a restarted daemon ticking again): no second run
    why, again, kept = decide_retraining("v1", drifted, 1_000, 400, SETTINGS, trigger, NOW + timedelta(hours=2))
    assert (
        again is None and kept is trigger and why == "drift already triggered run drift-v1-1000-400 for these listings"
    )
    # more listings, but 10 minutes after the trigger: held back by the 30-minute cooldown
    why, soon, kept = decide_retraining("v1", drifted, 1_500, 400, SETTINGS, trigger, NOW + timedelta(minutes=10))
    assert soon is None and kept is trigger and why == f"drift, but in cooldown since {NOW.isoformat()}"
    later = NOW + timedelta(minutes=31)
    _, retraining, trigger = decide_retraining("v1", drifted, 1_500, 400, SETTINGS, trigger, later)
    assert retraining.run_key == "drift-v1-1500-400" and trigger["rows"] == 1_500 and trigger["at"] == later.isoformat()


def test_drifted_traffic_retrains_once_per_champion():
    drifted = reports([], ["condition PSI 0.41"])
    _, first, trigger = decide_retraining("v1", drifted, 0, 400, SETTINGS, None, NOW)
    assert first.sources == [LIVE_TRAFFIC] and trigger["traffic"] is True and trigger["rows"] == -1
    # traffic keeps arriving: one retraining answers it
    _, again, _ = decide_retraining("v1", drifted, 0, 900, SETTINGS, trigger, NOW + timedelta(days=1))
    assert again is None
    # a new champion drifting too is a new question
    _, new_champion, after = decide_retraining("v2", drifted, 0, 900, SETTINGS, trigger, NOW + timedelta(days=1))
    assert new_champion.run_key == "drift-v2-0-900" and after["champion"] == "v2"


def test_both_sources_drifting_name_both_and_the_trigger_keeps_the_listings_seen():
    _, retraining, trigger = decide_retraining(
        "v1", reports(["unseen brands 30%"], ["condition PSI 0.41"]), 1_000, 400, SETTINGS, None, NOW
    )
    assert retraining.sources == [NEW_LISTINGS, LIVE_TRAFFIC]
    assert retraining.reasons == "new listings: unseen brands 30%; live traffic: condition PSI 0.41"
    assert trigger["rows"] == 1_000 and trigger["traffic"] is True
