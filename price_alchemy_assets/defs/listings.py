"""Listings: the warehouse table (observed), raw_listings -> validated_listings + rejected_listings
(wiring around listings.validation), and the data-quality checks on validated_listings: those
that must stop training are blocking. The check numbers come from listings.quality; each result
carries them as metadata, so the Dagster UI shows what was measured, not just pass or fail.
"""

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from price_alchemy_assets.defs.code_versions import source_version
from price_alchemy_assets.defs.resources import WarehouseResource
from price_alchemy_assets.defs.run_config import config_class, dataclass_from_config
from price_alchemy_assets.listings import quality
from price_alchemy_assets.listings.columns import WAREHOUSE_COLUMNS
from price_alchemy_assets.listings.validation import ValidationRules, validate_listings
from price_alchemy_assets.model.dataset import data_version
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


ValidationConfig = config_class("ValidationConfig", ValidationRules)


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
    rules = dataclass_from_config(ValidationRules, config)
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


VALIDATED = dg.AssetKey("validated_listings")


@dataclass(frozen=True)
class ListingsThresholds:
    max_rejected_share: float = 0.05
    max_outlier_share: float = 0.02
    min_category_kept_share: float = 0.9
    max_age_hours: float = 24.0 * 14


THRESHOLDS = ListingsThresholds()
_ERROR, _WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
_SPECS = [
    dg.AssetCheckSpec(
        "schema_matches", asset=VALIDATED, blocking=True, description="Columns and dtypes are the warehouse schema."
    ),
    dg.AssetCheckSpec("unique_listing_ids", asset=VALIDATED, blocking=True, description="No listing id twice."),
    dg.AssetCheckSpec(
        "price_range",
        asset=VALIDATED,
        blocking=True,
        description="Labelled prices above 0 and under the ceiling, and some labelled rows.",
    ),
    dg.AssetCheckSpec(
        "rejected_share",
        asset=VALIDATED,
        blocking=True,
        description=f"At most {THRESHOLDS.max_rejected_share:.0%} of raw rows rejected.",
    ),
    dg.AssetCheckSpec("null_rates", asset=VALIDATED, description="Missing values per column under their limits."),
    dg.AssetCheckSpec(
        "log_price_outliers",
        asset=VALIDATED,
        description=f"At most {THRESHOLDS.max_outlier_share:.0%} of log prices beyond 3 sigma.",
    ),
    dg.AssetCheckSpec(
        "category_coverage",
        asset=VALIDATED,
        description="Most categories of the previous materialization are still present.",
    ),
    dg.AssetCheckSpec(
        "freshness", asset=VALIDATED, description=f"Newest listing under {THRESHOLDS.max_age_hours:.0f} hours old."
    ),
]


@dg.multi_asset_check(specs=_SPECS, ins={"validated_listings": dg.AssetIn("validated_listings")})
def validated_listings_checks(context: dg.AssetCheckExecutionContext, validated_listings: pd.DataFrame):
    frame = validated_listings
    records = context.instance.fetch_materializations(VALIDATED, limit=2).records
    current = records[0].asset_materialization.metadata if records else {}
    previous = records[1].asset_materialization.metadata if len(records) > 1 else None
    yield from _results(frame, current, previous, datetime.now(UTC))


def _value(metadata: dict, key: str, default=None):
    entry = metadata.get(key)
    return default if entry is None else entry.value


def _results(frame: pd.DataFrame, current: dict, previous: dict | None, now: datetime):
    missing = [c for c in WAREHOUSE_COLUMNS if c not in frame.columns]
    extra = [c for c in frame.columns if c not in WAREHOUSE_COLUMNS]
    yield dg.AssetCheckResult(
        check_name="schema_matches",
        passed=not missing and not extra,
        severity=_ERROR,
        metadata={"missing_columns": ", ".join(missing) or "none", "unexpected_columns": ", ".join(extra) or "none"},
    )

    duplicates = int(frame["listing_id"].duplicated().sum())
    yield dg.AssetCheckResult(
        check_name="unique_listing_ids", passed=duplicates == 0, severity=_ERROR, metadata={"duplicate_ids": duplicates}
    )

    prices = frame["price"].dropna()
    ceiling = float(_value(current, "price_ceiling", ValidationRules.price_ceiling))
    low, high = (float(prices.min()), float(prices.max())) if len(prices) else (0.0, 0.0)
    yield dg.AssetCheckResult(
        check_name="price_range",
        passed=bool(len(prices)) and low > 0 and high <= ceiling,
        severity=_ERROR,
        metadata={"labelled_rows": len(prices), "min_price": low, "max_price": high, "price_ceiling": ceiling},
    )

    rejected_share = float(_value(current, "rejected_share", 0.0))
    yield dg.AssetCheckResult(
        check_name="rejected_share",
        passed=rejected_share <= THRESHOLDS.max_rejected_share,
        severity=_ERROR,
        metadata={
            "rejected_share": rejected_share,
            "rejected_rows": int(_value(current, "rejected_rows", 0)),
            "rows_in": int(_value(current, "rows_in", len(frame))),
            "limit": THRESHOLDS.max_rejected_share,
        },
    )

    rates = quality.null_rates(frame)
    over = {c: r for c, r in rates.items() if r > quality.NULL_RATE_LIMITS[c]}
    yield dg.AssetCheckResult(
        check_name="null_rates",
        passed=not over,
        severity=_WARN,
        metadata={
            "over_limit": ", ".join(sorted(over)) or "none",
            **{f"null_rate/{c}": round(r, 4) for c, r in rates.items()},
        },
    )

    outliers = quality.log_price_outliers(frame["price"])
    yield dg.AssetCheckResult(
        check_name="log_price_outliers",
        passed=outliers.share <= THRESHOLDS.max_outlier_share,
        severity=_WARN,
        metadata={
            "outlier_share": outliers.share,
            "outliers": outliers.outliers,
            "labelled_rows": outliers.labelled,
            "mean_log_price": outliers.mean_log_price,
            "std_log_price": outliers.std_log_price,
        },
    )

    categories = frame["category_name"].dropna().unique()
    if previous is None:
        yield dg.AssetCheckResult(
            check_name="category_coverage",
            passed=True,
            severity=_WARN,
            metadata={"note": "first materialization: nothing to compare with", "categories": len(categories)},
        )
    else:
        coverage = quality.category_coverage(_value(previous, "categories", []) or [], categories)
        yield dg.AssetCheckResult(
            check_name="category_coverage",
            passed=coverage.kept_share >= THRESHOLDS.min_category_kept_share,
            severity=_WARN,
            metadata={
                "previous_categories": coverage.previous,
                "current_categories": coverage.current,
                "kept_share": coverage.kept_share,
                "new_categories": coverage.new,
            },
        )

    age = quality.newest_listing_age_hours(frame["created_at"], now)
    yield dg.AssetCheckResult(
        check_name="freshness",
        passed=age is not None and age <= THRESHOLDS.max_age_hours,
        severity=_WARN,
        metadata={
            "newest_listing_age_hours": round(age, 2) if age is not None else -1.0,
            "limit_hours": THRESHOLDS.max_age_hours,
        },
    )
