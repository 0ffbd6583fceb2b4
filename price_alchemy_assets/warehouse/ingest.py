"""Loading listing files into a warehouse: streamed in chunks, committed all at once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from price_alchemy_assets.listings.files import ListingsFile
from price_alchemy_assets.warehouse import AppendResult, Warehouse

DEFAULT_CHUNK_ROWS = 50_000


def ingest_listings_file(
    path: str | Path,
    warehouse: Warehouse,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_progress: Callable[[int, int], None] | None = None,
) -> AppendResult:
    """Ingest one Kaggle-format file; `on_progress(bytes_read, total_bytes)` follows the file.

    Memory stays bounded by `chunk_rows`. Any error in the file (raised as ListingsFileError)
    leaves the warehouse as it was; ingesting the same file again adds nothing.
    """
    ingested_at = datetime.now(UTC)
    with ListingsFile(path) as listings:
        report = (lambda _rows: on_progress(listings.bytes_read(), listings.total_bytes)) if on_progress else None
        return warehouse.append_listings(listings.chunks(chunk_rows, ingested_at), on_chunk=report)
