"""The drift sensor on a real warehouse, champion and service: quiet before new listings and for
an in-distribution batch, a tagged retraining request for a drifted batch or drifted live
traffic, no repeat after it, and every evaluation recorded as a drift_report materialization."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from price_alchemy_assets.defs.drift import DRIFT_REPORT, listings_and_traffic_drift_sensor
from price_alchemy_assets.defs.jobs import MAIN_JOB
from price_alchemy_assets.defs.resources import DriftMonitorResource, PredictionLogResource
from price_alchemy_assets.devtools.local_servers import free_port, running_service
from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.listings.files import ListingsFile
from price_alchemy_assets.listings.synthetic import DriftKind, MarketplaceSynthesizer, write_synthetic_listings
from price_alchemy_assets.model.metrics import rmsle
from price_alchemy_assets.monitoring.drift_watch import LIVE_TRAFFIC, NEW_LISTINGS
from price_alchemy_assets.warehouse.ingest import ingest_listings_file

from .platform_run import run_all
from .serving import wait_for


def tick(instance, resources, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return listings_and_traffic_drift_sensor(context)


def arrive(platform, rows: int, seed: int, drift: DriftKind | None = None, strength: float = 1.0) -> None:
    """A batch of listings created over the last day reaches the warehouse."""
    resources, tmp_path = platform
    batch = write_synthetic_listings(
        tmp_path / f"batch-{seed}.tsv",
        rows,
        seed=seed,
        start=datetime.now(UTC) - timedelta(days=1),
        days=1,
        drift=drift,
        strength=strength,
    )
    ingest_listings_file(batch, resources["warehouse"].open())


def retraining(result) -> dg.RunRequest:
    """The main job's run request of a tick that triggers, beside which online_evaluation runs."""
    by_job = {request.job_name: request for request in result.run_requests}
    assert set(by_job) == {MAIN_JOB, "online_evaluation_job"} and len(result.run_requests) == 2
    online, main = by_job["online_evaluation_job"], by_job[MAIN_JOB]
    assert (
        online.run_key.endswith(main.run_key)
        and online.tags["price_alchemy/trigger"] == main.tags["price_alchemy/trigger"]
    )
    return main


def report_of(result, source: str = NEW_LISTINGS) -> dict:
    (event,) = [e for e in result.asset_events if e.asset_key == DRIFT_REPORT and e.metadata["source"].value == source]
    return {key: value.value for key, value in event.metadata.items()}


def test_drift_sensor_triggers_once_on_drift_and_never_on_in_distribution_listings(platform):
    resources = platform[0] | {"drift_monitor": DriftMonitorResource(min_rows=300, cooldown_minutes=0)}
    with dg.instance_for_test() as instance:
        before = tick(instance, resources)
        assert isinstance(before, dg.SkipReason) and "no champion" in before.skip_message
        assert run_all(resources, instance).success

        quiet = tick(instance, resources)
        assert not quiet.run_requests and report_of(quiet)["new_listings"] == 0

        arrive(platform, 1_500, seed=11)
        in_distribution = tick(instance, resources)
        assert not in_distribution.run_requests, in_distribution.skip_reason
        assert report_of(in_distribution)["new_listings"] == 1_500 and not report_of(in_distribution)["drifted"]

        arrive(platform, 1_500, seed=12, drift=DriftKind.NEW_BRANDS)
        drifted = tick(instance, resources)
        request = retraining(drifted)
        assert request.tags["price_alchemy/trigger"] == "listings_drift"
        assert "unseen brands" in request.tags["price_alchemy/drift_reasons"]
        assert report_of(drifted)["drifted"] and report_of(drifted)["new_listings"] == 3_000
        assert json.loads(drifted.cursor)["triggered"]["rows"] == 3_000

        again = tick(instance, resources, cursor=drifted.cursor)  # as after a daemon restart
        assert not again.run_requests and "already triggered" in again.skip_reason.skip_message


def test_cooldown_holds_back_a_second_trigger_and_an_unreachable_log_holds_back_nothing(platform):
    resources = platform[0] | {
        "drift_monitor": DriftMonitorResource(min_rows=300, cooldown_minutes=60),
        # nothing listens there: live traffic cannot be read, new listings are still judged
        "prediction_log": PredictionLogResource(url=f"postgresql://postgres@127.0.0.1:{free_port()}/predictions"),
    }
    with dg.instance_for_test() as instance:
        assert run_all(resources, instance).success
        arrive(platform, 800, seed=13, drift=DriftKind.CONDITION)
        first = tick(instance, resources)
        assert [r.job_name for r in first.run_requests] == [MAIN_JOB, "online_evaluation_job"]
        assert report_of(first, LIVE_TRAFFIC)["new_listings"] == 0
        arrive(platform, 800, seed=14, drift=DriftKind.CONDITION)
        second = tick(instance, resources, cursor=first.cursor)
        assert not second.run_requests and "cooldown" in second.skip_reason.skip_message


def test_inflation_is_caught_by_the_champions_error_on_new_labelled_listings(platform):
    resources = platform[0] | {"drift_monitor": DriftMonitorResource(min_rows=300, cooldown_minutes=0)}
    with dg.instance_for_test() as instance:
        assert run_all(resources, instance).success
        arrive(platform, 1_500, seed=15, drift=DriftKind.INFLATION, strength=2.0)
        result = tick(instance, resources)
        report = report_of(result)
        # the champion's error on exactly those listings, computed here from the file and the bundle
        record, model = resources["model_store"].store().load_champion()
        with ListingsFile(platform[1] / "batch-15.tsv") as batch:
            arrived = pd.concat(batch.chunks(), ignore_index=True)
        assert report["labelled_rows"] == 1_500 == len(arrived)
        assert report["labelled_rmsle"] == pytest.approx(rmsle(arrived["price"], model.predict(arrived)["price"]))
        assert report["labelled_rmsle"] - record.metrics["rmsle"] > DriftMonitorResource().rmsle_increase
        assert f"(at evaluation: {record.metrics['rmsle']:.4f})" in report["report"]
        assert "champion RMSLE" in retraining(result).tags["price_alchemy/drift_reasons"], report["report"]


def test_drifted_live_traffic_triggers_retraining_once_per_champion(platform):
    """Sellers use the real service; what it logged is compared with the champion's profile."""
    resources, tmp_path = platform
    resources = resources | {"drift_monitor": DriftMonitorResource(min_rows=300, cooldown_minutes=0)}
    with dg.instance_for_test() as instance:
        assert run_all(resources, instance).success

        def sellers_ask(rows: int, seed: int, drift: DriftKind | None = None) -> None:
            listings = pd.concat(MarketplaceSynthesizer(seed=seed, drift=drift).batches(rows, datetime.now(UTC), 1.0))[
                list(SELLER_FIELDS)
            ]
            bodies = [
                {key: value for key, value in row.items() if isinstance(value, str | int) and value != ""}
                for row in listings.astype(object).where(listings.notna(), None).to_dict("records")
            ]
            with service.client() as client:
                client.post("/predict/batch", json={"listings": bodies}).raise_for_status()

        def logged(rows: int) -> None:
            """Until the service's prediction log holds `rows` (its writer works in the background)."""
            with service.client() as client:
                wait_for(lambda: client.get("/health").json()["prediction_log"]["written"] >= rows, what="the log")

        store, more_listings = tmp_path / "model_store", {"PRICE_ALCHEMY_MAX_BATCH": "1000"}
        with running_service(store, tmp_path, extra_env=more_listings) as service:
            sellers_ask(800, seed=21)
            logged(800)
            quiet = tick(instance, resources)
            assert not quiet.run_requests, quiet.skip_reason
            traffic = report_of(quiet, LIVE_TRAFFIC)
            assert traffic["new_listings"] == 800 and not traffic["drifted"] and traffic["oov_rate"] < 0.05

            sellers_ask(800, seed=22, drift=DriftKind.NEW_CATEGORIES)
            logged(1_600)
            drifted = tick(instance, resources)
        request = retraining(drifted)
        assert request.tags["price_alchemy/trigger"] == "traffic_drift"
        assert request.tags["price_alchemy/drift_reasons"].startswith("live traffic: ")
        assert request.tags["price_alchemy/traffic_listings"] == "1600"
        assert report_of(drifted, LIVE_TRAFFIC)["drifted"] and not report_of(drifted)["drifted"]

        again = tick(instance, resources, cursor=drifted.cursor)
        assert not again.run_requests and "already triggered" in again.skip_reason.skip_message
