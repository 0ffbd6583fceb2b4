"""Materializing raw_listings -> validated_listings / rejected_listings and their checks."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster._core.definitions.data_version import StaleStatus

from price_alchemy_assets.defs.jobs import observe_listings_job
from price_alchemy_assets.defs.listings import (
    _results,
    raw_listings,
    validated_and_rejected_listings,
    validated_listings_checks,
)
from price_alchemy_assets.defs.resources import open_warehouse, resources_under, warehouse_resource
from price_alchemy_assets.listings.columns import PANDAS_DTYPES, WAREHOUSE_COLUMNS
from price_alchemy_assets.listings.synthetic import DriftKind, write_synthetic_listings
from price_alchemy_assets.listings.validation import REJECTION_COLUMN, ValidationRules, validate_listings
from price_alchemy_assets.settings import load_settings
from price_alchemy_assets.warehouse.ingest import ingest_listings_file

from .conftest import run_cli

START = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.fixture
def resources(tmp_path):
    return resources_under(tmp_path)


def materialize(resources, instance, run_config=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [raw_listings, validated_and_rejected_listings, validated_listings_checks],
        resources=resources,
        instance=instance,
        run_config=run_config or {},
        raise_on_error=False,
    )


def metadata(result, key: str) -> dict:
    events = [
        e
        for e in result.get_asset_materialization_events()
        if e.event_specific_data.materialization.asset_key == dg.AssetKey(key)
    ]
    return {k: v.value for k, v in events[-1].event_specific_data.materialization.metadata.items()}


def assert_column_schemas(result) -> None:
    """Each listing asset shows its columns with the warehouse's types; rejected rows add their reason."""
    expected = [(name, PANDAS_DTYPES[kind]) for name, kind in WAREHOUSE_COLUMNS.items()]
    for key, extra in (("raw_listings", []), ("validated_listings", []), ("rejected_listings", [REJECTION_COLUMN])):
        schema = metadata(result, key)["dagster/column_schema"]
        shown = [(column.name, column.type) for column in schema.columns]
        assert shown[: len(expected)] == expected and [name for name, _ in shown[len(expected) :]] == extra, key


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def ingest(resources, path):
    return ingest_listings_file(path, resources["warehouse"].open())


def test_genuine_rows_split_into_valid_and_rejected(resources, genuine_train, tmp_path):
    ingest(resources, genuine_train)
    with dg.instance_for_test() as instance:
        result = materialize(resources, instance)
    assert result.success
    validated = metadata(result, "validated_listings")
    assert validated["rows_in"] == 7000 == validated["valid_rows"] + validated["rejected_rows"]
    with duckdb.connect(str(tmp_path / "assets.duckdb"), read_only=True) as connection:
        rejected = connection.execute(
            "SELECT listing_id, price, rejection_reason FROM price_alchemy.rejected_listings"
        ).df()
    genuine_zero_prices = int((pd.read_csv(genuine_train, sep="\t")["price"] == 0).sum())
    assert genuine_zero_prices == 8  # SOURCES.md says 9; the file holds 8 (train_id 1325, 2544, ...)
    assert len(rejected) == validated["rejected_rows"] == genuine_zero_prices
    assert (rejected["price"] == 0).all()
    assert set(rejected["rejection_reason"]) == {"price: is not above 0"}
    assert all(evaluation.passed for evaluation in checks(result).values())
    assert_column_schemas(result)


def test_checks_measure_and_block(resources, tmp_path):
    path = write_synthetic_listings(tmp_path / "listings.tsv", 2_000, seed=1, start=START)
    lines = path.read_text().splitlines(keepends=True)
    for index in range(1, 201):  # 10 % of rows get an impossible condition
        fields = lines[index].split("\t")
        fields[2] = "9"
        lines[index] = "\t".join(fields)
    path.write_text("".join(lines))
    ingest(resources, path)
    with dg.instance_for_test() as instance:
        result = materialize(resources, instance)
    evaluations = checks(result)
    assert len(evaluations) == 8
    rejected = evaluations["rejected_share"]
    assert not rejected.passed and rejected.severity == dg.AssetCheckSeverity.ERROR
    assert rejected.metadata["rejected_share"].value == pytest.approx(0.1)
    assert evaluations["unique_listing_ids"].passed and evaluations["price_range"].passed
    assert evaluations["freshness"].passed is False  # the listings were created months ago
    assert evaluations["null_rates"].metadata["null_rate/brand_name"].value == pytest.approx(0.42, abs=0.04)


def test_category_coverage_compares_with_previous_materialization(resources, tmp_path):
    ingest(resources, write_synthetic_listings(tmp_path / "a.tsv", 3_000, seed=2, start=START, days=10))
    later = datetime(2026, 10, 1, tzinfo=UTC)
    ingest(
        resources,
        write_synthetic_listings(
            tmp_path / "b.tsv", 1_000, seed=3, start=later, days=2, drift=DriftKind.NEW_CATEGORIES, strength=2.5
        ),
    )
    with dg.instance_for_test() as instance:
        first = materialize(resources, instance, {"ops": {"raw_listings": {"config": {"end": "2026-09-30"}}}})
        second = materialize(resources, instance, {"ops": {"raw_listings": {"config": {"start": "2026-10-01"}}}})
    assert metadata(first, "raw_listings")["dagster/row_count"] == 3_000
    assert metadata(second, "raw_listings")["dagster/row_count"] == 1_000
    coverage = checks(second)["category_coverage"]
    assert coverage.passed is False and coverage.severity == dg.AssetCheckSeverity.WARN
    assert coverage.metadata["new_categories"].value >= 10


@pytest.mark.bigquery
def test_materialize_on_bigquery_warehouse(bigquery_env, resources, genuine_train):
    with open_warehouse(load_settings()) as warehouse:
        ingest_listings_file(genuine_train, warehouse)
    bigquery_resources = {**resources, "warehouse": warehouse_resource(load_settings())}
    with dg.instance_for_test() as instance:
        result = materialize(bigquery_resources, instance)
    assert result.success
    assert metadata(result, "raw_listings")["warehouse"].startswith("BigQuery dataset price-alchemy-test.")
    assert metadata(result, "validated_listings")["rejected_rows"] == 8
    assert_column_schemas(result)


def checked_listings(rows: int = 1_000) -> pd.DataFrame:
    """Listings that pass every check: unique ids, $21 each, a day old, every column present."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return pd.DataFrame(
        {
            "listing_id": [f"l{i}" for i in range(rows)],
            "name": "Thing",
            "item_condition_id": 3,
            "category_name": [f"Women/Tops/T{i % 10}" for i in range(rows)],
            "brand_name": "Nike",
            "price": 21.0,
            "shipping": 1,
            "item_description": "fine",
            "created_at": now - pd.Timedelta(days=1),
            "source_file": "f.tsv",
            "source_line": range(2, rows + 2),
            "row_fingerprint": [f"h{i}" for i in range(rows)],
            "ingested_at": now,
        }
    )


def outcomes(frame: pd.DataFrame, current: dict | None = None, previous: dict | None = None) -> dict[str, bool]:
    results = _results(frame, current or {}, previous, datetime(2026, 12, 2, tzinfo=UTC))
    return {result.check_name: result.passed for result in results}


def test_each_listings_check_fails_just_past_its_limit():
    good = checked_listings()
    assert all(outcomes(good).values()), outcomes(good)

    def only_failing(frame, current=None, previous=None) -> set[str]:
        return {name for name, passed in outcomes(frame, current, previous).items() if not passed}

    assert only_failing(good.drop(columns="row_fingerprint")) == {"schema_matches"}
    assert only_failing(good.assign(colour="red")) == {"schema_matches"}
    assert only_failing(good.assign(listing_id=["l0", "l0", *good["listing_id"][2:]])) == {"unique_listing_ids"}
    for price in (0.0, 2_500.01):  # above 0, at most the $2,500 ceiling
        assert "price_range" in only_failing(good.assign(price=[price, *good["price"][1:]]))
    assert only_failing(good.assign(price=[2_500.0, *good["price"][1:]])) == set()
    assert only_failing(good.assign(price=float("nan"))) >= {"price_range"}  # no labelled rows at all
    rejected = {"rejected_share": dg.MetadataValue.float(0.051)}
    assert only_failing(good, rejected) == {"rejected_share"}
    assert only_failing(good, {"rejected_share": dg.MetadataValue.float(0.05)}) == set()
    # 1 % of prices far out is tolerated, 3 % is not (limit 2 % beyond 3 sigma of log price)
    assert only_failing(good.assign(price=[2_000.0] * 10 + [21.0] * 990)) == set()
    assert only_failing(good.assign(price=[2_000.0] * 30 + [21.0] * 970)) == {"log_price_outliers"}
    # descriptions may be missing on 5 % of rows, not 5.1 %
    assert only_failing(good.assign(item_description=[None] * 50 + ["fine"] * 950)) == set()
    assert only_failing(good.assign(item_description=[None] * 51 + ["fine"] * 949)) == {"null_rates"}
    # 90 % of the previous categories must still be there: 10 of 11 is 91 %, 10 of 12 is 83 %
    seen = [f"Women/Tops/T{i}" for i in range(10)]
    assert only_failing(good, previous={"categories": dg.MetadataValue.json([*seen, "Gone/1"])}) == set()
    gone = {"categories": dg.MetadataValue.json([*seen, "Gone/1", "Gone/2"])}
    assert only_failing(good, previous=gone) == {"category_coverage"}
    # the newest listing at most 14 days old
    stale = good.assign(created_at=datetime(2026, 12, 2, tzinfo=UTC) - pd.Timedelta(days=14, seconds=1))
    assert only_failing(stale) == {"freshness"}


def test_each_validation_rule_rejects_just_past_its_limit_with_its_reason():
    rules = ValidationRules()
    listings = checked_listings(12).astype({"item_condition_id": "Int64", "shipping": "Int64", "source_line": "Int64"})
    edits = {
        1: ("name", "   ", "name: is blank"),
        2: ("name", "x" * (rules.max_name_chars + 1), "name: is too long"),
        3: ("item_description", "x" * (rules.max_description_chars + 1), "item_description: is too long"),
        4: ("price", 0.0, "price: is not above 0"),
        5: ("price", rules.price_ceiling + 0.01, "price: is above the price ceiling"),
        6: ("item_condition_id", 6, "item_condition_id: is not one of (1, 2, 3, 4, 5)"),
        7: ("shipping", 2, "shipping: is not one of (0, 1)"),
        8: ("listing_id", "l0", "listing_id: repeats an earlier listing"),  # l0 was created first
    }
    kept = {  # at the limit, or allowed missing
        9: ("name", "x" * rules.max_name_chars),
        10: ("price", rules.price_ceiling),
        11: ("item_description", None),
    }
    for row, (column, value, _) in edits.items():
        listings.loc[row, column] = value
    for row, (column, value) in kept.items():
        listings.loc[row, column] = value
    result = validate_listings(listings, rules)
    reasons = dict(zip(result.rejected["listing_id"], result.rejected[REJECTION_COLUMN], strict=True))
    assert reasons == {f"l{row}" if row != 8 else "l0": reason for row, (_, _, reason) in edits.items()}
    assert sorted(result.valid["listing_id"]) == sorted(["l0", "l9", "l10", "l11"])
    assert result.rows_in == 12 and result.reason_counts().sum() == 8


def test_new_rows_in_the_warehouse_make_the_listing_assets_stale(price_alchemy_home, tmp_path):
    """`price-alchemy ingest` observes the warehouse table; its new data version (rows and newest
    ingest) makes raw_listings and what follows it stale in the instance the UI reads."""
    from dagster._utils.test.data_versions import get_stale_status_resolver

    from price_alchemy_assets.defs.listings import LISTINGS_TABLE, listings_table
    from price_alchemy_assets.defs.resources import resources_from_settings

    first = write_synthetic_listings(tmp_path / "first.tsv", 300, seed=1, start=START)
    second = write_synthetic_listings(tmp_path / "second.tsv", 200, seed=2, start=START + pd.Timedelta(days=2))
    assert run_cli("ingest", str(first)).returncode == 0
    listing_assets = [listings_table, raw_listings, validated_and_rejected_listings]
    keys = [dg.AssetKey(name) for name in ("raw_listings", "validated_listings", "rejected_listings")]
    with dg.DagsterInstance.get() as instance:
        observed = instance.fetch_observations(dg.AssetKey(LISTINGS_TABLE), limit=1).records[0].asset_observation
        assert observed.tags["dagster/data_version"].startswith("300@") and observed.metadata["rows"].value == 300
        result = dg.materialize(
            listing_assets[1:], resources=resources_from_settings(load_settings()), instance=instance
        )
        assert result.success
        status = get_stale_status_resolver(instance, listing_assets)
        assert [status.get_status(key) for key in keys] == [StaleStatus.FRESH] * 3

    assert run_cli("ingest", str(first)).returncode == 0  # nothing new: the same data version
    with dg.DagsterInstance.get() as instance:
        status = get_stale_status_resolver(instance, listing_assets)
        assert [status.get_status(key) for key in keys] == [StaleStatus.FRESH] * 3

    assert run_cli("ingest", str(second)).returncode == 0
    with dg.DagsterInstance.get() as instance:
        status = get_stale_status_resolver(instance, listing_assets)
        # raw_listings states its own data version (a hash of the rows it read), so Dagster cannot know
        # a new read will differ: what follows it goes stale when raw_listings' content does
        assert [status.get_status(key) for key in keys] == [StaleStatus.STALE, StaleStatus.FRESH, StaleStatus.FRESH]
        [cause] = status.get_stale_causes(dg.AssetKey("raw_listings"))
        assert cause.key.asset_key == dg.AssetKey("raw_listings") and cause.category.name == "DATA"
        assert cause.dependency.asset_key == dg.AssetKey(LISTINGS_TABLE)
        assert dg.materialize(
            [raw_listings], resources=resources_from_settings(load_settings()), instance=instance
        ).success
        status = get_stale_status_resolver(instance, listing_assets)
        assert [status.get_status(key) for key in keys] == [StaleStatus.FRESH, StaleStatus.STALE, StaleStatus.STALE]
        [cause] = status.get_stale_causes(dg.AssetKey("validated_listings"))
        assert cause.dependency.asset_key == dg.AssetKey("raw_listings") and cause.category.name == "DATA"
        # the hourly observation job records the same version the ingest command reported
        observed = instance.fetch_observations(dg.AssetKey(LISTINGS_TABLE), limit=1).records[0].asset_observation
        job = dg.Definitions(
            assets=listing_assets, jobs=[observe_listings_job], resources=resources_from_settings(load_settings())
        ).resolve_job_def(observe_listings_job.name)
        assert job.execute_in_process(instance=instance).success
        again = instance.fetch_observations(dg.AssetKey(LISTINGS_TABLE), limit=1).records[0].asset_observation
        assert again.tags["dagster/data_version"] == observed.tags["dagster/data_version"]
        assert again.tags["dagster/data_version"].startswith("500@")


def test_each_asset_s_code_version_follows_its_own_code():
    from price_alchemy_assets.defs import evaluation, features_and_model
    from price_alchemy_assets.defs.code_versions import source_version
    from price_alchemy_assets.defs.listings import RAW_LISTINGS_VERSION, VALIDATION_VERSION

    versions = [RAW_LISTINGS_VERSION, VALIDATION_VERSION, features_and_model.FEATURES_VERSION]
    versions += [features_and_model.MODEL_VERSION, evaluation.EVALUATION_VERSION, evaluation.CHAMPION_VERSION]
    assert len(set(versions)) == 6 and all(len(v) == 12 for v in versions)
    assert source_version("price_alchemy_assets.model.metrics") != source_version("price_alchemy_assets.model.split")
    assert source_version("price_alchemy_assets.model.metrics") == source_version("price_alchemy_assets.model.metrics")
