"""The embedded default: a DuckDB file on local disk."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from price_alchemy_assets.listings.columns import WAREHOUSE_COLUMNS
from price_alchemy_assets.warehouse.base import Session, Warehouse, WarehouseBusy

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

    def __init__(self, path: str | Path, memory_limit: str = DEFAULT_MEMORY_LIMIT, lock_wait_seconds: float = 20.0):
        """`lock_wait_seconds`: how long to wait while another process (an ingest, a run, a
        sensor tick) has the file open, before giving up with WarehouseBusy."""
        self.path = Path(path)
        self.memory_limit = memory_limit
        self.lock_wait_seconds = lock_wait_seconds

    def describe(self) -> str:
        return f"DuckDB file {self.path}"

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """DuckDB lets one process at a time open the file: wait for the other to finish."""
        deadline, pause = time.monotonic() + self.lock_wait_seconds, 0.1
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as error:
                if "lock" not in str(error).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseBusy(
                        f"{self.describe()} is in use by another process after waiting "
                        f"{self.lock_wait_seconds:.0f} s: {error}"
                    ) from error
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    @contextmanager
    def session(self) -> Iterator[DuckDBSession]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = self._connect()
        try:
            connection.execute("SET enable_progress_bar = false")
            connection.execute(f"SET memory_limit = '{self.memory_limit}'")
            yield DuckDBSession(connection)
        finally:
            connection.close()
