"""The model's plain pieces: split, featurizer, rules baseline, metrics."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from price_alchemy_assets.listings.files import ListingsFile
from price_alchemy_assets.listings.synthetic import synthetic_market as market
from price_alchemy_assets.model import features
from price_alchemy_assets.model.baseline import RulesBaseline
from price_alchemy_assets.model.evaluation import evaluate, plot_report, report_figures, should_promote
from price_alchemy_assets.model.features import FeaturizerConfig, ListingFeaturizer
from price_alchemy_assets.model.metrics import price_metrics, rmsle
from price_alchemy_assets.model.split import TEST, TRAIN, VALIDATION, SplitFractions, assign_split


def test_split_is_stable_when_rows_arrive():
    ids = pd.Series([f"train-{i}" for i in range(20_000)])
    before = assign_split(ids)
    after = assign_split(pd.concat([ids, pd.Series([f"train-{i}" for i in range(20_000, 30_000)])], ignore_index=True))
    assert (after.iloc[:20_000].to_numpy() == before.to_numpy()).all()
    shares = before.value_counts(normalize=True)
    assert shares[TRAIN] == pytest.approx(0.8, abs=0.01)
    assert shares[VALIDATION] == pytest.approx(0.1, abs=0.01) and shares[TEST] == pytest.approx(0.1, abs=0.01)
    assert assign_split(ids.iloc[::-1]).sort_index().equals(before)


def test_split_fractions_are_checked():
    with pytest.raises(ValueError, match="split fractions"):
        SplitFractions(validation=0.6, test=0.5)


def test_featurizer_learns_only_from_what_it_is_fitted_on():
    frame = market(3_000)
    split = assign_split(frame["listing_id"])
    train, test = frame[split == TRAIN], frame[split == TEST].copy()
    test["name"] = test["name"] + " zyxwvutsrq"
    featurizer = ListingFeaturizer().fit(train)
    assert "zyxwvutsrq" not in featurizer.name_vectorizer_.vocabulary_
    matrix = featurizer.transform(test)
    assert matrix.shape == (len(test), len(featurizer.feature_names()))
    assert matrix.dtype == np.float32 and np.isfinite(matrix.data).all()
    sizes = featurizer.vocabulary_sizes
    assert sizes["name"] > 100 and sizes["description"] > 100 and sizes["categorical"] > 50


def test_featurizer_handles_unseen_brands_and_missing_fields():
    featurizer = ListingFeaturizer().fit(market(2_000))
    odd = pd.DataFrame(
        [
            {
                "name": "Mystery box",
                "item_condition_id": 5,
                "category_name": None,
                "brand_name": "Nobody",
                "shipping": 1,
                "item_description": None,
            }
        ]
    )
    row = featurizer.transform(odd)
    names = featurizer.feature_names()
    active = {names[column]: float(value) for column, value in zip(row.indices, row.data, strict=True)}
    assert row.shape == (1, len(names))
    onehot = {name for name in active if name.startswith("onehot:")}
    assert onehot == {
        "onehot:item_condition_id_5",
        "onehot:shipping_1",
        "onehot:brand_name_infrequent_sklearn",  # a brand never seen goes where the rare ones go
        "onehot:category_name_(none)",
        "onehot:category_1_(none)",
        "onehot:category_2_(none)/(none)",
    }
    assert not any(name.startswith("description:") for name in active)  # no description, no words from it
    vocabulary = set(names)
    title_words = {name for name in active if name.startswith("name:")}
    assert title_words == {f"name:{w}" for w in ("mystery", "box") if f"name:{w}" in vocabulary} and title_words
    assert active["engineered:has_brand"] == 1 and active["engineered:name_chars"] == pytest.approx(np.log1p(11))
    assert sum(v**2 for name, v in active.items() if name.startswith("name:")) == pytest.approx(1, rel=1e-5)


def test_rules_baseline_falls_back_and_beats_the_mean():
    frame = market(6_000)
    split = assign_split(frame["listing_id"])
    train, test = frame[split != TEST], frame[split == TEST]
    baseline = RulesBaseline(min_support=10).fit(train)
    predicted = baseline.predict(test)
    assert np.isfinite(predicted).all() and (predicted > 0).all()
    assert rmsle(test["price"], predicted) < rmsle(test["price"], np.full(len(test), train["price"].median()))
    unseen = test.head(1).assign(category_name="Nowhere/At/All", brand_name="Nobody")
    assert baseline.predict_log(unseen)[0] == pytest.approx(baseline.global_mean_)


def test_price_metrics_on_known_values():
    metrics = price_metrics([10, 20], [10, 20], low=[5, 25], high=[15, 30])
    assert metrics["rmsle"] == 0 and metrics["mae"] == 0 and metrics["r2_log"] == 1
    assert metrics["coverage"] == 0.5 and metrics["median_width"] == 7.5
    assert rmsle([np.e - 1], [0]) == pytest.approx(1.0)

    # imperfect, worked by hand: log1p residuals are ln2, -ln2, ln2 (1 vs 0, 3 vs 7, 7 vs 3)
    worked = price_metrics([1, 3, 7], [0, 7, 3], low=[0, 2, 8], high=[2, 3, 9])
    assert worked["rmsle"] == pytest.approx(np.log(2))
    assert worked["rmse"] == pytest.approx(np.sqrt((1 + 16 + 16) / 3)) and worked["mae"] == pytest.approx(3)
    # log actuals ln2, ln4, ln8 around their mean ln4: total 2 ln2^2, residual 3 ln2^2
    assert worked["r2_log"] == pytest.approx(-0.5)
    assert worked["coverage"] == pytest.approx(2 / 3) and worked["median_width"] == 1  # 3 in [2, 3]; 7 not in [8, 9]
    assert rmsle([1], [-5]) == pytest.approx(np.log(2))  # a negative price counts as $0
    negative = price_metrics([1, 3], [-5, 3])
    assert negative["rmsle"] == pytest.approx(np.log(2) / np.sqrt(2)) and negative["mae"] == 3 and negative["rows"] == 2
    flat = price_metrics([5, 5], [4, 6])  # no spread in the actual prices: R² is taken as 0
    assert flat["r2_log"] == 0.0
    assert "coverage" not in price_metrics([1], [1], low=[0]) and "coverage" not in price_metrics([1], [1], high=[2])
    edges = price_metrics([1, 2], [1, 2], low=[1, 0], high=[3, 2])  # both ends of a range count as inside
    assert edges["coverage"] == 1.0 and edges["median_width"] == 2


def test_featurizer_lookup_matches_the_fitted_encoder_and_rows_featurize_alone_as_in_a_batch():
    featurizer = ListingFeaturizer().fit(market(3_000, seed=2))
    other = market(400, seed=3)
    other.loc[:40, "brand_name"] = "A Brand Never Seen"
    other.loc[41:60, "category_name"] = "New/Deep/Category/Path"
    other.loc[61:70, "category_name"] = None
    other.loc[71:75, "category_name"] = "Single"
    categorical = features._categorical(other)
    expected = featurizer.encoder_.transform(pd.DataFrame(categorical))
    assert (featurizer.onehot_.transform(categorical) != expected).nnz == 0
    batch = featurizer.transform(other)
    for row in (0, 45, 65, 72, len(other) - 1):
        assert (featurizer.transform(other.iloc[[row]]) != batch[row]).nnz == 0


def _same_matrix(left, right) -> bool:
    return all(np.array_equal(getattr(left, part), getattr(right, part)) for part in ("indptr", "indices", "data"))


def _sklearn_features(fitted: ListingFeaturizer, frame: pd.DataFrame):
    """What the fitted pieces' own sklearn transforms make, block by block, stacked."""
    import scipy.sparse as sp

    title, description = features._text(frame)
    everything = [f"{t} {d}".lower() for t, d in zip(title, description, strict=True)]
    inputs = {
        "title_chars": title,
        "crossed": features.crossed_documents(frame),
        "text": features._whole_text(frame, title, description),
    }
    blocks = [
        fitted.name_vectorizer_.transform(title),
        fitted.description_vectorizer_.transform(description),
        fitted.encoder_.transform(pd.DataFrame(features._categorical(frame))),
        sp.csr_matrix(features._engineered(frame, description, everything)),
        *(vectorizer.transform(inputs[block]) for block, vectorizer in fitted._extra_vectorizers().items()),
        fitted.pairs_encoder_.transform(pd.DataFrame(features._pairs(features._categorical(frame)))),
    ]
    return sp.hstack(blocks, format="csr", dtype=np.float32)


ODD_LISTINGS = pd.DataFrame(
    {
        "name": ["", "!!! ??", "Zzzunknown qqqword", "New NEW new with tags", "Ünïcödé café – naïve 32GB", "a  b\tc"],
        "brand_name": [None, "Nike", "", "Ni\x1fke", "Apple Inc", None],
        "category_name": [None, "Women/Tops/T-shirts", "Single", "A/B", "", None],
        "item_description": [features.NO_DESCRIPTION, None, "", "bundle of 3 nwt", "128 gb sealed", "  "],
        "item_condition_id": [1, 2, 3, 4, 5, 1],
        "shipping": [0, 1, 0, 1, 0, 1],
    }
)


@pytest.mark.parametrize("max_ngram", [1, 2, 3])
def test_batch_encoder_makes_what_the_fitted_sklearn_pieces_make(genuine_train, genuine_test, max_ngram):
    """The featurizer's own counting and weighting: the same columns as sklearn's transforms, values
    to float32 rounding, for genuine listings and odd ones (blank, unknown words, accents, the
    crossed block's separator typed by a seller, runs of whitespace)."""
    with ListingsFile(genuine_train) as train, ListingsFile(genuine_test) as test:
        train_rows, test_rows = pd.concat(train.chunks()), pd.concat(test.chunks())
    fitted = ListingFeaturizer(FeaturizerConfig(max_ngram=max_ngram)).fit(train_rows)
    listings = pd.concat([test_rows, ODD_LISTINGS], ignore_index=True)
    ours, theirs = fitted.transform(listings), _sklearn_features(fitted, listings)
    assert np.array_equal(ours.indptr, theirs.indptr) and np.array_equal(ours.indices, theirs.indices)
    assert np.allclose(ours.data, theirs.data, rtol=1e-6, atol=1e-7)
    assert fitted.transform(test_rows.head(0)).shape == (0, ours.shape[1])
    # as the service passes them: columns of plain values, None where a field is missing
    columns = {column: [None if pd.isna(v) else v for v in listings[column]] for column in listings.columns}
    assert _same_matrix(fitted.transform(columns), ours)
    # in chunks as in one piece
    fitted._batch_encoder().CHUNK_ROWS = 150
    assert _same_matrix(fitted.transform(listings), ours)


def test_a_pickled_featurizer_carries_no_lookup_tables(tmp_path):
    """Lookups are rebuilt from the vectorizers: bundles stay small, and a bundle saved with the
    lookups of an earlier version (attributes that no longer exist) loads and featurizes the same."""
    import pickle

    frame = market(1_500, seed=7)
    fitted = ListingFeaturizer().fit(frame)
    before = fitted.transform(frame.head(50))
    assert {"_encoder", "_onehot"} <= set(fitted.__dict__)
    state = pickle.loads(pickle.dumps(fitted)).__dict__
    assert not {"_encoder", "_onehot"} & set(state)
    fitted.__dict__["name_lookup_"] = "an earlier version's lookup"
    again = pickle.loads(pickle.dumps(fitted))
    assert "name_lookup_" not in again.__dict__
    assert _same_matrix(again.transform(frame.head(50)), before)


def test_crossed_tokens_pair_each_title_word_with_its_brand_and_category():
    listing = pd.DataFrame(
        {"name": ["Air Max 90, size 10"], "brand_name": ["Nike"], "category_name": ["Men/Shoes/Athletic Shoes"]}
    )
    terms = features.crossed_terms(features.crossed_documents(listing)[0])
    words = ["air", "max", "90", "size", "10"]
    assert terms == [f"nike__{w}" for w in words] + [f"men/shoes/athletic_shoes__{w}" for w in words]
    unbranded = listing.assign(brand_name=[None], category_name=[None])
    assert features.crossed_terms(features.crossed_documents(unbranded)[0])[0] == "(none)__air"
    # the separator that joins the fields, typed by a seller into any of them, splits nothing
    typed = listing.assign(name=["Air\x1fMax"], brand_name=["Ni\x1fke"], category_name=["Men\x1f/Shoes"])
    assert features.crossed_terms(features.crossed_documents(typed)[0]) == [
        "nike__air",
        "nike__max",
        "men/shoes__air",
        "men/shoes__max",
    ]


def test_a_featurizer_without_the_new_blocks_makes_its_own_columns():
    """A featurizer pickled before the title-character, crossed, whole-text and pairs blocks existed keeps
    its width."""
    frame = market(1_500, seed=5)
    full = ListingFeaturizer().fit(frame)
    old = ListingFeaturizer(
        FeaturizerConfig(title_chars_max_features=0, crossed_max_features=0, text_max_features=0, category_pairs=False)
    )
    old.fit(frame)
    for attribute in ("title_chars_vectorizer_", "crossed_vectorizer_", "text_vectorizer_", "pairs_encoder_"):
        delattr(old, attribute)
    matrix = old.transform(frame.head(20))
    assert matrix.shape[1] == len(old.feature_names()) < len(full.feature_names())
    assert _same_matrix(matrix, full.transform(frame.head(20))[:, : matrix.shape[1]])


def test_engineered_numbers_read_any_case():
    listings = pd.DataFrame(
        {
            "name": ["iPhone 64GB", "Lot Of 3 tops", "NWT dress", "plain shirt"],
            "brand_name": ["Apple", None, None, "Nike"],
            "item_description": ["Sealed, 128 gb", "BUNDLE OF 12 shirts", features.NO_DESCRIPTION, "lotion of 5"],
        }
    )
    title, description = features._text(listings)
    everything = [f"{t} {d}".lower() for t, d in zip(title, description, strict=True)]
    table = pd.DataFrame(features._engineered(listings, description, everything), columns=features.ENGINEERED)
    assert np.exp(table["bundle_size"]).round().tolist() == [1, 3, 1, 1]
    assert (np.exp2(table["storage_gb"] * 12) - 1).round().tolist() == [64, 0, 0, 0]
    assert table["new_with_tags"].tolist() == [1, 0, 1, 0]
    assert table["has_description"].tolist() == [1, 1, 0, 1] and table["has_brand"].tolist() == [1, 0, 0, 1]


def test_text_vocabularies_come_from_a_sample_the_one_hot_from_every_listing():
    frame = market(1_500, seed=6)
    sampled = ListingFeaturizer(FeaturizerConfig(vocabulary_max_rows=400)).fit(frame)
    sample = frame.iloc[np.linspace(0, len(frame) - 1, 400).astype(int)]
    on_sample = ListingFeaturizer().fit(sample)
    assert sampled.name_vectorizer_.vocabulary_ == on_sample.name_vectorizer_.vocabulary_
    assert sampled.text_vectorizer_.vocabulary_ == on_sample.text_vectorizer_.vocabulary_
    everyone = ListingFeaturizer().fit(frame)
    assert [list(c) for c in sampled.encoder_.categories_] == [list(c) for c in everyone.encoder_.categories_]


def test_large_data_featurizes_with_the_word_blocks_only():
    frame = market(1_500, seed=6)
    large = ListingFeaturizer(FeaturizerConfig(extra_blocks_max_rows=1_000)).fit(frame)
    blocks = {name.split(":", 1)[0] for name in large.feature_names()}
    assert blocks == {"name", "description", "onehot", "engineered"}
    matrix = large.transform(frame.head(50))
    assert matrix.shape == (50, len(large.feature_names())) and large.tree_columns == matrix.shape[1]


def test_a_candidate_replaces_the_champion_only_past_the_margin():
    def metrics(candidate: float, champion: float | None = None) -> dict:
        found = {"candidate": {"rmsle": candidate}, "rules_baseline": {"rmsle": 0.9}}
        return found | ({"champion": {"rmsle": champion}} if champion is not None else {})

    assert should_promote(metrics(0.60), margin=0.5) == (True, "no champion yet; candidate RMSLE 0.6000")
    promote, reason = should_promote(metrics(0.47, 0.50), margin=0.02)
    assert promote and reason == "candidate RMSLE 0.4700 beats champion 0.5000 by more than 0.02"
    for candidate, margin in ((0.49, 0.02), (0.50, 0.0), (0.51, 0.0)):
        promote, reason = should_promote(metrics(candidate, 0.50), margin=margin)
        assert not promote and reason.endswith("; champion kept") and f"{candidate:.4f}" in reason, reason


def test_the_eval_report_per_category_worked_by_hand():
    """Three Women listings priced exactly, two Men listings off by a factor (1 + price) of e, one
    listing with no category: each category's RMSLE is its own rows' error alone."""
    test = pd.DataFrame(
        {
            "category_name": ["Women/Tops/A", "Women/Dresses/B", "Women/Tops/A", "Men/Shoes/C", "Men/Shoes/C", None],
            "price": [10.0, 20.0, 30.0, np.e - 1, np.e**2 - 1, 5.0],
        },
        index=[7, 3, 9, 1, 4, 8],  # not 0..n: positions, not labels, must line up
    )
    exact = test["price"].to_numpy()
    predicted = exact.copy()
    predicted[3:5] = [0.0, np.e - 1]  # log1p off by exactly 1 for both Men listings
    # the candidate's range holds the price on four rows (the two Men rows miss it)
    candidate = pd.DataFrame({"price": predicted, "price_low": predicted, "price_high": predicted}, index=test.index)
    # the champion is exact on the Men rows and off by e on the first Women row; its range covers every row
    champion_price = exact.copy()
    champion_price[0] = np.e * (1 + exact[0]) - 1
    champion = pd.DataFrame(
        {"price": champion_price, "price_low": exact * 0, "price_high": champion_price + 1}, index=test.index
    )
    report = evaluate(test, candidate, rules=np.full(6, 5.0), champion=champion)
    assert report.metrics["candidate"]["coverage"] == pytest.approx(4 / 6)
    assert report.metrics["champion"]["rmsle"] == pytest.approx(np.sqrt(1 / 6))
    assert report.metrics["champion"]["coverage"] == 1 and report.metrics["champion"]["median_width"] > 1
    assert report.metrics["rules_baseline"]["rows"] == 6 and "coverage" not in report.metrics["rules_baseline"]
    assert list(report.per_category.columns) == ["category", "rows", "candidate", "rules_baseline", "champion"]
    by_category = report.per_category.set_index("category")
    assert by_category["champion"].to_dict() == pytest.approx({"Women": np.sqrt(1 / 3), "Men": 0, "(none)": 0})
    assert by_category["rows"].to_dict() == {"Women": 3, "Men": 2, "(none)": 1}
    assert by_category.loc["Women", "candidate"] == 0 and by_category.loc["(none)", "candidate"] == 0
    assert by_category.loc["Men", "candidate"] == pytest.approx(1.0)
    assert by_category.loc["(none)", "rules_baseline"] == 0  # the rules said $5, and it was $5
    assert report.metrics["candidate"]["rmsle"] == pytest.approx(np.sqrt(2 / 6))  # two errors of 1 in six
    assert report.rows == 6 and list(by_category.index) == ["Women", "Men", "(none)"]  # most rows first
    table = report.table()
    assert list(table.index) == ["candidate", "rules_baseline", "champion"]
    assert list(table.columns) == ["rows", "rmsle", "rmse", "mae", "r2_log", "coverage", "median_width"]
    assert table.loc["candidate", "rmsle"] == pytest.approx(np.sqrt(2 / 6)) and table.loc["candidate", "rows"] == 6
    shown = report.markdown()
    assert shown.startswith("### Test split (6 listings)") and "### RMSLE by top-level category" in shown
    # 4 significant digits; rows as whole numbers
    assert f"{np.sqrt(2 / 6):.4g}" == "0.5774" and "| candidate      |      6 |  0.5774 |" in shown
    assert re.search(r"\| Men\s+\|\s+2 \|\s+1 \|", shown), shown


@pytest.mark.parametrize("with_champion", [False, True])
def test_the_eval_report_figures_draw_the_report_s_numbers(tmp_path, with_champion):
    test = pd.DataFrame(
        {"category_name": ["Women/Tops", "Men/Shoes", "Women/Dresses"], "price": [10.0, 40.0, 25.0]}, index=[5, 2, 8]
    )
    candidate = pd.DataFrame({"price": [12.0, 30.0, 60.0], "price_low": 0.0, "price_high": 99.0}, index=test.index)
    champion = candidate.assign(price=[9.0, 44.0, 20.0]) if with_champion else None
    report = evaluate(test, candidate, rules=np.array([20.0, 20.0, 20.0]), champion=champion)
    figures = report_figures(test, candidate, report)
    assert list(figures) == ["predicted_vs_actual", "rmsle_by_category"]

    scatter = figures["predicted_vs_actual"].axes[0]
    points = scatter.collections[0].get_offsets()
    np.testing.assert_array_equal(points, [[10.0, 12.0], [40.0, 30.0], [25.0, 60.0]])  # (actual, suggested)
    diagonal = scatter.lines[0]
    assert list(diagonal.get_xdata()) == [1, 60.0] == list(diagonal.get_ydata())  # up to the largest price
    assert (scatter.get_xscale(), scatter.get_yscale()) == ("log", "log")
    assert (scatter.get_xlabel(), scatter.get_ylabel()) == ("actual price ($)", "suggested price ($)")
    assert scatter.get_title() == "Test split: suggested vs actual"

    bars = figures["rmsle_by_category"].axes[0]
    models = ["candidate", "rules_baseline"] + (["champion"] if with_champion else [])
    assert [text.get_text() for text in bars.get_legend().get_texts()] == models
    assert [label.get_text() for label in bars.get_xticklabels()] == ["Women", "Men"]  # most listings first
    by_category = report.per_category.set_index("category")
    heights = [[patch.get_height() for patch in group] for group in bars.containers]
    assert heights == [pytest.approx(by_category[model].tolist()) for model in models]
    assert heights[0][1] == pytest.approx(abs(np.log(31 / 41)))  # Men: candidate $30 for $40
    assert (bars.get_ylabel(), bars.get_title()) == ("RMSLE", "Test split: error by top-level category")

    paths = plot_report(test, candidate, report, tmp_path / "plots")
    assert paths == [tmp_path / "plots" / "predicted_vs_actual.png", tmp_path / "plots" / "rmsle_by_category.png"]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in paths)
