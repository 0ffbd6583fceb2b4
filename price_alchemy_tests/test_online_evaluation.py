"""Online evaluation: served suggestions matched with the prices the same listings asked later."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from price_alchemy_assets.defs.online_evaluation import REALIZED_ERROR_CHECK, online_evaluation
from price_alchemy_assets.defs.resources import PredictionLogResource, resources_under, warehouse_resource
from price_alchemy_assets.devtools.local_servers import running_service
from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.listings.synthetic import write_synthetic_listings
from price_alchemy_assets.model.metrics import rmsle
from price_alchemy_assets.monitoring.online_evaluation import evaluate_online, match_realized, seller_fingerprints
from price_alchemy_assets.settings import load_settings
from price_alchemy_assets.warehouse.ingest import ingest_listings_file

from .serving import train_champion, wait_for

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)  # a Monday: ISO week 2026-W45


def seller(name, price=None, **fields):
    listing = {
        "name": name,
        "item_condition_id": 3,
        "category_name": "Home/Kitchen",
        "brand_name": None,
        "shipping": 0,
        "item_description": "",
    }
    return listing | fields | ({"price": price} if price is not None else {})


def served(rows):
    """Prediction-log rows: (listing, suggested, low, high, version, logged_at)."""
    return pd.DataFrame(
        [
            {**listing, "price": price, "price_low": low, "price_high": high, "model_version": v, "logged_at": at}
            for listing, price, low, high, v, at in rows
        ]
    )


def test_each_listing_gets_the_last_suggestion_before_it_was_ingested():
    mug, lamp, chair = seller("Blue mug"), seller("Desk lamp"), seller("Oak chair", item_condition_id=2)
    log = served(
        [
            (mug, 10.0, 6.0, 15.0, "v1", T0),
            (mug, 12.0, 8.0, 18.0, "v2", T0 + timedelta(hours=1)),  # asked again: this one counts
            (lamp, 20.0, 15.0, 30.0, "v2", T0 + timedelta(hours=2)),
            (chair, 50.0, 40.0, 60.0, "v2", T0 + timedelta(days=3)),  # after the chair was listed: no match
        ]
    )
    listings = pd.DataFrame(
        [
            # the seller's spaces and a missing brand are what they typed: the same fingerprint
            seller("  Blue mug ", 15.0) | {"ingested_at": T0 + timedelta(days=1)},
            seller("Desk lamp", 40.0) | {"ingested_at": T0 + timedelta(days=1)},
            seller("Oak chair", 55.0, item_condition_id=2) | {"ingested_at": T0 + timedelta(days=2)},
            seller("Red mug", 9.0) | {"ingested_at": T0 + timedelta(days=1)},  # never asked
            seller("Desk lamp", 0.0) | {"ingested_at": T0 + timedelta(days=1)},  # no price
        ]
    )
    matched = match_realized(log, listings)
    assert sorted(zip(matched["suggested"], matched["realized"], matched["model_version"], strict=True)) == [
        (12.0, 15.0, "v2"),
        (20.0, 40.0, "v2"),
    ]
    report = evaluate_online(matched)
    [row] = report.by_week.to_dict("records")
    assert row["model_version"] == "v2" and row["week"] == "2026-W45" and row["matched"] == 2
    assert row["rmsle"] == pytest.approx(rmsle([15.0, 40.0], [12.0, 20.0]))
    assert row["inside_range"] == 0.5  # 15 is inside 8-18, 40 is outside 15-30
    assert row["median_deviation"] == pytest.approx(np.median([15 / 12 - 1, 40 / 20 - 1]))
    assert report.rmsle_of("v2") == pytest.approx(row["rmsle"]) and report.rmsle_of("v1") is None
    assert "2026-W45" in report.to_markdown()


def test_fingerprints_tell_apart_what_a_seller_would():
    a = pd.DataFrame([seller("Blue mug"), seller("Blue mug", item_condition_id=4), seller("Blue mug", shipping=1)])
    assert seller_fingerprints(a).nunique() == 3
    same = pd.DataFrame([seller("Blue mug", brand_name=None), seller("Blue mug ", brand_name="")])
    assert seller_fingerprints(same).nunique() == 1


def test_nothing_served_or_nothing_priced_is_an_empty_report():
    assert match_realized(served([]), pd.DataFrame(columns=[*SELLER_FIELDS, "price", "ingested_at"])).empty
    report = evaluate_online(match_realized(served([]), pd.DataFrame()))
    assert report.by_week.empty and report.to_markdown().startswith("No served suggestion")


@pytest.mark.parametrize("backends", ["sqlite+duckdb", pytest.param("postgresql+bigquery", marks=pytest.mark.bigquery)])
def test_the_asset_measures_what_sellers_later_asked(backends, request, tmp_path):
    """Sellers ask the real service; later the same listings arrive in the warehouse with the
    prices they asked (the synthetic market's, so known); online_evaluation matches the two."""
    resources = resources_under(tmp_path)
    log_url = f"sqlite:///{tmp_path / 'predictions.sqlite'}"
    if backends == "postgresql+bigquery":
        db = request.getfixturevalue("postgres_database")
        log_url = f"postgresql://{db['user']}@{db['host']}:{db['port']}/{db['db']}"
        request.getfixturevalue("bigquery_env")
        resources |= {"warehouse": warehouse_resource(load_settings())}
    resources |= {"prediction_log": PredictionLogResource(url=log_url)}
    store = resources["model_store"].store()
    record = train_champion(store, "v1", seed=31)

    later = write_synthetic_listings(tmp_path / "later.tsv", 300, seed=32)
    rows = pd.read_csv(later, sep="\t", keep_default_na=False, na_values={"brand_name": [""], "category_name": [""]})
    asked = rows.iloc[:240]  # the last 60 are listed without asking first
    bodies = [
        {field: value for field, value in row.items() if field in SELLER_FIELDS and not pd.isna(value) and value != ""}
        for row in asked.to_dict("records")
    ]
    log_env = {"PRICE_ALCHEMY_PREDICTION_LOG": log_url}
    with running_service(store.root, tmp_path, extra_env=log_env) as service, service.client() as client:
        suggestions = client.post("/predict/batch", json={"listings": bodies}).json()["predictions"]
        wait_for(lambda: client.get("/health").json()["prediction_log"]["written"] >= len(bodies), what="the log")

    with resources["warehouse"].process_config_and_initialize_cm() as warehouse:
        ingest_listings_file(later, warehouse.open())
    with dg.instance_for_test() as instance:
        result = dg.materialize([online_evaluation], resources=resources, instance=instance)
        metadata = result.asset_materializations_for_node("online_evaluation")[0].metadata
        [check] = result.get_asset_check_evaluations()

    priced = asked["price"].to_numpy() > 0
    expected = rmsle(asked["price"].to_numpy()[priced], np.array([s["price"] for s in suggestions])[priced])
    assert metadata["served"].value == len(bodies) and metadata["matched"].value == priced.sum()
    assert metadata["champion_version"].value == "v1" and metadata["champion_matched"].value == priced.sum()
    assert metadata["champion_realized_rmsle"].value == pytest.approx(expected, rel=1e-6)
    assert metadata["champion_offline_rmsle"].value == pytest.approx(record.metrics["rmsle"])
    by_week = metadata["by_week"].data
    assert [row["model_version"] for row in by_week] == ["v1"] and by_week[0]["matched"] == priced.sum()
    lows, highs = (np.array([s[k] for s in suggestions])[priced] for k in ("price_low", "price_high"))
    realized = asked["price"].to_numpy()[priced]
    assert by_week[0]["inside_range"] == pytest.approx(np.mean((realized >= lows) & (realized <= highs)))
    assert check.check_name == REALIZED_ERROR_CHECK and check.severity == dg.AssetCheckSeverity.WARN
    assert check.passed == (expected <= record.metrics["rmsle"] + 0.05)

    # a margin the realized error exceeds: the check warns, naming both errors
    strict = {"ops": {"online_evaluation": {"config": {"margin": -1.0}}}}
    with dg.instance_for_test() as instance:
        result = dg.materialize([online_evaluation], resources=resources, instance=instance, run_config=strict)
        [check] = result.get_asset_check_evaluations()
    assert not check.passed and f"realized RMSLE {expected:.4f} on {priced.sum()} listings" in check.description
