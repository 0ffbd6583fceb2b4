"""The listings warehouse: one small interface, an embedded DuckDB file or BigQuery behind it."""

from price_alchemy_assets.warehouse.base import AppendResult, Warehouse, WarehouseBusy

__all__ = ["AppendResult", "Warehouse", "WarehouseBusy"]
