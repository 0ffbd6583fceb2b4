"""The synthetic marketplace: deterministic, Mercari-like, with real price signal, and drift."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from price_alchemy_assets.listings.files import read_listings_frame
from price_alchemy_assets.listings.synthetic import (
    CATALOGUE,
    DriftKind,
    MarketplaceSynthesizer,
    write_synthetic_listings,
)

START = datetime(2026, 10, 1, tzinfo=UTC)


def market(rows=20_000, seed=7, **kwargs) -> pd.DataFrame:
    return pd.concat(MarketplaceSynthesizer(seed=seed, **kwargs).batches(rows, START, 30.0, chunk_rows=7_000))


def test_same_seed_same_rows_and_other_seed_differs():
    a, b, c = market(5_000, seed=1), market(5_000, seed=1), market(5_000, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["price"].equals(c["price"])


def test_looks_like_mercari():
    frame = market()
    assert len({leaf.path for leaf in CATALOGUE}) >= 100
    assert frame["category_name"].dropna().str.count("/").eq(2).all()
    assert 0.38 <= frame["brand_name"].isna().mean() <= 0.46
    assert set(frame["item_condition_id"]) <= {1, 2, 3, 4, 5}
    assert set(frame["shipping"]) == {0, 1}
    log_price = np.log1p(frame["price"])
    assert 2.8 < log_price.mean() < 3.3 and 0.6 < log_price.std() < 0.95
    assert frame["name"].str.len().max() <= 40
    assert frame["created_at"].between(pd.Timestamp(START), pd.Timestamp(START) + pd.Timedelta(days=30)).all()


def test_words_carry_price_signal():
    frame = market(40_000)
    log_price = np.log1p(frame["price"])
    assert log_price[frame["name"].str.contains("NWT")].mean() > log_price.mean()
    assert log_price[frame["name"].str.startswith("Bundle")].mean() > log_price.mean() + 0.3
    assert (
        log_price[frame["brand_name"] == "Louis Vuitton"].mean() > log_price[frame["brand_name"] == "Old Navy"].mean()
    )
    by_condition = log_price.groupby(frame["item_condition_id"]).mean()
    assert by_condition[1] > by_condition[4]


def test_brands_belong_to_their_categories():
    frame = market()
    apple = frame[frame["brand_name"] == "Apple"]
    assert len(apple) and apple["category_name"].dropna().str.startswith("Electronics/").all()


@pytest.mark.parametrize("kind", list(DriftKind))
def test_drifted_batches_shift(kind):
    base, drifted = market(8_000, seed=3), market(8_000, seed=3, drift=kind)
    if kind is DriftKind.NEW_CATEGORIES:
        assert drifted["category_name"].isin(set(base["category_name"])).mean() < 0.8
    elif kind is DriftKind.NEW_BRANDS:
        assert drifted["brand_name"].dropna().isin(set(base["brand_name"].dropna())).mean() < 0.8
    elif kind is DriftKind.INFLATION:
        assert np.log1p(drifted["price"]).mean() > np.log1p(base["price"]).mean() + 0.2
    elif kind is DriftKind.TEXT:
        assert drifted["item_description"].str.contains("✨|🔥|💖|📦|y2k|bnib").mean() > 0.3
    elif kind is DriftKind.CONDITION:
        assert drifted["item_condition_id"].ge(4).mean() > base["item_condition_id"].ge(4).mean() + 0.1


def test_written_file_reads_back_with_ids_from_seed(tmp_path):
    path = write_synthetic_listings(tmp_path / "listings.tsv.gz", 1_000, seed=4, start=START)
    frame = read_listings_frame(path)
    assert len(frame) == 1_000
    assert frame["listing_id"].iloc[0] == "train-40000000"
    assert frame["created_at"].min() >= pd.Timestamp(START)
    assert not (tmp_path / "listings.tsv.gz.partial").exists()
