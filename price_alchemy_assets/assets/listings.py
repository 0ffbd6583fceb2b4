"""raw_listings -> validated_listings + rejected_listings: wiring around listings.validation."""

import warnings
from datetime import datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from price_alchemy_assets.assets.code_versions import source_version
from price_alchemy_assets.listings.validation import ValidationRules, validate_listings
from price_alchemy_assets.model.dataset import data_version
from price_alchemy_assets.resources import WarehouseResource
from price_alchemy_assets.warehouse.base import Warehouse

# Dagster 1.13 calls observable source assets and Output(data_version=...) beta: the warning says
# nothing a user of this project can act on
warnings.filterwarnings(
    "ignore", category=dg.BetaWarning, message="(Function `observable_source_asset`|Parameter `data_version`)"
)

LISTINGS_GROUP = "listings"
LISTINGS_TABLE = "listings_table"
RAW_LISTINGS_VERSION = source_version(
    *(f"price_alchemy_assets.warehouse.{name}" for name in ("base", "duckdb_backend", "bigquery_backend")),
    "price_alchemy_assets.listings.columns",
    __name__,
)
VALIDATION_VERSION = source_version(
    "price_alchemy_assets.listings.validation", "price_alchemy_assets.listings.columns", __name__
)


def listings_table_version(warehouse: Warehouse) -> tuple[dg.DataVersion, dict]:
    """The warehouse table's data version (row count and newest ingest) and what the UI shows of it:
    what the source asset's observation records, and what `price-alchemy ingest` reports."""
    rows, newest = warehouse.ingest_watermark()
    stamp = newest.isoformat() if newest else "never"
    return dg.DataVersion(f"{rows}@{stamp}"), {"rows": rows, "last_ingested_at": stamp}


@dg.observable_source_asset(
    name=LISTINGS_TABLE,
    group_name=LISTINGS_GROUP,
    description="The warehouse's listings table, where `price-alchemy ingest` appends. Observed after each "
    "ingest and hourly; a new data version marks raw_listings and everything after it stale.",
)
def listings_table(warehouse: WarehouseResource) -> dg.ObserveResult:
    version, metadata = listings_table_version(warehouse.open())
    return dg.ObserveResult(data_version=version, metadata=metadata)


def column_schema(frame: pd.DataFrame) -> dg.TableSchema:
    """The frame's columns and dtypes, as the asset page's "Columns" tab shows them (the same on
    every warehouse: both backends hand back conformed frames)."""
    return dg.TableSchema(columns=[dg.TableColumn(str(name), str(dtype)) for name, dtype in frame.dtypes.items()])


class RawListingsConfig(dg.Config):
    """Which listings to read, by created_at; both bounds optional (ISO 8601, UTC if no zone)."""

    start: str | None = Field(default=None, description="read listings created at or after this time")
    end: str | None = Field(default=None, description="read listings created before this time")


class ValidationConfig(dg.Config):
    price_ceiling: float = Field(default=ValidationRules.price_ceiling, description="highest plausible price, USD")
    max_name_chars: int = ValidationRules.max_name_chars
    max_description_chars: int = ValidationRules.max_description_chars


@dg.asset(
    group_name=LISTINGS_GROUP,
    kinds={"pandas"},
    description="Listings as stored in the warehouse.",
    deps=[LISTINGS_TABLE],
    code_version=RAW_LISTINGS_VERSION,
)
def raw_listings(config: RawListingsConfig, warehouse: WarehouseResource) -> dg.Output[pd.DataFrame]:
    store = warehouse.open()
    start = datetime.fromisoformat(config.start) if config.start else None
    end = datetime.fromisoformat(config.end) if config.end else None
    frame = store.read_listings(start, end)
    return dg.Output(
        frame,
        data_version=dg.DataVersion(data_version(frame)),
        metadata={
            "dagster/row_count": len(frame),
            "dagster/column_schema": column_schema(frame),
            "warehouse": store.describe(),
            "labelled_rows": int(frame["price"].notna().sum()),
            "first_created_at": str(frame["created_at"].min()) if len(frame) else "",
            "last_created_at": str(frame["created_at"].max()) if len(frame) else "",
            "source_files": dg.MetadataValue.json(frame["source_file"].value_counts().to_dict()),
        },
    )


@dg.multi_asset(
    group_name=LISTINGS_GROUP,
    outs={
        "validated_listings": dg.AssetOut(
            kinds={"pandas", "pandera"},
            description="Listings that pass ValidListings.",
            code_version=VALIDATION_VERSION,
        ),
        "rejected_listings": dg.AssetOut(
            kinds={"pandas"}, description="Listings that fail, with the rules broken.", code_version=VALIDATION_VERSION
        ),
    },
)
def validated_and_rejected_listings(config: ValidationConfig, raw_listings: pd.DataFrame):
    rules = ValidationRules(config.price_ceiling, config.max_name_chars, config.max_description_chars)
    result = validate_listings(raw_listings, rules)
    reasons = result.reason_counts()
    reason_table = "| rule broken | rows |\n|---|---|\n" + "".join(
        f"| {rule} | {count} |\n" for rule, count in reasons.items()
    )
    categories = sorted(result.valid["category_name"].dropna().unique().tolist())
    yield dg.Output(
        result.valid,
        output_name="validated_listings",
        data_version=dg.DataVersion(data_version(result.valid)),
        metadata={
            "dagster/row_count": len(result.valid),
            "dagster/column_schema": column_schema(result.valid),
            "rows_in": result.rows_in,
            "valid_rows": len(result.valid),
            "rejected_rows": len(result.rejected),
            "rejected_share": len(result.rejected) / result.rows_in if result.rows_in else 0.0,
            "rejections": dg.MetadataValue.md(reason_table),
            "price_ceiling": rules.price_ceiling,
            "category_count": len(categories),
            "categories": dg.MetadataValue.json(categories),
        },
    )
    yield dg.Output(
        result.rejected,
        output_name="rejected_listings",
        data_version=dg.DataVersion(data_version(result.rejected)),
        metadata={
            "dagster/row_count": len(result.rejected),
            "dagster/column_schema": column_schema(result.rejected),
            "rejections": dg.MetadataValue.md(reason_table),
            "preview": dg.MetadataValue.md(
                result.rejected[["listing_id", "source_file", "source_line", "rejection_reason"]]
                .head(20)
                .to_markdown(index=False)
                if len(result.rejected)
                else "no rejected listings"
            ),
        },
    )
