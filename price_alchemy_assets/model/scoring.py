"""Batch scoring of a Kaggle-format file with a model bundle, streamed in chunks.

Rows that cannot be scored (a bad field, a blank name, a condition outside 1..5...) go to a
side file with the line and the reason; the rest of the batch completes. Both files are
written under temporary names and renamed at the end.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from price_alchemy_assets.listings.files import ListingsFile, ListingsFileError
from price_alchemy_assets.listings.validation import REJECTION_COLUMN, validate_listings
from price_alchemy_assets.model.bundle import PRICE_COLUMNS, PriceModel


@dataclass(frozen=True)
class ScoringResult:
    scored: int
    rejected: int
    output: Path
    rejects: Path


def rejects_path_for(output: Path) -> Path:
    return output.with_name(f"{output.stem}.rejected.csv")


def score_file(
    path: str | Path,
    model: PriceModel,
    output: str | Path,
    chunk_rows: int = 50_000,
    on_progress: Callable[[int, int], None] | None = None,
) -> ScoringResult:
    output = Path(output)
    rejects = rejects_path_for(output)
    partial_output, partial_rejects = (
        output.with_name(output.name + ".partial"),
        rejects.with_name(rejects.name + ".partial"),
    )
    scored = rejected = 0
    bad_rows: list[ListingsFileError] = []
    try:
        with (
            ListingsFile(path) as listings,
            open(partial_output, "w", newline="") as out,
            open(partial_rejects, "w", newline="") as side,
        ):
            side_writer = csv.writer(side)
            side_writer.writerow(["line", "id", "column", "reason"])

            def write_unreadable_rows() -> int:
                count = len(bad_rows)
                side_writer.writerows([error.line, "", error.column or "", error.reason] for error in bad_rows)
                bad_rows.clear()
                return count

            out_writer = None
            for chunk in listings.chunks(chunk_rows, on_bad_row=bad_rows.append):
                id_column = listings.layout.id_column
                if out_writer is None:
                    out_writer = csv.writer(out)
                    out_writer.writerow([id_column, *PRICE_COLUMNS])
                rejected += write_unreadable_rows()
                checked = validate_listings(chunk.assign(price=np.nan))
                for row in checked.rejected.itertuples():
                    side_writer.writerow([row.source_line, _raw_id(row.listing_id), "", getattr(row, REJECTION_COLUMN)])
                rejected += len(checked.rejected)
                if len(checked.valid):
                    prices = model.predict(checked.valid).round(2)
                    ids = [_raw_id(value) for value in checked.valid["listing_id"]]
                    out_writer.writerows(zip(ids, *(prices[c].tolist() for c in PRICE_COLUMNS), strict=True))
                    scored += len(checked.valid)
                if on_progress:
                    on_progress(listings.bytes_read(), listings.total_bytes)
            rejected += write_unreadable_rows()
            if out_writer is None:
                csv.writer(out).writerow(["id", *PRICE_COLUMNS])
        os.replace(partial_output, output)
        os.replace(partial_rejects, rejects)
    finally:
        for leftover in (partial_output, partial_rejects):
            leftover.unlink(missing_ok=True)
    return ScoringResult(scored, rejected, output, rejects)


def _raw_id(listing_id: str) -> str:
    return listing_id.split("-", 1)[1]
