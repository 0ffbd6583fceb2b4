"""The listing featurizer: raw listing fields in, one sparse matrix out (scikit-learn style).

Word TF-IDF on the title (name + brand), on the description, and on the whole text (title,
category and description: a word counts wherever the seller wrote it); character 2-4-gram TF-IDF
of the title (spelling
variants, sizes, model numbers: "iphone6s", "xs"); crossed tokens that say which brand or
category a title word appears with ("nike__air" is not "air" in a kitchen); one-hot brand,
category (whole path and each level), condition and shipping; a few engineered numbers (text
lengths, "new with tags", bundle size, storage size). Fitted on the train split only.
"""

from __future__ import annotations

import re
import time
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import repeat

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import OneHotEncoder

NO_DESCRIPTION = "No description yet"
# matched against lowercased text: a case-insensitive pattern scans several times slower
_BUNDLE = re.compile(r"\b(?:bundle|lot) of (\d{1,2})\b")
_STORAGE = re.compile(r"\b(\d{2,4}) ?gb\b")
_NEW_WITH_TAGS = re.compile(r"\b(?:nwt|new with tags|bnwt|brand new|nib|new in box|sealed)\b")
_READ_COLUMNS = ("name", "brand_name", "category_name", "item_description", "item_condition_id", "shipping")
"""The listing columns the features come from."""
Listings = pd.DataFrame | Mapping[str, Sequence]
"""Listings as a frame, or as their columns (_READ_COLUMNS) in plain lists: the service's few
listings skip building a frame, a fixed ~200 us that is a quarter of a lone listing's price."""
_WORD = re.compile(r"(?u)\b\w\w+\b")
"""scikit-learn's default token pattern: the words a crossed token is made of."""
_CROSSED_SEPARATOR = "\x1f"
EXTRA_BLOCKS = ("title_chars", "crossed", "text")
"""Text blocks after the engineered numbers, in column order."""
CATEGORY_PAIRS = "category_pairs"
"""The last block: one-hot combinations of category, brand, condition and shipping."""
_CATEGORICAL = ["brand_name", "category_name", "category_1", "category_2", "item_condition_id", "shipping"]
PAIRS = {
    "category_condition": ("category_name", "item_condition_id"),
    "brand_category": ("brand_name", "category_name"),
    "category_shipping": ("category_name", "shipping"),
    "brand_condition": ("brand_name", "item_condition_id"),
    "category_2_condition_shipping": ("category_2", "item_condition_id", "shipping"),
}
"""Combinations whose price is not the sum of their parts' (a worn phone loses more than a worn
T-shirt): each a one-hot column per value seen at least `min_category_count` times."""
ENGINEERED = [
    "name_chars",
    "description_chars",
    "description_words",
    "has_description",
    "has_brand",
    "new_with_tags",
    "bundle_size",
    "storage_gb",
]


@dataclass(frozen=True)
class FeaturizerConfig:
    name_max_features: int = 30_000
    description_max_features: int = 50_000
    min_df: int = 2
    max_ngram: int = 2
    min_category_count: int = 2
    text_max_features: int = 50_000
    """Words of the title, category and description together; 0 leaves the block out."""
    title_chars_max_features: int = 60_000
    """Character 2-4-grams of name + brand; 0 leaves the block out."""
    crossed_max_features: int = 60_000
    """brand__word and category__word tokens of the name; 0 leaves the block out."""
    extra_blocks_max_rows: int = 300_000
    """Above this many listings the title-character, crossed and whole-text blocks are left out:
    they are what a few thousand listings need to share evidence between words, and at 1.5 M
    listings they tripled the nonzeros per row (48 -> 160), which took the job past 8 GiB and
    20 minutes on 2 cores."""
    category_pairs: bool = True
    """One-hot category x condition, brand x category... (PAIRS); left out with the extra blocks above
    `extra_blocks_max_rows` (the networks do not read them, and slicing them off a million rows
    would copy the matrix)."""
    vocabulary_max_rows: int = 300_000
    """The text blocks' vocabularies and IDF weights are fitted on at most this many listings (an
    evenly spaced sample): counting n-grams of a million listings five times over costs minutes,
    and the most frequent tens of thousands of terms of a few hundred thousand are the same ones."""


def leading_columns(x: sp.csr_matrix, columns: int) -> sp.csr_matrix:
    """x's first `columns` columns, without a copy when that is all of them (a column slice of a
    CSR matrix always copies: at 1.5 M listings, a gigabyte). A service's few rows are masked
    directly: scipy's slicing costs ~30 us whatever the size, a tenth of a listing's prediction."""
    if x.shape[1] <= columns:
        return x
    if x.nnz > _MASKED_SLICE_MAX_NNZ:
        return x[:, :columns]
    kept = x.indices < columns
    indptr = np.concatenate([[0], np.cumsum(kept)])[x.indptr]
    return sp.csr_matrix((x.data[kept], x.indices[kept], indptr), shape=(x.shape[0], columns))


_MASKED_SLICE_MAX_NNZ = 100_000


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _strings(values, missing: str) -> list[str]:
    return [missing if _missing(v) else v if isinstance(v, str) else str(v) for v in values]


def _text(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Name + brand, and the description ("No description yet" counts as none), per listing."""
    names, brands = _strings(frame["name"], ""), _strings(frame["brand_name"], "")
    descriptions = ["" if d == NO_DESCRIPTION else d for d in _strings(frame["item_description"], "")]
    return [f"{n} {b}" for n, b in zip(names, brands, strict=True)], descriptions


def _whole_text(frame: pd.DataFrame, name: list[str], description: list[str]) -> list[str]:
    """Title, category and description in one text, per listing (`name`, `description` from _text)."""
    categories = _strings(frame["category_name"], "")
    return [f"{n} {c} {d}" for n, c, d in zip(name, categories, description, strict=True)]


def _crossing_key(value: str) -> str:
    """A brand or category as one token; the separator is taken out (a seller can type it)."""
    return value.lower().replace(" ", "_").replace(_CROSSED_SEPARATOR, "") or "(none)"


def crossed_documents(frame: pd.DataFrame) -> list[str]:
    """Brand, category and name per listing, joined for `crossed_terms`."""
    brands, categories = _strings(frame["brand_name"], ""), _strings(frame["category_name"], "")
    return [
        f"{_crossing_key(b)}{_CROSSED_SEPARATOR}{_crossing_key(c)}{_CROSSED_SEPARATOR}{n}"
        for b, c, n in zip(brands, categories, _strings(frame["name"], ""), strict=True)
    ]


def crossed_terms(document: str) -> list[str]:
    """The analyzer of the crossed block: every word of the name with its brand and its category."""
    brand, category, name = document.split(_CROSSED_SEPARATOR, 2)
    words = _WORD.findall(name.lower())
    return [f"{brand}__{w}" for w in words] + [f"{category}__{w}" for w in words]


def _categorical(frame: Mapping[str, Iterable]) -> dict[str, list[str]]:
    """Column -> values for the one-hot encoder: brand, category path, its first one and two levels,
    condition and shipping. Plain lists: per call this is cheap at one listing and at a million.
    `frame`: the listings, or their columns already taken out of them."""
    categories = _strings(frame["category_name"], "(none)")
    first, second = [], []
    for category in categories:
        parts = category.split("/", 2)
        first.append(parts[0])
        second.append(f"{parts[0]}/{parts[1] if len(parts) > 1 else '(none)'}")
    return {
        "brand_name": _strings(frame["brand_name"], "(none)"),
        "category_name": categories,
        "category_1": first,
        "category_2": second,
        "item_condition_id": [str(int(v)) for v in frame["item_condition_id"]],
        "shipping": [str(int(v)) for v in frame["shipping"]],
    }


def _pairs(categorical: dict[str, list[str]]) -> dict[str, list[str]]:
    """PAIRS' values from _categorical's, joined by "|"."""
    return {
        pair: ["|".join(values) for values in zip(*(categorical[part] for part in parts), strict=True)]
        for pair, parts in PAIRS.items()
    }


def _first_number(pattern: re.Pattern, texts: list[str], default: float, needs: str) -> np.ndarray:
    """`needs`: a substring every match contains; testing for it first skips most regex scans."""
    found = (pattern.search(text) if needs in text else None for text in texts)
    return np.array([float(match.group(1)) if match else default for match in found], dtype=np.float64)


def _engineered(frame: Mapping[str, Iterable], description: list[str], everything: list[str]) -> np.ndarray:
    """`description` as _text makes it; `everything`: "title description" lowercased. One row per
    listing, one column per ENGINEERED entry."""
    bundle = _first_number(_BUNDLE, everything, 1.0, " of ")
    storage = _first_number(_STORAGE, everything, 0.0, "gb")
    columns = [
        np.log1p([len(n) for n in _strings(frame["name"], "")]),
        np.log1p([len(d) for d in description]),
        np.log1p([len(d.split()) for d in description]),
        np.array([d != "" for d in description], dtype=np.float64),
        np.array([not _missing(b) for b in frame["brand_name"]], dtype=np.float64),
        np.array([_NEW_WITH_TAGS.search(text) is not None for text in everything], dtype=np.float64),
        np.log(bundle.clip(1, 20)),
        np.log2(storage.clip(0, 4096) + 1) / 12,
    ]
    return np.column_stack(columns).astype(np.float32) if everything else np.zeros((0, len(ENGINEERED)), np.float32)


class OneHotLookup:
    """The fitted OneHotEncoder's mapping as dictionaries: same columns, without sklearn's per-call
    checks, which cost milliseconds even for one listing (the service scores one at a time)."""

    def __init__(self, encoder: OneHotEncoder, columns: list[str]):
        self.columns = columns
        self.width = len(encoder.get_feature_names_out())
        longest = max(len(c) for c in encoder.categories_)
        probe = pd.DataFrame(
            {
                column: [categories[min(k, len(categories) - 1)] for k in range(longest)]
                for column, categories in zip(columns, encoder.categories_, strict=True)
            }
        )
        encoded = encoder.transform(probe).tocsr()
        self.maps: list[dict[str, int]] = []
        self.unknown: list[int] = []
        for j, categories in enumerate(encoder.categories_):
            mapping = {}
            for k, category in enumerate(categories):
                row = encoded.indices[encoded.indptr[k] : encoded.indptr[k + 1]]
                mapping[category] = int(row[j])
            self.maps.append(mapping)
            infrequent = encoder.infrequent_categories_[j]
            self.unknown.append(mapping[infrequent[0]] if infrequent is not None and len(infrequent) else -1)

    def positions(self, values: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of every one: one per input column and listing, none for a value never seen
        where the column has no "infrequent" bucket."""
        rows = len(values[self.columns[0]])
        indices = np.full((rows, len(self.columns)), -1, dtype=np.int64)
        for j, column in enumerate(self.columns):
            mapping, unknown = self.maps[j], self.unknown[j]
            indices[:, j] = [mapping.get(value, unknown) for value in values[column]]
        row, slot = np.nonzero(indices >= 0)
        return row, indices[row, slot]

    def transform(self, values: dict[str, list[str]]) -> sp.csr_matrix:
        row, column = self.positions(values)
        rows = len(values[self.columns[0]])
        return sp.csr_matrix((np.ones(len(row), dtype=np.float32), (row, column)), shape=(rows, self.width))


def _word_ngrams(tokens: list[str], n: int) -> list[str]:
    """n-grams (n >= 2) as sklearn spells them: words joined by one space."""
    return list(map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False)))


def _terms(tokens: list[str], max_n: int) -> list[str]:
    """Words and their 2..max_n-grams: a word-analyzer TfidfVectorizer's terms of these tokens."""
    terms = list(tokens)
    for n in range(2, max_n + 1):
        terms += _word_ngrams(tokens, n)
    return terms


def _char_wb_grams(word: str, low: int, high: int) -> list[str]:
    """sklearn's char_wb n-grams of one whitespace-free piece: padded with a space each side, a piece
    shorter than n counted once."""
    padded = f" {word} "
    grams = []
    for n in range(low, high + 1):
        count = max(1, len(padded) - n + 1)
        grams += [padded[i : i + n] for i in range(count)]
        if count == 1:
            break
    return grams


class TfidfLookup:
    """One fitted TfidfVectorizer's terms as global feature columns, with its weighting (idf,
    sublinear tf): what the batch encoder needs of it, without sklearn's per-call machinery."""

    def __init__(self, vectorizer: TfidfVectorizer, offset: int):
        self.columns = {term: offset + column for term, column in vectorizer.vocabulary_.items()}
        self.get = self.columns.get
        self.idf = vectorizer.idf_.astype(np.float64)
        self.sublinear = bool(vectorizer.sublinear_tf)
        self.width = len(vectorizer.vocabulary_)
        self.offset = offset


class _BatchEncoder:
    """A fitted featurizer's transform, built once from its fitted pieces (never pickled).

    Each listing's text is lowercased and split into words once; the words serve the title, the
    description and the whole-text blocks, and the crossed tokens. A term is looked up once: its
    key stands for its column in the title (or description) block and in the whole-text block
    (the whole text's words are the title's, the category's and the description's in a row, so
    only the n-grams at those joins are its own). Character n-grams are looked up per word, from a
    cache. Keys become columns, counts, tf-idf weights and each block's l2 normalization once per
    batch in NumPy and scipy. A 1,000-listing batch took 182 ms through sklearn's transforms and
    a stacked matrix per block."""

    CHUNK_ROWS = 20_000
    """Listings encoded at a time: bounds the key lists at a million listings."""
    CACHE_MAX = 200_000

    def __init__(self, featurizer: ListingFeaturizer):
        blocks = featurizer._extra_vectorizers()
        self.max_n = featurizer.config.max_ngram
        offset = 0
        self.name = TfidfLookup(featurizer.name_vectorizer_, offset)
        offset += self.name.width
        self.description = TfidfLookup(featurizer.description_vectorizer_, offset)
        offset += self.description.width
        self.onehot, self.onehot_offset = featurizer.onehot_, offset
        offset += featurizer.onehot_.width
        self.engineered_offset = offset
        offset += len(ENGINEERED)
        self.extra: dict[str, TfidfLookup] = {}
        for block, vectorizer in blocks.items():
            self.extra[block] = TfidfLookup(vectorizer, offset)
            offset += self.extra[block].width
        self.pairs, self.pairs_offset = featurizer.pairs_onehot_, offset
        offset += self.pairs.width if self.pairs else 0
        self.width = offset
        lookups = [self.name, self.description, *self.extra.values()]
        self.idf = np.ones(offset)
        self.sublinear = np.zeros(offset, dtype=bool)
        self.block = np.full(offset, -1, dtype=np.int64)
        """Per column: its tf-idf block (l2-normalized together), -1 for one-hot and engineered."""
        for number, lookup in enumerate(lookups):
            window = slice(lookup.offset, lookup.offset + lookup.width)
            self.idf[window], self.sublinear[window], self.block[window] = lookup.idf, lookup.sublinear, number
        self.blocks = len(lookups)
        self._build_keys()
        self.char_range = blocks["title_chars"].ngram_range if "title_chars" in blocks else None
        self._chars: dict[str, list[int]] = {}
        self._words: dict[str, list[str]] = {}

    def _build_keys(self) -> None:
        """term -> key dictionaries; a key's columns are first_[key] and second_[key] (-1: none).
        Keys from `column_key` on stand for the column key - column_key (characters, crossed)."""
        text = self.extra.get("text")
        firsts: list[int] = []
        seconds: list[int] = []

        def keyed(lookups: list[TfidfLookup]) -> dict[str, int]:
            keys = {}
            for term in dict.fromkeys(term for lookup in lookups for term in lookup.columns):
                columns = [lookup.columns[term] for lookup in lookups if term in lookup.columns]
                keys[term] = len(firsts)
                firsts.append(columns[0])
                seconds.append(columns[1] if len(columns) > 1 else -1)
            return keys

        with_text = [text] if text is not None else []
        self.title_keys = keyed([self.name, *with_text])
        self.description_keys = keyed([self.description, *with_text])
        self.joining_keys = keyed(with_text)
        self.column_key = len(firsts)
        self.first_ = np.concatenate([np.asarray(firsts, dtype=np.int64), np.arange(self.width)])
        self.second_ = np.concatenate([np.asarray(seconds, dtype=np.int64), np.full(self.width, -1)])
        crossed = self.extra.get("crossed")
        self.crossed_keys = {t: self.column_key + c for t, c in crossed.columns.items()} if crossed else None

    def _cached_words(self, text: str) -> list[str]:
        """Words of a brand or category (few distinct values, met again and again)."""
        words = self._words.get(text)
        if words is None:
            if len(self._words) > self.CACHE_MAX:
                self._words.clear()
            words = self._words[text] = _WORD.findall(text.lower())
        return words

    def _char_keys(self, piece: str) -> list[int]:
        keys = self._chars.get(piece)
        if keys is None:
            if len(self._chars) > self.CACHE_MAX:
                self._chars.clear()
            get = self.extra["title_chars"].get
            grams = _char_wb_grams(piece, *self.char_range)
            keys = self._chars[piece] = [self.column_key + c for c in map(get, grams) if c is not None]
        return keys

    def transform(self, listings: Listings) -> sp.csr_matrix:
        if not isinstance(listings, pd.DataFrame) or len(listings) <= self.CHUNK_ROWS:
            return self._encode(listings)  # a slice would be a new frame, its columns read afresh
        chunks = [
            self._encode(listings.iloc[start : start + self.CHUNK_ROWS])
            for start in range(0, len(listings), self.CHUNK_ROWS)
        ]
        if len(chunks) == 1:
            return chunks[0]
        return sp.vstack(chunks, format="csr") if chunks else sp.csr_matrix((0, self.width), dtype=np.float32)

    def _encode(self, listings: Listings) -> sp.csr_matrix:
        # each column taken out once: on a fresh frame of one listing a column costs ~15 us
        columns = {column: listings[column] for column in _READ_COLUMNS}
        names, brands = _strings(columns["name"], ""), _strings(columns["brand_name"], "")
        categories = _strings(columns["category_name"], "")
        descriptions = ["" if d == NO_DESCRIPTION else d for d in _strings(columns["item_description"], "")]
        keys: list[int] = []
        ends = array("q")
        title_get, description_get, max_n = self.title_keys.get, self.description_keys.get, self.max_n
        joining_get = self.joining_keys.get if self.joining_keys else None
        crossed_get = self.crossed_keys.get if self.crossed_keys else None
        chars = "title_chars" in self.extra
        lowered = []
        missing = repeat(-1)  # dict.get's default: a term outside the vocabularies
        for name, brand, category, description in zip(names, brands, categories, descriptions, strict=True):
            name_words, brand_words = _WORD.findall(name.lower()), self._cached_words(brand)
            title_words = name_words + brand_words
            description_lower = description.lower()
            description_words = _WORD.findall(description_lower)
            keys += map(title_get, _terms(title_words, max_n), missing)
            keys += map(description_get, _terms(description_words, max_n), missing)
            title_lower = f"{name} {brand}".lower()
            lowered.append(f"{title_lower} {description_lower}")
            if chars:
                for piece in title_lower.split():
                    keys += self._char_keys(piece)
            if crossed_get is not None:
                brand_key, category_key = _crossing_key(brand), _crossing_key(category)
                keys += map(crossed_get, [f"{brand_key}__{w}" for w in name_words], missing)
                keys += map(crossed_get, [f"{category_key}__{w}" for w in name_words], missing)
            if joining_get is not None:
                joins = _joining_terms(title_words, self._cached_words(category), description_words, max_n)
                keys += map(joining_get, joins, missing)
            ends.append(len(keys))
        rows = len(names)
        lengths = np.diff(np.frombuffer(ends, dtype=np.int64), prepend=0)
        key = np.array(keys, dtype=np.int64)
        row_of = np.repeat(np.arange(rows), lengths)
        found = key >= 0
        key, row_of = key[found], row_of[found]
        second = self.second_[key]
        also = second >= 0
        categorical = _categorical(columns)
        ones = [self.onehot.positions(categorical)]
        if self.pairs:
            pair_rows, pair_columns = self.pairs.positions(_pairs(categorical))
            ones.append((pair_rows, pair_columns + (self.pairs_offset - self.onehot_offset)))
        engineered = _engineered(columns, descriptions, lowered)
        engineered_rows, engineered_columns = np.nonzero(engineered)
        one_rows = np.concatenate([row for row, _ in ones])
        one_columns = np.concatenate([column for _, column in ones]) + self.onehot_offset
        counted = len(key) + int(also.sum())
        values = np.concatenate([np.ones(counted + len(one_rows)), engineered[engineered_rows, engineered_columns]])
        row_of = np.concatenate([row_of, row_of[also], one_rows, engineered_rows])
        column_of = np.concatenate(
            [self.first_[key], second[also], one_columns, engineered_columns + self.engineered_offset]
        )
        # counts summed and sorted by hand, then one CSR built from canonical arrays: scipy's
        # COO -> CSR -> float32 route builds three matrices, each ~50 us of checks (a lone
        # listing's whole price is ~700 us)
        cell = row_of * self.width + column_of
        order = np.argsort(cell, kind="stable")
        cell, values = cell[order], values[order]
        first = np.flatnonzero(np.diff(cell, prepend=-1))  # each cell's first count (cells are >= 0)
        counts = np.add.reduceat(values, first)
        row_of, column_of = np.divmod(cell[first], self.width)
        self._weigh(counts, column_of, row_of, rows)
        indptr = np.searchsorted(row_of, np.arange(rows + 1)).astype(np.int32)
        return sp.csr_matrix(
            (counts.astype(np.float32), column_of.astype(np.int32), indptr), shape=(rows, self.width), copy=False
        )

    def _weigh(self, data: np.ndarray, columns: np.ndarray, rows: np.ndarray, row_count: int) -> None:
        """Counts -> tf-idf in place, each text block of each row scaled to unit length
        (TfidfTransformer's arithmetic, in float64). `rows`, `columns`: each count's cell."""
        sublinear = self.sublinear[columns]
        data[sublinear] = np.log(data[sublinear]) + 1.0
        data *= self.idf[columns]
        block = self.block[columns]
        text = block >= 0
        key = rows[text] * self.blocks + block[text]
        norms = np.sqrt(np.bincount(key, weights=data[text] ** 2, minlength=row_count * self.blocks))
        data[text] /= norms[key]


def _joining_terms(title: list[str], category: list[str], description: list[str], max_n: int) -> list[str]:
    """The whole text's terms that neither the title's nor the description's terms hold: the
    category's words and every n-gram that touches them or crosses a join."""
    reach = max_n - 1  # an n-gram touching a join reaches this many words past it, no more
    head = title[max(0, len(title) - reach) :]
    words = head + category + description[:reach]
    first, last = len(head), len(head) + len(category)
    terms = list(category)
    for n in range(2, max_n + 1):
        # n-grams that start before a join and end after it, or lie in the category
        starts = range(max(0, first - n + 1), min(last, len(words) - n + 1))
        terms += [" ".join(words[i : i + n]) for i in starts]
    return terms


class ListingFeaturizer:
    """fit(train listings) then transform(any listings) -> CSR float32 matrix.

    Columns: name, description, one-hot, engineered, then title characters, crossed tokens and the
    whole text (appended last, so a featurizer pickled before they existed still makes its own
    columns)."""

    def __init__(self, config: FeaturizerConfig = FeaturizerConfig()):
        self.config = config

    def fit(self, frame: pd.DataFrame) -> ListingFeaturizer:
        started = time.perf_counter()
        config = self.config
        categorical = _categorical(frame)
        extra = len(frame) <= config.extra_blocks_max_rows
        if len(frame) > config.vocabulary_max_rows:
            frame = frame.iloc[np.linspace(0, len(frame) - 1, config.vocabulary_max_rows).astype(int)]
        name, description = _text(frame)
        self.name_vectorizer_ = self._tfidf(config.name_max_features).fit(name)
        self.description_vectorizer_ = self._tfidf(config.description_max_features).fit(description)
        self.encoder_ = OneHotEncoder(
            handle_unknown="infrequent_if_exist", min_frequency=config.min_category_count, dtype=np.float32
        ).fit(pd.DataFrame(categorical))
        self.pairs_encoder_ = None
        if config.category_pairs and extra:
            self.pairs_encoder_ = OneHotEncoder(
                handle_unknown="infrequent_if_exist", min_frequency=config.min_category_count, dtype=np.float32
            ).fit(pd.DataFrame(_pairs(categorical)))
        self.title_chars_vectorizer_ = self.crossed_vectorizer_ = self.text_vectorizer_ = None
        if config.title_chars_max_features and extra:
            self.title_chars_vectorizer_ = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(2, 4),
                min_df=config.min_df,
                max_features=config.title_chars_max_features,
                dtype=np.float32,
            ).fit(name)
        if config.crossed_max_features and extra:
            # min_df 1: a pair seen once still soaks up its listing's residual instead of the shared words
            self.crossed_vectorizer_ = TfidfVectorizer(
                analyzer=crossed_terms, max_features=config.crossed_max_features, dtype=np.float32
            ).fit(crossed_documents(frame))
        if config.text_max_features and extra:
            self.text_vectorizer_ = self._tfidf(config.text_max_features).fit(_whole_text(frame, name, description))
        for derived in self._DERIVED:
            self.__dict__.pop(derived, None)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _tfidf(self, max_features: int) -> TfidfVectorizer:
        return TfidfVectorizer(
            ngram_range=(1, self.config.max_ngram),
            min_df=self.config.min_df,
            max_features=max_features,
            sublinear_tf=True,
            dtype=np.float32,
        )

    def _extra_vectorizers(self) -> dict[str, TfidfVectorizer]:
        """The blocks after the engineered numbers, in column order (absent: left out by the config,
        or pickled before they existed)."""
        found = {block: getattr(self, f"{block}_vectorizer_", None) for block in EXTRA_BLOCKS}
        return {block: vectorizer for block, vectorizer in found.items() if vectorizer is not None}

    def transform(self, listings: Listings) -> sp.csr_matrix:
        return self._batch_encoder().transform(listings)

    _DERIVED = ("_onehot", "_pairs", "_encoder", "onehot_", "name_lookup_", "description_lookup_", "extra_lookups_")
    """Lookup tables rebuilt from the fitted vectorizers on first use, never pickled (the last four:
    names they had in bundles saved before the batch encoder)."""

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key not in self._DERIVED}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({key: value for key, value in state.items() if key not in self._DERIVED})

    @property
    def onehot_(self) -> OneHotLookup:
        if "_onehot" not in self.__dict__:
            self.__dict__["_onehot"] = OneHotLookup(self.encoder_, _CATEGORICAL)
        return self.__dict__["_onehot"]

    @property
    def pairs_onehot_(self) -> OneHotLookup | None:
        """None where the block is left out, or the featurizer was pickled before it existed."""
        if getattr(self, "pairs_encoder_", None) is None:
            return None
        if "_pairs" not in self.__dict__:
            self.__dict__["_pairs"] = OneHotLookup(self.pairs_encoder_, list(PAIRS))
        return self.__dict__["_pairs"]

    def _batch_encoder(self) -> _BatchEncoder:
        if "_encoder" not in self.__dict__:
            self.__dict__["_encoder"] = _BatchEncoder(self)
        return self.__dict__["_encoder"]

    def fit_transform(self, frame: pd.DataFrame) -> sp.csr_matrix:
        return self.fit(frame).transform(frame)

    def block_widths(self) -> dict[str, int]:
        """Each block's columns, in column order: name, description, onehot, engineered, then the
        extra text blocks and category_pairs where present."""
        widths = {
            "name": len(self.name_vectorizer_.vocabulary_),
            "description": len(self.description_vectorizer_.vocabulary_),
            "onehot": self.onehot_.width,
            "engineered": len(ENGINEERED),
        }
        widths |= {block: len(vectorizer.vocabulary_) for block, vectorizer in self._extra_vectorizers().items()}
        if self.pairs_onehot_ is not None:
            widths[CATEGORY_PAIRS] = self.pairs_onehot_.width
        return widths

    def column_weights(self, block_weights: dict[str, float]) -> np.ndarray:
        """One weight per column: its block's in `block_weights`, else 1."""
        widths = self.block_widths()
        return np.repeat([float(block_weights.get(block, 1.0)) for block in widths], list(widths.values()))

    @property
    def tree_columns(self) -> int:
        """How many leading columns the trees learn from: name, description, one-hot, engineered.
        The later blocks serve the linear and neural learners; a tree's split search costs time in
        proportion to the columns it scans (200 trees on the 7,000 genuine rows: 47 s on all 105k
        columns, 10.5 s on these 30k)."""
        widths = self.block_widths()
        return sum(widths[block] for block in ("name", "description", "onehot", "engineered"))

    @property
    def neural_columns(self) -> int:
        """How many leading columns the MLPs learn from: all but category_pairs (on the genuine rows
        the networks did worse with them, 0.544 against 0.540 RMSLE, while Ridge gained 0.004)."""
        widths = self.block_widths()
        return sum(widths.values()) - widths.get(CATEGORY_PAIRS, 0)

    def oov_rate(self, frame: pd.DataFrame) -> float:
        """Share of the words in names and descriptions that the fitted vocabularies lack: new
        wording the text features cannot see (0 for listings without words)."""
        seen = total = 0
        for vectorizer, texts in zip((self.name_vectorizer_, self.description_vectorizer_), _text(frame), strict=True):
            words = vectorizer.build_tokenizer()
            prepare = vectorizer.build_preprocessor()
            vocabulary = vectorizer.vocabulary_
            for text in texts:
                tokens = words(prepare(text))
                total += len(tokens)
                seen += sum(token in vocabulary for token in tokens)
        return (total - seen) / total if total else 0.0

    @property
    def vocabulary_sizes(self) -> dict[str, int]:
        widths = self.block_widths()
        widths["categorical"] = int(sum(len(c) for c in self.encoder_.categories_))
        del widths["onehot"]
        return widths

    def feature_names(self) -> list[str]:
        return (
            [f"name:{t}" for t in self.name_vectorizer_.get_feature_names_out()]
            + [f"description:{t}" for t in self.description_vectorizer_.get_feature_names_out()]
            + [f"onehot:{t}" for t in self.encoder_.get_feature_names_out()]
            + [f"engineered:{t}" for t in ENGINEERED]
            + [
                f"{block}:{t}"
                for block, vectorizer in self._extra_vectorizers().items()
                for t in vectorizer.get_feature_names_out()
            ]
            + (
                [f"{CATEGORY_PAIRS}:{t}" for t in self.pairs_encoder_.get_feature_names_out()]
                if self.pairs_onehot_ is not None
                else []
            )
        )

    def describe(self) -> dict:
        return {
            "config": asdict(self.config),
            "vocabulary_sizes": self.vocabulary_sizes,
            "fit_seconds": round(getattr(self, "fit_seconds_", 0.0), 3),
        }
