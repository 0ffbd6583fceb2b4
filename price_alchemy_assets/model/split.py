"""A deterministic train / validation / test split by a hash of the listing id.

A listing's split depends on its id alone, so it never changes when new listings arrive:
yesterday's test rows stay test rows and the featurizer never sees them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

TRAIN, VALIDATION, TEST = "train", "validation", "test"


@dataclass(frozen=True)
class SplitFractions:
    validation: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        if not (0 < self.validation < 1 and 0 < self.test < 1 and self.validation + self.test < 1):
            raise ValueError(f"split fractions must be in (0, 1) and leave rows to train on: {self}")


def hash_position(listing_ids: pd.Series, salt: str = "price-alchemy-split") -> np.ndarray:
    """Each id's place in [0, 1), uniform and stable across runs, machines and Python versions."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(f"{salt}:{value}".encode(), digest_size=8).digest(), "big") / 2**64
            for value in listing_ids
        ),
        dtype="float64",
        count=len(listing_ids),
    )


def assign_split(listing_ids: pd.Series, fractions: SplitFractions = SplitFractions()) -> pd.Series:
    position = hash_position(listing_ids)
    split = np.where(
        position < fractions.test, TEST, np.where(position < fractions.test + fractions.validation, VALIDATION, TRAIN)
    )
    return pd.Series(split, index=listing_ids.index, name="split")
