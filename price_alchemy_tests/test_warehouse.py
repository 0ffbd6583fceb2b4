"""One contract, two real backends: the embedded DuckDB file and BigQuery (through its REST emulator)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from price_alchemy_assets.defs.resources import (
    BigQueryWarehouseResource,
    DuckDBWarehouseResource,
    warehouse_resource,
)
from price_alchemy_assets.listings.columns import LISTING_FIELDS
from price_alchemy_assets.listings.files import ListingsFile, ListingsFileError, read_listings_frame
from price_alchemy_assets.listings.profile import ListingsProfile, warehouse_profile
from price_alchemy_assets.listings.synthetic import DriftKind, write_synthetic_listings
from price_alchemy_assets.settings import load_settings
from price_alchemy_assets.warehouse.ingest import ingest_listings_file

START = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.fixture(params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bigquery)])
def warehouse(request, tmp_path, monkeypatch):
    if request.param == "duckdb":
        monkeypatch.setenv("PRICE_ALCHEMY_WAREHOUSE", "duckdb")
        monkeypatch.setenv("PRICE_ALCHEMY_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
        resource = warehouse_resource(load_settings())
        assert isinstance(resource, DuckDBWarehouseResource)
    else:
        request.getfixturevalue("bigquery_env")
        resource = warehouse_resource(load_settings())
        assert isinstance(resource, BigQueryWarehouseResource)
    with resource.process_config_and_initialize_cm() as initialized:
        yield initialized.open()


@pytest.fixture
def listings_file(tmp_path):
    return write_synthetic_listings(tmp_path / "listings.tsv", 600, seed=5, start=START, days=10)


def test_ingest_is_idempotent_and_reads_back(warehouse, listings_file):
    first = ingest_listings_file(listings_file, warehouse, chunk_rows=250)
    again = ingest_listings_file(listings_file, warehouse, chunk_rows=250)
    assert (first.rows_read, first.rows_added) == (600, 600)
    assert (again.rows_read, again.rows_added) == (600, 0)
    stored = warehouse.read_listings()
    expected = read_listings_frame(listings_file)
    assert len(stored) == 600 and stored["listing_id"].is_unique
    merged = stored.merge(expected, on="listing_id", suffixes=("", "_file"))
    for column in (*LISTING_FIELDS, "created_at", "row_fingerprint"):
        assert (
            merged[column].equals(merged[f"{column}_file"])
            or (merged[column].isna() == merged[f"{column}_file"].isna()).all()
            and (merged[column].dropna() == merged[f"{column}_file"].dropna()).all()
        ), column
    assert str(stored["created_at"].dtype) == "datetime64[us, UTC]"


def test_window_count_and_aggregates(warehouse, listings_file):
    ingest_listings_file(listings_file, warehouse)
    frame = read_listings_frame(listings_file)
    middle = START + pd.Timedelta(days=5)
    inside = frame[frame["created_at"] >= middle]
    assert len(warehouse.read_listings(start=middle)) == len(inside)
    assert warehouse.count_listings(end=middle) == len(frame) - len(inside)
    summary = warehouse.summary()
    assert summary["listings"] == 600 and summary["labelled"] == 600
    assert pd.Timestamp(summary["last_created_at"]) == frame["created_at"].max()
    counts = warehouse.count_by("item_condition_id")
    assert (
        dict(zip(counts["value"].astype(int), counts["listings"], strict=True))
        == frame["item_condition_id"].value_counts().to_dict()
    )
    with pytest.raises(ValueError, match="cannot group listings by 'name'"):
        warehouse.count_by("name")


def test_profile_from_group_by_queries_matches_the_profile_of_the_rows(warehouse, listings_file, tmp_path):
    ingest_listings_file(listings_file, warehouse)
    first = read_listings_frame(listings_file)
    assert warehouse_profile(warehouse) == ListingsProfile.from_listings(first)
    watermark = warehouse.read_listings()["ingested_at"].max()
    later = write_synthetic_listings(tmp_path / "later.tsv", 300, seed=8, start=START, drift=DriftKind.CONDITION)
    ingest_listings_file(later, warehouse)
    assert warehouse_profile(warehouse, ingested_after=watermark) == ListingsProfile.from_listings(
        read_listings_frame(later)
    )
    sample = warehouse.sample_labelled(100, ingested_after=watermark)
    assert len(sample) == 100 and (sample["price"] > 0).all() and (sample["ingested_at"] > watermark).all()
    assert (
        sample["listing_id"].tolist() == warehouse.sample_labelled(100, ingested_after=watermark)["listing_id"].tolist()
    )


def test_a_bad_file_leaves_the_warehouse_unchanged(warehouse, listings_file, tmp_path):
    ingest_listings_file(listings_file, warehouse)
    fresh = write_synthetic_listings(tmp_path / "fresh.tsv", 600, seed=6, start=START)
    lines = fresh.read_text().splitlines(keepends=True)
    fields = lines[450].split("\t")
    fields[2] = "mint"
    lines[450] = "\t".join(fields)
    fresh.write_text("".join(lines))
    # four chunks of new rows are staged before line 451 is read: none of them may land
    with pytest.raises(ListingsFileError, match=r"fresh.tsv:451: column item_condition_id: 'mint'"):
        ingest_listings_file(fresh, warehouse, chunk_rows=100)
    assert warehouse.count_listings() == 600


def test_genuine_rows_round_trip(warehouse, genuine_train):
    result = ingest_listings_file(genuine_train, warehouse, chunk_rows=3000)
    assert result.rows_added == 7000
    stored = warehouse.read_listings()
    with ListingsFile(genuine_train) as listings:
        names = pd.concat(listings.chunks())["name"]
    assert sorted(stored["name"]) == sorted(names)
