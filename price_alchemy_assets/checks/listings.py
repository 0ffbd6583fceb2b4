"""Data-quality checks on validated_listings. Those that must stop training are blocking.

The numbers come from listings.quality; each result carries them as metadata, so the Dagster
UI shows what was measured, not just pass or fail.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from price_alchemy_assets.listings import quality
from price_alchemy_assets.listings.columns import WAREHOUSE_COLUMNS
from price_alchemy_assets.listings.validation import ValidationRules

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
