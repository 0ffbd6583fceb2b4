"""Online evaluation: served suggestions matched with the prices the same listings asked later."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from price_alchemy_assets.defs.challenger import challenger_promotion_sensor, promote_challenger_job
from price_alchemy_assets.defs.online_evaluation import REALIZED_ERROR_CHECK, online_evaluation
from price_alchemy_assets.defs.resources import PredictionLogResource, resources_under, warehouse_resource
from price_alchemy_assets.devtools.local_servers import running_service
from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.listings.synthetic import write_synthetic_listings
from price_alchemy_assets.model.metrics import rmsle
from price_alchemy_assets.monitoring.online_evaluation import (
    compare_challenger,
    evaluate_online,
    match_realized,
    seller_fingerprints,
)
from price_alchemy_assets.monitoring.traffic import PredictionLogReader
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


def test_the_challenger_is_compared_on_the_same_listings():
    """Each realized listing pairs the champion's and the challenger's last suggestions before it;
    listings only one of them priced are left out; the numbers are those worked out by hand."""
    mug, lamp, chair, vase = seller("Blue mug"), seller("Desk lamp"), seller("Oak chair"), seller("Vase")
    champion = served(
        [
            (mug, 10.0, 6.0, 15.0, "champ", T0),
            (lamp, 20.0, 15.0, 30.0, "champ", T0),
            (chair, 50.0, 40.0, 60.0, "champ", T0),
            (vase, 8.0, 5.0, 12.0, "champ", T0),
        ]
    )
    challenger = served(
        [
            (mug, 14.0, 9.0, 20.0, "chal", T0 + timedelta(seconds=1)),
            (lamp, 35.0, 25.0, 50.0, "chal", T0 + timedelta(seconds=1)),
            (chair, 52.0, 40.0, 65.0, "chal", T0 + timedelta(seconds=1)),
            # the vase was not shadowed (the queue was full): no pair
        ]
    )
    listed = T0 + timedelta(days=1)
    listings = pd.DataFrame(
        [
            seller("Blue mug", 15.0) | {"ingested_at": listed},
            seller("Desk lamp", 40.0) | {"ingested_at": listed},
            seller("Oak chair", 50.0) | {"ingested_at": listed},
            seller("Vase", 9.0) | {"ingested_at": listed},
        ]
    )
    paired = compare_challenger(
        match_realized(champion, listings), match_realized(challenger, listings), "champ", "chal"
    )
    assert paired.pairs == 3 and paired.challenger_wins == 2  # closer on the mug and the lamp, not the chair
    realized, ours, theirs = np.array([15.0, 40.0, 50.0]), np.array([10.0, 20.0, 50.0]), np.array([14.0, 35.0, 52.0])
    assert paired.champion_rmsle == pytest.approx(rmsle(realized, ours))
    assert paired.challenger_rmsle == pytest.approx(rmsle(realized, theirs))
    assert 0 < paired.p_value < 1
    # three pairs are too few to judge; with a looser minimum the test still does not reach 0.05
    assert paired.verdict(min_pairs=30, alpha=0.05) == (False, "not judged: 3 paired realized prices, 30 needed")
    promote, reason = paired.verdict(min_pairs=3, alpha=0.05)
    assert not promote and reason.startswith("keep the champion: challenger chal RMSLE")


def test_a_challenger_closer_on_most_of_many_listings_wins():
    rng = np.random.default_rng(7)
    realized = rng.uniform(5, 100, 200)
    sellers = [seller(f"Listing {i}") for i in range(200)]
    champion = served([(s, p * 1.6, p, p * 2, "champ", T0) for s, p in zip(sellers, realized, strict=True)])
    noise = rng.uniform(0.85, 1.25, 200)
    challenger = served([(s, p * n, p, p * 2, "chal", T0) for s, p, n in zip(sellers, realized, noise, strict=True)])
    listings = pd.DataFrame(
        [s | {"price": p, "ingested_at": T0 + timedelta(hours=1)} for s, p in zip(sellers, realized, strict=True)]
    )
    paired = compare_challenger(
        match_realized(champion, listings), match_realized(challenger, listings), "champ", "chal"
    )
    assert paired.pairs == 200 and paired.challenger_rmsle < paired.champion_rmsle and paired.p_value < 1e-6
    promote, reason = paired.verdict(min_pairs=30, alpha=0.05)
    assert promote and reason.startswith("promote: challenger chal") and "on 200 listings" in reason
    # the same comparison the other way round keeps the champion
    assert not compare_challenger(
        match_realized(challenger, listings), match_realized(champion, listings), "chal", "champ"
    ).verdict(30, 0.05)[0]


def test_fingerprints_tell_apart_what_a_seller_would():
    a = pd.DataFrame([seller("Blue mug"), seller("Blue mug", item_condition_id=4), seller("Blue mug", shipping=1)])
    assert seller_fingerprints(a).nunique() == 3
    same = pd.DataFrame([seller("Blue mug", brand_name=None), seller("Blue mug ", brand_name="")])
    assert seller_fingerprints(same).nunique() == 1


def test_nothing_served_or_nothing_priced_is_an_empty_report():
    assert match_realized(served([]), pd.DataFrame(columns=[*SELLER_FIELDS, "price", "ingested_at"])).empty
    report = evaluate_online(match_realized(served([]), pd.DataFrame()))
    assert report.by_week.empty and report.to_markdown().startswith("No served suggestion")


def backend_resources(backends: str, request, tmp_path) -> tuple[dict, str]:
    """Resources with the prediction log and warehouse `backends` names, and the log's URL: a
    SQLite file and DuckDB, or PostgreSQL (127.0.0.1:5432) and the BigQuery emulator."""
    resources = resources_under(tmp_path)
    log_url = f"sqlite:///{tmp_path / 'predictions.sqlite'}"
    if backends == "postgresql+bigquery":
        db = request.getfixturevalue("postgres_database")
        log_url = f"postgresql://{db['user']}@{db['host']}:{db['port']}/{db['db']}"
        request.getfixturevalue("bigquery_env")
        resources |= {"warehouse": warehouse_resource(load_settings())}
    return resources | {"prediction_log": PredictionLogResource(url=log_url)}, log_url


@pytest.mark.parametrize("backends", ["sqlite+duckdb", pytest.param("postgresql+bigquery", marks=pytest.mark.bigquery)])
def test_the_asset_measures_what_sellers_later_asked(backends, request, tmp_path):
    """Sellers ask the real service; later the same listings arrive in the warehouse with the
    prices they asked (the synthetic market's, so known); online_evaluation matches the two."""
    resources, log_url = backend_resources(backends, request, tmp_path)
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


@pytest.mark.parametrize("backends", ["sqlite+duckdb", pytest.param("postgresql+bigquery", marks=pytest.mark.bigquery)])
def test_a_challenger_in_shadow_is_promoted_on_realized_prices(backends, request, tmp_path):
    """The real service prices with a weak champion and scores a stronger challenger in shadow; when
    the listings arrive with their prices, online_evaluation's paired test prefers the challenger,
    the sensor asks for a promotion run, the run swaps the pointer, and the service follows it."""
    resources, log_url = backend_resources(backends, request, tmp_path)
    store = resources["model_store"].store()
    train_champion(store, "weak", seed=41, rows=400)
    strong = train_champion(store, "strong", seed=42, promote=False)
    store.mark_challenger(strong)

    later = write_synthetic_listings(tmp_path / "later.tsv", 300, seed=43)
    rows = pd.read_csv(later, sep="\t", keep_default_na=False, na_values={"brand_name": [""], "category_name": [""]})
    bodies = [
        {field: value for field, value in row.items() if field in SELLER_FIELDS and not pd.isna(value) and value != ""}
        for row in rows.to_dict("records")
    ]
    since = datetime.now(UTC) - timedelta(minutes=1)
    log_env = {"PRICE_ALCHEMY_PREDICTION_LOG": log_url}
    with running_service(store.root, tmp_path, extra_env=log_env) as service, service.client() as client:
        shadow = lambda: client.get("/health").json()["shadow"]  # noqa: E731
        wait_for(
            lambda: shadow()["challenger_version"] == "strong", timeout=60, what="the challenger", log=service.log_path
        )
        # what the seller sees is the champion's, in a batch and one by one
        answers = client.post("/predict/batch", json={"listings": bodies[:250]}).json()["predictions"]
        answers += [client.post("/predict", json=body).json() for body in bodies[250:]]
        assert {answer["model_version"] for answer in answers} == {"weak"}
        done = wait_for(lambda: (s := shadow())["scored"] + s["skipped"] >= len(bodies) and s, what="shadow scoring")
        # nothing was skipped: 300 listings never fill the shadow's buffer
        assert done["scored"] == len(bodies) and done["skipped"] == done["failed"] == 0 and done["last_error"] is None
        with PredictionLogReader(log_url) as log:
            shadowed = log.shadowed(since)
        # the challenger's prices are its own, logged beside the champion's for the same listings
        assert len(shadowed) == done["scored"] and set(shadowed["model_version"]) == {"strong"}
        expected = store.load("strong").predict(shadowed[list(SELLER_FIELDS)])
        assert np.allclose(shadowed["price"], expected["price"].round(2), atol=0.011)
        assert np.allclose(shadowed["price_high"], expected["price_high"].round(2), atol=0.011)

        with resources["warehouse"].process_config_and_initialize_cm() as warehouse:
            ingest_listings_file(later, warehouse.open())
        with dg.instance_for_test() as instance:
            result = dg.materialize([online_evaluation], resources=resources, instance=instance)
            metadata = {
                k: v.value for k, v in result.asset_materializations_for_node("online_evaluation")[0].metadata.items()
            }
            priced = rows["price"].to_numpy() > 0
            assert metadata["challenger_version"] == "strong" and metadata["challenger_verdict"] == "promote"
            assert 0 < metadata["challenger_pairs"] <= priced.sum() and metadata["challenger_p_value"] < 0.05
            assert metadata["challenger_paired_rmsle"] < metadata["champion_paired_rmsle"]
            assert metadata["challenger_reason"].startswith("promote: challenger strong")

            tick = challenger_promotion_sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
            [request] = tick.run_requests
            promotion = promote_challenger_job.execute_in_process(
                run_config=request.run_config, resources=resources, instance=instance
            )
            assert promotion.success
            event = instance.get_latest_materialization_event(dg.AssetKey("champion")).asset_materialization
            assert event.metadata["promoted_from"].value == "challenger"
            assert event.metadata["champion_version"].value == "strong"
            # the same verdict again (a second tick) finds nothing new to promote
            assert not challenger_promotion_sensor.evaluate_tick(
                dg.build_sensor_context(instance=instance, cursor=tick.cursor)
            ).run_requests
        champion = store.champion()
        assert champion.version == "strong" and champion.dagster_run_id == promotion.run_id
        assert store.challenger() is None
        wait_for(lambda: client.get("/model").json()["model_version"] == "strong", what="the service to follow")
        wait_for(lambda: shadow()["challenger_version"] is None, what="the shadow to stop")
        assert client.post("/predict", json=bodies[0]).json()["model_version"] == "strong"
