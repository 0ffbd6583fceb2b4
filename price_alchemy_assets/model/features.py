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
from collections import Counter
from dataclasses import asdict, dataclass

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
_WORD = re.compile(r"(?u)\b\w\w+\b")
"""scikit-learn's default token pattern: the words a crossed token is made of."""
_CROSSED_SEPARATOR = "\x1f"
EXTRA_BLOCKS = ("title_chars", "crossed", "text")
"""Text blocks after the engineered numbers, in column order."""
_CATEGORICAL = ["brand_name", "category_name", "category_1", "category_2", "item_condition_id", "shipping"]
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
    vocabulary_max_rows: int = 300_000
    """The text blocks' vocabularies and IDF weights are fitted on at most this many listings (an
    evenly spaced sample): counting n-grams of a million listings five times over costs minutes,
    and the most frequent tens of thousands of terms of a few hundred thousand are the same ones."""


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


def _categorical(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Column -> values for the one-hot encoder: brand, category path, its first one and two levels,
    condition and shipping. Plain lists: per call this is cheap at one listing and at a million."""
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


def _first_number(pattern: re.Pattern, texts: list[str], default: float, needs: str) -> np.ndarray:
    """`needs`: a substring every match contains; testing for it first skips most regex scans."""
    found = (pattern.search(text) if needs in text else None for text in texts)
    return np.array([float(match.group(1)) if match else default for match in found], dtype=np.float64)


def _engineered(frame: pd.DataFrame, name: list[str], description: list[str]) -> np.ndarray:
    """`name` and `description` as _text made them for the vectorizers, so the text is built once.
    One row per listing, one column per ENGINEERED entry."""
    everything = [f"{n} {d}".lower() for n, d in zip(name, description, strict=True)]
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

    def transform(self, values: dict[str, list[str]]) -> sp.csr_matrix:
        rows = len(values[self.columns[0]])
        indices = np.full((rows, len(self.columns)), -1, dtype=np.int64)
        for j, column in enumerate(self.columns):
            mapping, unknown = self.maps[j], self.unknown[j]
            indices[:, j] = [mapping.get(value, unknown) for value in values[column]]
        present = indices >= 0
        return sp.csr_matrix(
            (np.ones(int(present.sum()), dtype=np.float32), indices[present], np.r_[0, np.cumsum(present.sum(axis=1))]),
            shape=(rows, self.width),
        )


def _word_ngrams(tokens: list[str], n: int) -> list[str]:
    """n-grams (n >= 2) as sklearn spells them: words joined by one space."""
    if n == 2:
        return [f"{first} {second}" for first, second in zip(tokens, tokens[1:], strict=False)]
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


class TfidfLookup:
    """The fitted TfidfVectorizer's transform with the counting in one loop per listing: the
    TF-IDF blocks were most of a 1,000-listing batch's time, and sklearn's analyzer chain and
    counting take ~25 % longer. Word n-grams are counted here; other analyzers (characters, the
    crossed tokens) through the vectorizer's own analyzer. The weighting is the vectorizer's own
    TfidfTransformer, so the values are the vectorizer's, bit for bit (tested)."""

    def __init__(self, vectorizer: TfidfVectorizer):
        self.vectorizer = vectorizer
        words = vectorizer.analyzer == "word" and vectorizer.stop_words is None and vectorizer.ngram_range[0] == 1
        self.max_n = vectorizer.ngram_range[1] if words else 0

    def _terms(self):
        """text -> its terms, n-grams included."""
        if not self.max_n:
            return self.vectorizer.build_analyzer()
        prepare, tokenize, max_n = self.vectorizer.build_preprocessor(), self.vectorizer.build_tokenizer(), self.max_n

        def terms(text: str) -> list[str]:
            tokens = tokenize(prepare(text))
            return tokens + [gram for n in range(2, max_n + 1) for gram in _word_ngrams(tokens, n)]

        return terms

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        vocabulary = self.vectorizer.vocabulary_
        if not texts:  # sklearn's transformer refuses zero rows
            return sp.csr_matrix((0, len(vocabulary)), dtype=self.vectorizer.dtype)
        terms = self._terms()
        indptr, indices, counts = array("q", [0]), array("i"), array("i")  # compact at a million listings
        column_of = vocabulary.get
        for text in texts:
            counter = Counter(map(column_of, terms(text)))
            counter.pop(None, None)  # words outside the vocabulary
            indices.extend(counter)
            counts.extend(counter.values())
            indptr.append(len(indices))
        matrix = sp.csr_matrix(
            (np.asarray(counts, dtype=self.vectorizer.dtype), np.frombuffer(indices, dtype=np.int32), indptr),
            shape=(len(texts), len(vocabulary)),
        )
        matrix.sort_indices()
        return self.vectorizer._tfidf.transform(matrix, copy=False)


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
        self._lookups()
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

    def _lookups(self) -> None:
        self.onehot_ = OneHotLookup(self.encoder_, _CATEGORICAL)
        self.name_lookup_ = TfidfLookup(self.name_vectorizer_)
        self.description_lookup_ = TfidfLookup(self.description_vectorizer_)
        self.extra_lookups_ = {
            block: TfidfLookup(vectorizer) for block, vectorizer in self._extra_vectorizers().items()
        }

    def _extra_vectorizers(self) -> dict[str, TfidfVectorizer]:
        """The blocks after the engineered numbers, in column order (absent: left out by the config,
        or pickled before they existed)."""
        found = {block: getattr(self, f"{block}_vectorizer_", None) for block in EXTRA_BLOCKS}
        return {block: vectorizer for block, vectorizer in found.items() if vectorizer is not None}

    def transform(self, frame: pd.DataFrame) -> sp.csr_matrix:
        name, description = _text(frame)
        if not hasattr(self, "extra_lookups_"):  # pickled before these lookups existed
            self._lookups()
        inputs = {
            "title_chars": lambda: name,
            "crossed": lambda: crossed_documents(frame),
            "text": lambda: _whole_text(frame, name, description),
        }
        blocks = [
            self.name_lookup_.transform(name),
            self.description_lookup_.transform(description),
            self.onehot_.transform(_categorical(frame)),
            sp.csr_matrix(_engineered(frame, name, description)),
        ]
        blocks += [lookup.transform(inputs[block]()) for block, lookup in self.extra_lookups_.items()]
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def fit_transform(self, frame: pd.DataFrame) -> sp.csr_matrix:
        return self.fit(frame).transform(frame)

    @property
    def tree_columns(self) -> int:
        """How many leading columns the trees learn from: name, description, one-hot, engineered.
        The later blocks serve the linear and neural learners; a tree's split search costs time in
        proportion to the columns it scans (200 trees on the 7,000 genuine rows: 47 s on all 105k
        columns, 10.5 s on these 30k)."""
        return (
            len(self.name_vectorizer_.vocabulary_)
            + len(self.description_vectorizer_.vocabulary_)
            + self.onehot_.width
            + len(ENGINEERED)
        )

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
        return {
            "name": len(self.name_vectorizer_.vocabulary_),
            "description": len(self.description_vectorizer_.vocabulary_),
            "categorical": int(sum(len(c) for c in self.encoder_.categories_)),
            "engineered": len(ENGINEERED),
        } | {block: len(vectorizer.vocabulary_) for block, vectorizer in self._extra_vectorizers().items()}

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
        )

    def describe(self) -> dict:
        return {
            "config": asdict(self.config),
            "vocabulary_sizes": self.vocabulary_sizes,
            "fit_seconds": round(getattr(self, "fit_seconds_", 0.0), 3),
        }
