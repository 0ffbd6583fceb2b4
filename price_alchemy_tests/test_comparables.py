"""Comparable listings: the training listings most like a seller's, same category first."""

import pandas as pd
import pytest
import scipy.sparse as sp

from price_alchemy_assets.model.comparables import MIN_SIMILARITY, Comparable, ComparableListings, position_among


def listing(name, category, price, condition=3, brand=None):
    return {
        "name": name,
        "item_condition_id": condition,
        "category_name": category,
        "brand_name": brand,
        "price": price,
    }


TRAINING = pd.DataFrame(
    [
        listing("Nike running shoes size 9", "Men/Shoes/Athletic", 45.0, 2, "Nike"),
        listing("Nike running shoes size 10", "Men/Shoes/Athletic", 50.0, 3, "Nike"),
        listing("Nike running shorts", "Men/Athletic Apparel/Shorts", 18.0, 1, "Nike"),
        listing("Adidas running shoes", "Women/Shoes/Athletic", 40.0, 2, "Adidas"),
        listing("Leather boots brown", "Men/Shoes/Boots", 80.0, 2, None),
        listing("Vintage lamp", None, 25.0, 3, None),
        listing("Running shoes like new", "Men/Shoes/Athletic", 35.0, 2, None),
    ]
)


@pytest.fixture(scope="module")
def index():
    return ComparableListings.fit(TRAINING)


def test_its_own_category_first_then_the_parent_paths(index):
    query = listing("Nike running shoes size 9", "Men/Shoes/Athletic", None, 2, "Nike")
    found = index.find(query, count=3)
    # three listings of the category are similar enough: the shorts (0.63, Men/) wait, though more similar
    assert [c.name for c in found] == [
        "Nike running shoes size 9",
        "Nike running shoes size 10",
        "Running shoes like new",
    ]
    assert found[0] == Comparable(
        "Nike running shoes size 9", 2, "Men/Shoes/Athletic", "Nike", 45.0, pytest.approx(1.0)
    )
    # for five, the search widens: Men/Shoes/ adds none (boots share no word), Men/ the shorts, then
    # every listing the women's shoes; in that order
    found = index.find(query, count=5)
    assert [(c.name, c.category_name) for c in found[3:]] == [
        ("Nike running shorts", "Men/Athletic Apparel/Shorts"),
        ("Adidas running shoes", "Women/Shoes/Athletic"),
    ]
    similarities = [c.similarity for c in found[:3]]
    assert similarities == sorted(similarities, reverse=True) and min(c.similarity for c in found) >= MIN_SIMILARITY


def test_a_wider_range_never_repeats_a_listing_and_unrelated_ones_stay_out(index):
    found = index.find(listing("running shoes", "Men/Shoes/Athletic", None), count=10)
    names = [c.name for c in found]
    assert len(names) == len(set(names))
    assert "Vintage lamp" not in names and "Leather boots brown" not in names  # no word in common
    assert all(c.similarity >= MIN_SIMILARITY for c in found)
    assert {"Adidas running shoes", "Nike running shorts"} <= set(names)  # found once the search widened


def test_ties_prefer_the_listing_condition_then_row_order():
    twins = pd.DataFrame([listing("Blue mug", "Home/Kitchen", 5.0, 1), listing("Blue mug", "Home/Kitchen", 9.0, 4)])
    index = ComparableListings.fit(twins)
    assert [c.price for c in index.find(listing("blue mug", "Home/Kitchen", None, 4))] == [9.0, 5.0]
    assert [c.price for c in index.find(listing("blue mug", "Home/Kitchen", None, 1))] == [5.0, 9.0]


def test_no_category_and_unknown_words(index):
    assert index.find(listing("zzz qqq", "Men/Shoes/Athletic", None)) == []
    assert index.find({"name": "", "item_condition_id": 3}) == []
    found = index.find({"name": "vintage lamp", "item_condition_id": 3})  # no category: every listing
    assert found[0] == Comparable("Vintage lamp", 3, None, None, 25.0, pytest.approx(1.0))


def test_saved_and_loaded_it_finds_the_same(index, tmp_path):
    index.save(tmp_path)
    loaded = ComparableListings.load(tmp_path)
    query = listing("Nike shoes", "Men/Shoes/Athletic", None, 2, "Nike")
    assert loaded.find(query) == index.find(query) and len(loaded) == len(TRAINING)
    assert ComparableListings.load(tmp_path / "elsewhere") is None  # a bundle made before comparables
    # a bundle saved when the vectors were kept by row (CSR) loads and finds the same
    vectors = tmp_path / "comparables" / "vectors.npz"
    sp.save_npz(vectors, sp.load_npz(vectors).tocsr())
    assert ComparableListings.load(tmp_path).find(query) == index.find(query)


def test_position_counts_the_comparables_that_asked_less(index):
    found = index.find(listing("Nike running shoes", "Men/Shoes/Athletic", None), count=3)
    prices = sorted(c.price for c in found)
    assert position_among(prices[0], found) == 0
    assert position_among(prices[-1] + 0.01, found) == len(found)


def test_a_genuine_listing_copied_from_the_training_data_finds_itself_first(genuine_train):
    rows = pd.read_csv(genuine_train, sep="\t")
    rows = rows[rows["price"] > 0]
    index = ComparableListings.fit(rows)
    # listings whose title and brand appear once (a copy of a duplicate may find its twin first)
    unique = rows[~rows.duplicated(["name", "brand_name"], keep=False)].sample(1_000, random_state=0)
    first_is_itself = 0
    for row in unique.to_dict("records"):
        found = index.find(row)
        itself = (row["name"], row["price"], pytest.approx(1.0))
        # itself, or a listing of the same words in another case or order ("iPhone 4" for "Iphone 4")
        assert found[0].similarity == pytest.approx(1.0)
        assert itself in [(c.name, c.price, c.similarity) for c in found], row
        first_is_itself += (found[0].name, found[0].price) == (row["name"], row["price"])
    assert first_is_itself >= 990  # measured: 6,863 of 6,894 (benchmarks/comparables.py)
