"""Training data: labelled listings with their split, the featurizer fitted on the train and
validation splits, and one sparse matrix per split. Stored as parquet + scipy .npz + joblib,
never as pickled frames."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import joblib
import pandas as pd
import scipy.sparse as sp

from price_alchemy_assets.listings.profile import ListingsProfile
from price_alchemy_assets.model.features import FeaturizerConfig, ListingFeaturizer
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION, SplitFractions, assign_split

SPLITS = (TRAIN, VALIDATION, TEST)


@dataclass
class TrainingData:
    listings: pd.DataFrame
    featurizer: ListingFeaturizer
    matrices: dict[str, sp.csr_matrix]
    data_version: str
    profile: ListingsProfile
    """The train split's distributions, for drift monitoring (made here, where all columns are at hand);
    its out-of-vocabulary rate is the test split's, the one split the featurizer has not read."""

    def rows(self, split: str) -> pd.DataFrame:
        return self.listings[self.listings["split"] == split]

    def save(self, directory: str | Path) -> Path:
        """Write to a sibling temporary folder, then swap it in whole."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        self.listings.to_parquet(staging / "listings.parquet", index=False)
        joblib.dump(self.featurizer, staging / "featurizer.joblib")
        for split, matrix in self.matrices.items():
            sp.save_npz(staging / f"{split}.npz", matrix)
        (staging / "data.json").write_text(json.dumps({"data_version": self.data_version}))
        (staging / "profile.json").write_text(json.dumps(self.profile.to_json()))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path, listing_columns: list[str] | None = None) -> TrainingData:
        """`listing_columns` reads only those listing columns: at 10^6 rows the text alone is gigabytes."""
        directory = Path(directory)
        return cls(
            listings=pd.read_parquet(directory / "listings.parquet", columns=listing_columns),
            featurizer=joblib.load(directory / "featurizer.joblib"),
            matrices={split: sp.load_npz(directory / f"{split}.npz").tocsr() for split in SPLITS},
            data_version=json.loads((directory / "data.json").read_text())["data_version"],
            profile=ListingsProfile.from_json(json.loads((directory / "profile.json").read_text())),
        )


def data_version(listings: pd.DataFrame) -> str:
    """Content hash of the labelled listings a model learns from (ids and row fingerprints)."""
    digest = hashlib.blake2b(digest_size=8)
    for value in (listings["listing_id"] + ":" + listings["row_fingerprint"]).sort_values():
        digest.update(value.encode())
    return digest.hexdigest()


def build_training_data(
    validated: pd.DataFrame, fractions: SplitFractions = SplitFractions(), config: FeaturizerConfig = FeaturizerConfig()
) -> TrainingData:
    """Labelled listings only. The featurizer reads the text of the train and validation splits (the
    final learners are fitted on both; at a few thousand listings the validation split's words are
    a tenth more vocabulary), never the test split, which stays unseen for the champion gate."""
    labelled = validated[validated["price"].notna() & (validated["price"] > 0)].reset_index(drop=True)
    labelled = labelled.assign(split=assign_split(labelled["listing_id"], fractions))
    if (labelled["split"] == TRAIN).sum() < 50:
        raise ValueError(f"only {(labelled['split'] == TRAIN).sum()} labelled training listings; need at least 50")
    train = labelled[labelled["split"] == TRAIN]
    featurizer = ListingFeaturizer(config).fit(labelled[labelled["split"] != TEST])
    matrices = {split: featurizer.transform(labelled[labelled["split"] == split]) for split in SPLITS}
    profile = ListingsProfile.from_listings(train).with_oov_rate(featurizer, labelled[labelled["split"] == TEST])
    return TrainingData(labelled, featurizer, matrices, data_version(labelled), profile)
