"""What a valid listing is, as a pandera DataFrameModel, and the split of raw listings into
valid and rejected rows with the rule each rejected row broke.

Normal-missing (kept): brand, category and description may be empty; price is empty on
unlabelled rows (test.tsv). Invalid (rejected): a price of 0 or below or above the ceiling,
a blank name, a condition outside 1..5, shipping outside {0, 1}, oversized text, a listing id
seen before.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pandera.typing import Series

from price_alchemy_assets.listings.columns import conform

REJECTION_COLUMN = "rejection_reason"
DUPLICATE_REASON = "listing_id: repeats an earlier listing"


@dataclass(frozen=True)
class ValidationRules:
    price_ceiling: float = 2500.0
    """Highest plausible price, USD."""
    max_name_chars: int = 255
    max_description_chars: int = 5000


class ValidListings(pa.DataFrameModel):
    """A listing fit for training and serving. Limits come from `_rules`; see `model_for`."""

    _rules = ValidationRules()

    listing_id: Series[str] = pa.Field(unique=True)
    name: Series[str]
    item_condition_id: Series[pd.Int64Dtype] = pa.Field(isin=[1, 2, 3, 4, 5])
    category_name: Series[str] = pa.Field(nullable=True)
    brand_name: Series[str] = pa.Field(nullable=True)
    price: Series[float] = pa.Field(nullable=True)
    shipping: Series[pd.Int64Dtype] = pa.Field(isin=[0, 1])
    item_description: Series[str] = pa.Field(nullable=True)
    created_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "us", "tz": "UTC"})
    source_file: Series[str]
    source_line: Series[pd.Int64Dtype]
    row_fingerprint: Series[str]
    ingested_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "us", "tz": "UTC"})

    @pa.check("name")
    def _name_not_blank(cls, name: Series[str]) -> Series[bool]:
        return name.str.strip().str.len() > 0

    @pa.check("name")
    def _name_length(cls, name: Series[str]) -> Series[bool]:
        return name.str.len() <= cls._rules.max_name_chars

    @pa.check("item_description")
    def _description_length(cls, description: Series[str]) -> Series[bool]:
        return description.isna() | (description.str.len() <= cls._rules.max_description_chars)

    @pa.check("price")
    def _price_positive(cls, price: Series[float]) -> Series[bool]:
        return price.isna() | (price > 0)

    @pa.check("price")
    def _price_ceiling(cls, price: Series[float]) -> Series[bool]:
        return price.isna() | (price <= cls._rules.price_ceiling)

    class Config:
        strict = True
        coerce = False


@functools.lru_cache(maxsize=8)
def model_for(rules: ValidationRules) -> type[ValidListings]:
    """ValidListings with these limits (pandera builds one schema per class)."""
    return type(
        "ValidListings",
        (ValidListings,),
        {"_rules": rules},
    )


@dataclass
class ValidationResult:
    valid: pd.DataFrame
    rejected: pd.DataFrame

    @property
    def rows_in(self) -> int:
        return len(self.valid) + len(self.rejected)

    def reason_counts(self) -> pd.Series:
        """Rejected rows per broken rule (a row that broke two rules counts under both)."""
        if self.rejected.empty:
            return pd.Series(dtype="int64")
        return self.rejected[REJECTION_COLUMN].str.split("; ").explode().value_counts()


def validate_listings(raw: pd.DataFrame, rules: ValidationRules = ValidationRules()) -> ValidationResult:
    """Split raw listings into valid and rejected; no row is dropped: rows in = valid + rejected."""
    frame = conform(raw.reset_index(drop=True))
    order = frame.sort_values(["created_at", "source_file", "source_line"], kind="stable").index
    duplicate = frame.loc[order, "listing_id"].duplicated().reindex(frame.index)
    reasons = pd.Series("", index=frame.index, dtype=object)
    reasons[duplicate] = DUPLICATE_REASON
    candidates = frame[~duplicate]
    try:
        model_for(rules).validate(candidates, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        structural = cases[cases["index"].isna()]
        if not structural.empty:
            details = "; ".join(f"{row.column}: {row.check}" for row in structural.itertuples())
            raise ValueError(f"raw listings do not have the warehouse schema: {details}") from None
        cases = cases.assign(reason=cases["column"].astype(str) + ": " + cases["check"].map(_rule_text))
        per_row = cases.groupby("index")["reason"].agg(lambda found: "; ".join(dict.fromkeys(found)))
        per_row.index = per_row.index.astype("int64")
        reasons.loc[per_row.index] = per_row
    bad = reasons != ""
    valid = frame[~bad].reset_index(drop=True)
    rejected = frame[bad].assign(**{REJECTION_COLUMN: reasons[bad]}).reset_index(drop=True)
    return ValidationResult(valid=valid, rejected=rejected)


def _rule_text(check: object) -> str:
    text = str(check)
    return _RULE_TEXT.get(text, text.replace("isin(", "is not one of (").replace("[", "").replace("]", ""))


_RULE_TEXT = {
    "not_nullable": "is missing",
    "field_uniqueness": "repeats an earlier listing",
    "_name_not_blank": "is blank",
    "_name_length": "is too long",
    "_description_length": "is too long",
    "_price_positive": "is not above 0",
    "_price_ceiling": "is above the price ceiling",
}
