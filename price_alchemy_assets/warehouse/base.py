"""The warehouse interface and the SQL both backends share.

A backend only supplies a `Session` (run a query, run a statement, load a frame, name a
table, type a column); everything the platform asks of a warehouse is written once here,
in SQL that DuckDB and BigQuery both accept.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from price_alchemy_assets.listings.columns import WAREHOUSE_COLUMNS, conform, utc

LISTINGS_TABLE = "listings"
GROUPABLE = {
    "item_condition_id": "item_condition_id",
    "category_name": "category_name",
    "brand_name": "brand_name",
    "shipping": "shipping",
    "source_file": "source_file",
    "price": "price",
    "name_chars": "LENGTH(name)",
    "description_chars": "COALESCE(LENGTH(item_description), 0)",
}
"""What listings can be counted by, and its SQL (the same in DuckDB and BigQuery)."""


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse (an embedded file has one writer at a time)."""


@dataclass(frozen=True)
class AppendResult:
    rows_read: int
    rows_added: int

    @property
    def rows_already_present(self) -> int:
        return self.rows_read - self.rows_added


class Session(ABC):
    """One open connection to a backend. SQL placeholders are `{table}` names and `@param`s."""

    @abstractmethod
    def ref(self, table: str) -> str: ...

    @abstractmethod
    def column_type(self, kind: str) -> str: ...

    @abstractmethod
    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame: ...

    @abstractmethod
    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run a statement; returns the rows it changed (0 for DDL)."""

    @abstractmethod
    def load(self, table: str, frame: pd.DataFrame) -> None:
        """Append a frame with the warehouse columns to a table."""

    @abstractmethod
    def create_staging(self, table: str) -> None:
        """A table with the listings columns that disappears if the process dies."""

    def columns_ddl(self) -> str:
        return ", ".join(f"{name} {self.column_type(kind)}" for name, kind in WAREHOUSE_COLUMNS.items())

    def create_listings(self, table: str) -> None:
        self.execute(f"CREATE TABLE IF NOT EXISTS {self.ref(table)} ({self.columns_ddl()})")

    def drop(self, table: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {self.ref(table)}")


_COLUMNS = ", ".join(WAREHOUSE_COLUMNS)

_MERGE_NEW_ROWS = f"""
INSERT INTO {{listings}} ({_COLUMNS})
SELECT {_COLUMNS} FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY row_fingerprint ORDER BY source_line) AS copy_number
  FROM {{staging}}
) AS staged
WHERE copy_number = 1
  AND NOT EXISTS (SELECT 1 FROM {{listings}} AS stored WHERE stored.row_fingerprint = staged.row_fingerprint)
"""


class Warehouse(ABC):
    """Listings storage: append (idempotently), read a created_at window, cheap aggregates."""

    listings_table = LISTINGS_TABLE
    _schema_ready = False

    @abstractmethod
    def session(self) -> AbstractContextManager[Session]: ...

    @contextmanager
    def _listings_session(self) -> Iterator[Session]:
        """A session in which the listings table is known to exist (created once per instance)."""
        with self.session() as session:
            if not self._schema_ready:
                session.create_listings(self.listings_table)
                self._schema_ready = True
            yield session

    def describe(self) -> str:
        return type(self).__name__

    def ensure_schema(self) -> None:
        with self._listings_session():
            pass

    def append_listings(
        self, chunks: Iterable[pd.DataFrame], on_chunk: Callable[[int], None] | None = None
    ) -> AppendResult:
        """Stage every chunk, then add the rows not already stored in one statement.

        If reading any chunk fails, the staging table is dropped and `listings` is untouched;
        a row already stored (same content fingerprint) is never added twice.
        """
        staging = f"listings_staging_{uuid.uuid4().hex[:12]}"
        rows = 0
        with self._listings_session() as session:
            session.create_staging(staging)
            try:
                for chunk in chunks:
                    session.load(staging, chunk)
                    rows += len(chunk)
                    if on_chunk:
                        on_chunk(len(chunk))
                added = session.execute(
                    _MERGE_NEW_ROWS.format(listings=session.ref(self.listings_table), staging=session.ref(staging))
                )
            finally:
                session.drop(staging)
        return AppendResult(rows_read=rows, rows_added=added)

    def read_listings(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Listings with start <= created_at < end, in created_at order."""
        where, params = _window(start, end)
        with self._listings_session() as session:
            frame = session.query(
                f"SELECT {_COLUMNS} FROM {session.ref(self.listings_table)} {where} ORDER BY created_at, listing_id",
                params,
            )
        return conform(frame.reset_index(drop=True))

    def sample_labelled(self, limit: int | None, ingested_after: datetime | None = None) -> pd.DataFrame:
        """Up to `limit` priced listings (ingested after a moment; every one without a limit): a fixed
        pseudo-random pick, by row fingerprint, so a sensor can score new labelled rows without
        reading them all."""
        where, params = _window(None, None, ingested_after)
        where = f"{where} AND price > 0" if where else "WHERE price > 0"
        limit_sql = "" if limit is None else f" LIMIT {int(limit)}"
        with self._listings_session() as session:
            frame = session.query(
                f"SELECT {_COLUMNS} FROM {session.ref(self.listings_table)} {where} "
                f"ORDER BY row_fingerprint{limit_sql}",
                params,
            )
        return conform(frame.reset_index(drop=True))

    def ingest_watermark(self) -> tuple[int, datetime | None]:
        """How many listings are stored and when the newest arrived: rows only ever arrive (an ingest
        adds, nothing updates), so this pair changes exactly when the table's content does."""
        with self._listings_session() as session:
            row = session.query(
                f"SELECT COUNT(*) AS listings, MAX(ingested_at) AS newest FROM {session.ref(self.listings_table)}"
            ).iloc[0]
        newest = None if pd.isna(row["newest"]) else pd.Timestamp(row["newest"]).to_pydatetime()
        return int(row["listings"]), newest

    def count_listings(self, start: datetime | None = None, end: datetime | None = None) -> int:
        return int(self.summary(start, end)["listings"])

    def summary(self, start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
        """Row counts, labelled share, created_at range and log-price moments, computed in the warehouse."""
        where, params = _window(start, end)
        sql = f"""
        SELECT COUNT(*) AS listings, COUNT(price) AS labelled,
               MIN(created_at) AS first_created_at, MAX(created_at) AS last_created_at,
               AVG(CASE WHEN price > 0 THEN LN(price) END) AS mean_log_price,
               STDDEV_SAMP(CASE WHEN price > 0 THEN LN(price) END) AS std_log_price
        FROM {{listings}} {where}
        """
        with self._listings_session() as session:
            row = session.query(sql.format(listings=session.ref(self.listings_table)), params).iloc[0]
        return {key: (None if pd.isna(value) else value) for key, value in row.items()} | {
            "listings": int(row["listings"]),
            "labelled": int(row["labelled"]),
        }

    def count_by(
        self,
        column: str,
        start: datetime | None = None,
        end: datetime | None = None,
        ingested_after: datetime | None = None,
    ) -> pd.DataFrame:
        """Listings per value of one GROUPABLE column or measure (a GROUP BY in the warehouse, never a
        table scan to pandas), optionally only those ingested after a moment."""
        return self.count_by_each([column], start, end, ingested_after)[column]

    def count_by_each(
        self,
        columns: Iterable[str],
        start: datetime | None = None,
        end: datetime | None = None,
        ingested_after: datetime | None = None,
    ) -> dict[str, pd.DataFrame]:
        """count_by for several columns in one session: one connection, one view of the table."""
        columns = list(columns)
        unknown = [column for column in columns if column not in GROUPABLE]
        if unknown:
            raise ValueError(f"cannot group listings by {unknown[0]!r}; choose one of {', '.join(GROUPABLE)}")
        where, params = _window(start, end, ingested_after)
        counts = {}
        with self._listings_session() as session:
            for column in columns:
                frame = session.query(
                    f"SELECT {GROUPABLE[column]} AS value, COUNT(*) AS listings "
                    f"FROM {session.ref(self.listings_table)} {where} GROUP BY value ORDER BY listings DESC, value",
                    params,
                )
                frame["listings"] = frame["listings"].astype("int64")
                counts[column] = frame.reset_index(drop=True)
        return counts


def _window(
    start: datetime | None, end: datetime | None, ingested_after: datetime | None = None
) -> tuple[str, dict[str, Any]]:
    bounds = {
        "start": (start, "created_at >= @start"),
        "end": (end, "created_at < @end"),
        "ingested_after": (ingested_after, "ingested_at > @ingested_after"),
    }
    given = {key: (utc(moment), condition) for key, (moment, condition) in bounds.items() if moment is not None}
    where = " AND ".join(condition for _, condition in given.values())
    return (f"WHERE {where}" if where else ""), {key: moment for key, (moment, _) in given.items()}
