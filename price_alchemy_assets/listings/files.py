"""Reading Kaggle-format listing files (train.tsv / test.tsv, plain, .gz or .zip) in chunks.

Every problem is reported as one `ListingsFileError` naming the file, the line and the
column, before any row of the file reaches a warehouse: the caller stages chunks and only
commits once the whole file has been read.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from price_alchemy_assets.listings.columns import ID_COLUMNS, LISTING_FIELDS, WAREHOUSE_COLUMNS, listing_id

MAX_FIELD_BYTES = 1 << 20
_BOM = "\ufeff"
_INT_PATTERN = re.compile(r"^\s*[+-]?\d+\s*$")
_REQUIRED = tuple(field for field in LISTING_FIELDS if field != "price")
_OPTIONAL = ("price", "created_at")
_NULLABLE_TEXT = ("category_name", "brand_name", "item_description")


class ListingsFileError(ValueError):
    """A listing file that cannot be ingested; the message is one line: file:line: column: what."""

    def __init__(self, path: str | Path, message: str, line: int | None = None, column: str | None = None):
        self.path, self.line, self.column, self.reason = str(path), line, column, message
        where = f"{path}:{line}" if line else f"{path}"
        what = f"column {column}: {message}" if column else message
        super().__init__(f"{where}: {what}")


@dataclass(frozen=True)
class FileLayout:
    """What the header row says about a file."""

    id_column: str
    columns: tuple[str, ...]

    @property
    def labelled(self) -> bool:
        return "price" in self.columns


class ListingsFile:
    """One listing file opened for chunked reading; use as a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._stack = ExitStack()
        self._raw: IO[bytes] | None = None
        self.total_bytes = 0
        self.layout: FileLayout | None = None
        self._on_bad_row: Callable[[ListingsFileError], None] | None = None

    def __enter__(self) -> ListingsFile:
        try:
            self._binary = self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def bytes_read(self) -> int:
        """Position in the file as stored (compressed bytes for .gz and .zip), for progress bars."""
        return self._raw.tell() if self._raw is not None and not self._raw.closed else self.total_bytes

    def _open(self) -> IO[bytes]:
        if not self.path.exists():
            raise ListingsFileError(self.path, "no such file")
        if self.path.is_dir():
            raise ListingsFileError(self.path, "is a directory, expected a .tsv, .tsv.gz or .zip file")
        self._raw = self._stack.enter_context(self.path.open("rb"))
        self.total_bytes = self.path.stat().st_size
        suffix = self.path.suffix.lower()
        if suffix == ".gz":
            return self._stack.enter_context(gzip.GzipFile(fileobj=self._raw))
        if suffix == ".zip":
            try:
                archive = self._stack.enter_context(zipfile.ZipFile(self._raw))
            except zipfile.BadZipFile as error:
                raise ListingsFileError(self.path, f"not a readable zip archive ({error})") from None
            members = [m for m in archive.namelist() if m.lower().endswith(".tsv") and not m.startswith("__MACOSX")]
            if len(members) != 1:
                found = ", ".join(archive.namelist()) or "nothing"
                need = "no .tsv file" if not members else f"{len(members)} .tsv files"
                raise ListingsFileError(self.path, f"{need} inside, expected exactly one (found: {found})")
            return self._stack.enter_context(archive.open(members[0]))
        return self._raw

    def _lines(self, state: _ReadState) -> Iterator[str]:
        lineno = 0
        try:
            for raw in self._binary:
                lineno += 1
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    bad = raw[error.start : error.start + 1].hex()
                    undecodable = ListingsFileError(
                        self.path, f"not valid UTF-8 (byte 0x{bad} at character {error.start + 1})", lineno
                    )
                    if self._on_bad_row is None or lineno == 1:
                        raise undecodable from None
                    self._on_bad_row(undecodable)  # the line is left out; the next one is read
                    continue
                if lineno == 1:
                    text = text.removeprefix(_BOM)  # a spreadsheet's "UTF-8 with BOM" export
                if state.record_start is None:
                    state.record_start = (lineno, text)
                yield text
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise ListingsFileError(self.path, f"cannot be decompressed ({error})", lineno + 1) from None

    def chunks(
        self,
        chunk_rows: int = 50_000,
        ingested_at: datetime | None = None,
        on_bad_row: Callable[[ListingsFileError], None] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Yield frames with the warehouse columns (see columns.WAREHOUSE_COLUMNS).

        By default the first bad row raises (ingest takes a file whole or not at all). With
        `on_bad_row`, a row with a bad field or the wrong field count is reported there and
        left out, and reading goes on (batch scoring); a file that cannot be read past some
        point (encoding, quoting, header) still raises."""
        self._on_bad_row = on_bad_row
        ingested_at = ingested_at or datetime.now(UTC)
        csv.field_size_limit(MAX_FIELD_BYTES)
        state = _ReadState()
        reader = csv.reader(self._lines(state), delimiter="\t", quotechar='"', strict=True)
        header = self._next_record(reader, state)
        if header is None:
            raise ListingsFileError(self.path, "empty file, expected a header row of train.tsv or test.tsv columns")
        self.layout = self._check_header([h.strip() for h in header[1]])
        width = len(self.layout.columns)
        rows: list[list[str]] = []
        lines: list[int] = []
        while True:
            record = self._next_record(reader, state)
            if record is None:
                break
            line, fields = record
            if len(fields) == 1 and fields[0].strip() == "":
                continue
            if len(fields) != width:
                error = ListingsFileError(
                    self.path, f"expected {width} tab-separated fields, found {len(fields)}", line
                )
                if self._on_bad_row is None:
                    raise error
                self._on_bad_row(error)
                continue
            rows.append(fields)
            lines.append(line)
            if len(rows) >= chunk_rows:
                yield self._to_frame(rows, lines, ingested_at)
                rows, lines = [], []
        if rows:
            yield self._to_frame(rows, lines, ingested_at)

    def _next_record(self, reader, state: _ReadState) -> tuple[int, list[str]] | None:
        while True:
            state.record_start = None
            try:
                fields = next(reader)
            except StopIteration:
                return None
            except csv.Error as error:
                line, text = state.record_start or (reader.line_num, "")
                if not str(error).startswith("field larger than field limit"):
                    raise ListingsFileError(
                        self.path, f"broken quoting ({error})", line, self._quoted_column(text)
                    ) from None
                oversized = ListingsFileError(
                    self.path, f"longer than {MAX_FIELD_BYTES:,} characters", line, self._oversized_column(text)
                )
                if self._on_bad_row is None or self.layout is None:
                    raise oversized from None
                self._on_bad_row(oversized)  # the reader goes on at the next line
                continue
            return state.record_start[0], fields

    def _quoted_column(self, text: str) -> str | None:
        if self.layout is None:
            return None
        for name, field in zip(self.layout.columns, text.rstrip("\r\n").split("\t"), strict=False):
            inner = field[1:-1] if len(field) >= 2 and field.endswith('"') else None
            if field.startswith('"') and (inner is None or inner.replace('""', "").count('"')):
                return name
        return None

    def _oversized_column(self, text: str) -> str | None:
        if self.layout is None:
            return None
        fields = zip(self.layout.columns, text.rstrip("\r\n").split("\t"), strict=False)
        return next((name for name, field in fields if len(field) > MAX_FIELD_BYTES), None)

    def _check_header(self, header: list[str]) -> FileLayout:
        ids = [c for c in header if c in ID_COLUMNS]
        expected = set(_REQUIRED) | set(_OPTIONAL) | set(ID_COLUMNS)
        missing = [c for c in _REQUIRED if c not in header]
        unexpected = [c for c in header if c not in expected]
        duplicated = sorted({c for c in header if header.count(c) > 1})
        problems = []
        if len(ids) != 1:
            problems.append("expected exactly one id column, train_id or test_id")
        if missing:
            problems.append(f"missing column(s): {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected column(s): {', '.join(unexpected)}")
        if duplicated:
            problems.append(f"repeated column(s): {', '.join(duplicated)}")
        if problems:
            raise ListingsFileError(self.path, "; ".join(problems), 1)
        return FileLayout(id_column=ids[0], columns=tuple(header))

    def _to_frame(self, rows: list[list[str]], lines: list[int], ingested_at: datetime) -> pd.DataFrame:
        assert self.layout is not None
        text = pd.DataFrame(rows, columns=list(self.layout.columns))
        line_numbers = pd.Series(lines, dtype="int64")
        check = functools.partial(self._fail_where, line_numbers)
        out = pd.DataFrame(index=text.index)
        id_column = self.layout.id_column
        ids = text[id_column].str.strip()
        dropped = pd.Series(False, index=text.index)
        dropped |= check(ids == "", id_column, ids, "missing id")
        out["listing_id"] = [listing_id(id_column, value) for value in ids]
        out["name"] = text["name"]
        for column in ("item_condition_id", "shipping"):
            values = text[column]
            bad = check(~values.str.match(_INT_PATTERN), column, values, "is not a whole number")
            dropped |= bad
            out[column] = values.where(~bad, "0").astype("int64").astype("Int64")
        for column in _NULLABLE_TEXT:
            out[column] = text[column].where(text[column].str.strip() != "", None)
        if "price" in text:
            stripped = text["price"].str.strip()
            price = pd.to_numeric(stripped.where(stripped != ""), errors="coerce")
            dropped |= check(price.isna() & (stripped != ""), "price", stripped, "is not a number")
            # "inf" and "Infinity" parse as numbers; stored, they made every price statistic infinite
            dropped |= check(np.isinf(price), "price", stripped, "is not a finite number")
            out["price"] = price.astype("float64")
        else:
            out["price"] = float("nan")
        if "created_at" in text:
            stripped = text["created_at"].str.strip()
            created = pd.to_datetime(stripped, utc=True, errors="coerce", format="ISO8601")
            bad = check(created.isna(), "created_at", stripped, "is not an ISO 8601 timestamp")
            dropped |= bad
            out["created_at"] = created.fillna(pd.Timestamp(ingested_at)).astype("datetime64[us, UTC]")
        else:
            out["created_at"] = pd.Timestamp(ingested_at).tz_convert("UTC")
            out["created_at"] = out["created_at"].astype("datetime64[us, UTC]")
        out["source_file"] = self.path.name
        out["source_line"] = line_numbers.astype("Int64")
        out["row_fingerprint"] = fingerprints(out)
        out["ingested_at"] = pd.Timestamp(ingested_at).tz_convert("UTC")
        out["ingested_at"] = out["ingested_at"].astype("datetime64[us, UTC]")
        return out.loc[~dropped, list(WAREHOUSE_COLUMNS)]

    def _fail_where(self, lines: pd.Series, bad: pd.Series, column: str, values: pd.Series, what: str) -> pd.Series:
        """Raise on the first bad row, or, when the caller takes bad rows, report each and mark it dropped."""
        if not bad.any():
            return bad
        positions = np.flatnonzero(bad.to_numpy())
        errors = (
            ListingsFileError(self.path, f"{values.iloc[p]!r} {what}", int(lines.iloc[p]), column) for p in positions
        )
        if self._on_bad_row is None:
            raise next(errors)
        for error in errors:
            self._on_bad_row(error)
        return bad


@dataclass
class _ReadState:
    record_start: tuple[int, str] | None = None


_FINGERPRINT_FIELDS = ("listing_id", *LISTING_FIELDS)


def fingerprints(frame: pd.DataFrame) -> list[str]:
    """A stable content hash of a listing's Kaggle fields: the same row ingested twice is
    recognised whatever created_at the ingest gave it."""
    parts = [frame[c].astype("string").fillna("\x00") for c in _FINGERPRINT_FIELDS]
    joined = parts[0].str.cat(parts[1:], sep="\x1f")
    return [hashlib.blake2b(value.encode(), digest_size=12).hexdigest() for value in joined]


def read_listings_frame(path: str | Path) -> pd.DataFrame:
    """The whole file as one frame: for small files and tests; ingestion streams chunks instead."""
    with ListingsFile(path) as listings:
        frames = list(listings.chunks())
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(WAREHOUSE_COLUMNS))
