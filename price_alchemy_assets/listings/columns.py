"""The one description of a listing's columns, shared by files, warehouse and validation."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

ID_COLUMNS = ("train_id", "test_id")
"""Kaggle's id column: train.tsv carries train_id (and price), test.tsv carries test_id."""

LISTING_FIELDS = (
    "name",
    "item_condition_id",
    "category_name",
    "brand_name",
    "price",
    "shipping",
    "item_description",
)
"""The fields a seller fills in, plus the price (absent in unlabelled files)."""

SELLER_FIELDS = tuple(field for field in LISTING_FIELDS if field != "price")
"""What a seller enters and the model reads: a listing without its price."""


def seller_columns(listings: list[dict]) -> dict[str, list]:
    """Listings (one dict each, as the service receives them) as the model reads them: one list per
    seller field, a missing field None. No frame: building one costs a lone listing a quarter of
    its price."""
    return {field: [listing.get(field) for listing in listings] for field in SELLER_FIELDS}


WAREHOUSE_COLUMNS: dict[str, str] = {
    "listing_id": "string",
    "name": "string",
    "item_condition_id": "int",
    "category_name": "string",
    "brand_name": "string",
    "price": "float",
    "shipping": "int",
    "item_description": "string",
    "created_at": "timestamp",
    "source_file": "string",
    "source_line": "int",
    "row_fingerprint": "string",
    "ingested_at": "timestamp",
}
"""Column name -> logical type of the warehouse `listings` table (and of raw_listings)."""

PANDAS_DTYPES = {"string": "object", "int": "Int64", "float": "float64", "timestamp": "datetime64[us, UTC]"}


def listing_id(id_column: str, raw_id: str) -> str:
    """train_id 12 -> 'train-12', test_id 12 -> 'test-12': both files share one table."""
    return f"{id_column.removesuffix('_id')}-{raw_id}"


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast a frame read from any backend to the warehouse column types, in column order."""
    out = pd.DataFrame(index=frame.index)
    for name, kind in WAREHOUSE_COLUMNS.items():
        values = frame[name]
        if kind == "timestamp":
            out[name] = pd.to_datetime(values, utc=True).astype(PANDAS_DTYPES[kind])
        elif kind == "string":
            out[name] = values.astype(object).where(values.notna(), None)
        else:
            out[name] = values.astype(PANDAS_DTYPES[kind])
    return out


def utc(moment: datetime) -> datetime:
    """Any datetime as an aware UTC datetime; naive ones are taken to be UTC already."""
    stamp = pd.Timestamp(moment)
    return (stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")).to_pydatetime()
