"""Comparable listings: the training listings most like a seller's, with the prices they asked.

A seller weighs a suggestion against evidence, and the listings the model learned from that look
most like theirs are evidence they can check. Similarity is the cosine between TF-IDF vectors of
the title and the brand (words, sublinear term frequency, L2-normalised rows). Listings of the
same category come first: the rows are kept sorted by category path, so a category and each of
its parent paths is one run of consecutive rows. A lookup scores the listing's own category and
widens to the parent path only while fewer than `count` listings there are similar enough
(MIN_SIMILARITY: sharing a common word such as "size" is not being comparable). The answer keeps
that order, most similar first within each: a pair of shoes from the seller's category before a
shirt of the same brand that shares more words.

A lookup reads only the rows that share a word with the listing: the vectors are kept by word
(CSC, each word's rows in row order), so a category's rows are a slice of each word's. Scoring every
row of a range instead cost ~80 ms when a listing found too few similar ones in its category and
its parents and the search widened to all 1.2 M rows of a champion trained on 1.5 M listings.

Kept in the bundle's `comparables/` folder (the vectors by word as CSC float32, the listings'
fields as Parquet, the fitted vectorizer) and loaded only where explanations are made, not where
prices are.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer

FIELDS = ["name", "item_condition_id", "category_name", "brand_name", "price"]
"""What a seller sees of each comparable listing (with the similarity)."""
FOLDER = "comparables"
DEFAULT_COUNT = 5
MIN_SIMILARITY = 0.2
"""Below it a listing shares a word or two with the seller's, not the item: better none than those."""
MAX_VOCABULARY = 200_000
"""Title and brand words kept; the rarest beyond it match too few listings to matter."""


@dataclass(frozen=True)
class Comparable:
    name: str
    item_condition_id: int
    category_name: str | None
    brand_name: str | None
    price: float
    similarity: float
    """Cosine similarity of the title and brand words, 0 to 1."""


def _text(listings: pd.DataFrame) -> list[str]:
    """Title and brand, the words a comparable must share."""
    return (listings["name"].fillna("").astype(str) + " " + listings["brand_name"].fillna("").astype(str)).tolist()


def _listing_text(listing: dict) -> str:
    """_text of one listing, without building a frame (a tenth of a lookup)."""
    return " ".join(value for value in (listing.get("name"), listing.get("brand_name")) if isinstance(value, str))


class ComparableListings:
    """The index: vectors and fields of the training listings, sorted by category path."""

    def __init__(
        self, vectorizer: TfidfVectorizer, vectors: sp.spmatrix, listings: pa.Table, categories: list[str], starts
    ):
        self.vectorizer = vectorizer
        self.vectors = vectors.tocsc()  # by word; a bundle saved before stored them by row
        self.vectors.sort_indices()
        self.listings = listings
        self.categories = categories
        """Every category path present, sorted ("" for none), each starting at `starts[i]`."""
        self.starts = np.asarray(starts, dtype=np.int64)
        self._conditions = listings.column("item_condition_id").to_numpy()

    @classmethod
    def fit(cls, listings: pd.DataFrame) -> ComparableListings:
        """From the listings a model learned from (FIELDS; a positive price)."""
        frame = listings[FIELDS].copy()
        frame["category_name"] = frame["category_name"].fillna("")
        frame = frame.sort_values("category_name", kind="stable").reset_index(drop=True)
        vectorizer = TfidfVectorizer(sublinear_tf=True, max_features=MAX_VOCABULARY, dtype=np.float32)
        vectors = vectorizer.fit_transform(_text(frame))
        categories, starts = np.unique(frame["category_name"].to_numpy(dtype=object), return_index=True)
        frame["category_name"] = frame["category_name"].replace("", None)
        frame["item_condition_id"] = frame["item_condition_id"].astype("int8")
        frame["price"] = frame["price"].astype("float32")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        return cls(vectorizer, vectors, table, [str(c) for c in categories], starts)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def save(self, directory: str | Path) -> Path:
        folder = Path(directory) / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        sp.save_npz(folder / "vectors.npz", self.vectors, compressed=False)  # loads at disk speed
        pq.write_table(self.listings, folder / "listings.parquet")
        joblib.dump(self.vectorizer, folder / "vectorizer.joblib")
        (folder / "categories.json").write_text(
            json.dumps({"categories": self.categories, "starts": self.starts.tolist()})
        )
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> ComparableListings | None:
        """The index in a bundle folder; None for a bundle made before comparables were."""
        folder = Path(directory) / FOLDER
        if not (folder / "categories.json").is_file():
            return None
        index = json.loads((folder / "categories.json").read_text())
        return cls(
            joblib.load(folder / "vectorizer.joblib"),
            sp.load_npz(folder / "vectors.npz"),
            pq.read_table(folder / "listings.parquet").combine_chunks(),  # `take` on one chunk: 50x faster
            index["categories"],
            index["starts"],
        )

    def find(self, listing: dict, count: int = DEFAULT_COUNT) -> list[Comparable]:
        """Up to `count` similar training listings: its own category's first, then the parent paths',
        most similar first within each."""
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            query = self.vectorizer.transform([_listing_text(listing)])
        if query.nnz == 0:
            return []
        category, condition = listing.get("category_name"), listing.get("item_condition_id")
        category = category if isinstance(category, str) else ""
        condition = int(condition) if isinstance(condition, int | np.integer) else 0
        chosen: list[tuple[float, int]] = []
        for start, end in self._widening(category):
            taken = {row for _, row in chosen}
            best = self._best(query, start, end, count + len(taken), condition)
            found = [(score, row) for score, row in best if row not in taken]
            chosen += found[: count - len(chosen)]
            if len(chosen) >= count:
                break
        rows = [row for _, row in chosen]
        fields = self.listings.take(pa.array(rows, type=pa.int64())).to_pylist()
        return [
            Comparable(
                name=values["name"],
                item_condition_id=int(values["item_condition_id"]),
                category_name=values["category_name"],
                brand_name=values["brand_name"],
                price=round(float(values["price"]), 2),
                similarity=round(min(1.0, score), 4),
            )
            for (score, _), values in zip(chosen, fields, strict=True)
        ]

    def _widening(self, category: str):
        """Row ranges to search in turn: the category, each parent path, then every listing."""
        paths = [category] + [
            "/".join(category.split("/")[:depth]) + "/" for depth in range(category.count("/"), 0, -1)
        ]
        for path in paths if category else []:
            first = bisect.bisect_left(self.categories, path)
            if path.endswith("/"):
                last = bisect.bisect_left(self.categories, path[:-1] + chr(ord("/") + 1))
            else:
                last = first + 1 if first < len(self.categories) and self.categories[first] == path else first
            if first < last:
                yield int(self.starts[first]), self._start_of(last)
        yield 0, len(self)

    def _start_of(self, category_index: int) -> int:
        return int(self.starts[category_index]) if category_index < len(self.starts) else len(self)

    def _best(self, query: sp.csr_matrix, start: int, end: int, count: int, condition: int) -> list[tuple[float, int]]:
        """(similarity, row) of the best `count` rows in [start, end) similar enough, best first;
        among equals, those in the listing's condition, then in row order (never by chance)."""
        indptr, rows_of, values_of = self.vectors.indptr, self.vectors.indices, self.vectors.data
        rows, products = [], []
        for word, weight in zip(query.indices.tolist(), query.data.tolist(), strict=True):
            low, high = indptr[word], indptr[word + 1]
            first, last = np.searchsorted(rows_of[low:high], (start, end)) + low
            rows.append(rows_of[first:last])
            products.append(values_of[first:last] * weight)
        rows = np.concatenate(rows) - start
        if not len(rows):
            return []
        scores = np.bincount(rows, weights=np.concatenate(products), minlength=end - start).astype(np.float32)
        matching = np.flatnonzero(scores >= MIN_SIMILARITY)
        if len(matching) > count:  # every row as good as the count-th stays in, for the tie-break below
            threshold = np.partition(scores[matching], len(matching) - count)[len(matching) - count]
            matching = matching[scores[matching] >= threshold]
        other_condition = self._conditions[start + matching] != condition
        ordered = matching[np.lexsort((matching, other_condition, -scores[matching]))][:count]
        return [(float(scores[row]), start + int(row)) for row in ordered]


def position_among(price: float, comparables: list[Comparable]) -> int:
    """How many of the comparables asked less than `price`: where the suggestion sits among them."""
    return sum(1 for comparable in comparables if comparable.price < price)
