"""The embedded default: a DuckDB file on local disk."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from price_alchemy_assets.listings.columns import WAREHOUSE_COLUMNS
from price_alchemy_assets.warehouse.base import Session, Warehouse

_TYPES = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "timestamp": "TIMESTAMPTZ"}
_PARAM = re.compile(r"@(\w+)")


class DuckDBSession(Session):
    def __init__(self, connection: duckdb.DuckDBPyConnection):
        self.connection = connection

    def ref(self, table: str) -> str:
        return f'"{table}"'

    def column_type(self, kind: str) -> str:
        return _TYPES[kind]

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.connection.execute(_PARAM.sub(r"$\1", sql), params or {}).df()

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        result = self.connection.execute(_PARAM.sub(r"$\1", sql), params or {}).fetchone()
        return int(result[0]) if result and isinstance(result[0], int) else 0

    def load(self, table: str, frame: pd.DataFrame) -> None:
        columns = ", ".join(WAREHOUSE_COLUMNS)
        self.connection.register("incoming_listings", frame)
        try:
            self.connection.execute(
                f"INSERT INTO {self.ref(table)} ({columns}) SELECT {columns} FROM incoming_listings"
            )
        finally:
            self.connection.unregister("incoming_listings")

    def create_staging(self, table: str) -> None:
        self.connection.execute(f"CREATE TEMP TABLE {self.ref(table)} ({self.columns_ddl()})")


DEFAULT_MEMORY_LIMIT = "512MB"


class DuckDBWarehouse(Warehouse):
    """`memory_limit` caps DuckDB's buffer pool: staged ingests and big sorts spill to disk, so an
    ingest's memory follows its chunk size rather than the file's size."""

    def __init__(self, path: str | Path, memory_limit: str = DEFAULT_MEMORY_LIMIT):
        self.path = Path(path)
        self.memory_limit = memory_limit

    def describe(self) -> str:
        return f"DuckDB file {self.path}"

    @contextmanager
    def session(self) -> Iterator[DuckDBSession]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = duckdb.connect(str(self.path))
        try:
            connection.execute("SET enable_progress_bar = false")
            connection.execute(f"SET memory_limit = '{self.memory_limit}'")
            yield DuckDBSession(connection)
        finally:
            connection.close()
