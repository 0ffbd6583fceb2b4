"""Reference profiles and drift measures: identical batches of one market never drift, each
kind of synthetic shift is caught by the feature it moves, and small batches are not judged."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from price_alchemy_assets.listings.profile import ListingsProfile
from price_alchemy_assets.listings.synthetic import DriftKind, MarketplaceSynthesizer
from price_alchemy_assets.listings.synthetic import synthetic_market as market
from price_alchemy_assets.monitoring.drift import (
    DriftThresholds,
    LabelledError,
    aligned,
    compare,
    js_distance,
    population_stability_index,
)

THRESHOLDS = DriftThresholds()


def batch_profile(seed: int, drift: DriftKind | None = None, rows: int = 2_000) -> ListingsProfile:
    synthesizer = MarketplaceSynthesizer(seed=seed, drift=drift)
    return ListingsProfile.from_listings(pd.concat(synthesizer.batches(rows, datetime(2026, 11, 1, tzinfo=UTC), 5.0)))


@pytest.fixture(scope="module")
def reference() -> ListingsProfile:
    return ListingsProfile.from_listings(market(20_000, seed=1))


def test_profile_counts_and_round_trip(reference):
    assert reference.rows == sum(reference.counts["shipping"].values())
    assert set(reference.counts["item_condition_id"]) <= {"1", "2", "3", "4", "5"}
    assert sum(reference.top_level_categories().values()) == reference.rows
    assert sum(reference.histograms["log_price"].values()) == reference.rows  # market() keeps priced rows only
    assert ListingsProfile.from_json(json.loads(json.dumps(reference.to_json()))) == reference


def test_batches_of_the_same_market_do_not_drift(reference):
    for seed in range(2, 7):
        report = compare(reference, batch_profile(seed), THRESHOLDS)
        assert not report.drifted, report.reasons
        assert max(f.psi for f in report.features) < THRESHOLDS.psi / 2


@pytest.mark.parametrize(
    ("kind", "signal"),
    [
        (DriftKind.NEW_CATEGORIES, "unseen categories"),
        (DriftKind.NEW_BRANDS, "unseen brands"),
        (DriftKind.TEXT, "description_chars PSI"),
        (DriftKind.CONDITION, "item_condition_id PSI"),
    ],
)
def test_each_shift_is_caught_by_what_it_moves(reference, kind, signal):
    report = compare(reference, batch_profile(9, kind), THRESHOLDS)
    assert report.drifted and any(reason.startswith(signal) for reason in report.reasons), report.reasons
    assert "DRIFT" in report.to_markdown()


def test_small_batches_are_reported_but_not_judged(reference):
    report = compare(reference, batch_profile(9, DriftKind.CONDITION, rows=100), THRESHOLDS)
    assert not report.drifted and "not judged" in report.reasons[0]


def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift():
    same = population_stability_index(np.array([50.0, 30, 20]), np.array([5.0, 3, 2]))
    small = population_stability_index(np.array([50.0, 30, 20]), np.array([45.0, 33, 22]))
    large = population_stability_index(np.array([50.0, 30, 20]), np.array([10.0, 30, 60]))
    assert same == pytest.approx(0.0, abs=1e-9) and 0 < small < 0.05 < large


def test_new_wording_raises_the_out_of_vocabulary_rate():
    from price_alchemy_assets.model.features import ListingFeaturizer

    train, held_out = market(4_000, seed=1), market(1_000, seed=2)
    featurizer = ListingFeaturizer().fit(train)
    reference = ListingsProfile.from_listings(train).with_oov_rate(featurizer, held_out)

    def batch(drift: DriftKind | None) -> ListingsProfile:
        listings = pd.concat(MarketplaceSynthesizer(seed=9, drift=drift).batches(1_500, datetime(2026, 11, 1), 5.0))
        return ListingsProfile.from_listings(listings).with_oov_rate(featurizer, listings)

    same, reworded = compare(reference, batch(None), THRESHOLDS), compare(reference, batch(DriftKind.TEXT), THRESHOLDS)
    assert 0 <= reference.oov_rate < 0.02 and same.oov_rate < reference.oov_rate + THRESHOLDS.oov_increase
    assert not any("out-of-vocabulary" in reason for reason in same.reasons)
    assert reworded.oov_rate > reference.oov_rate + THRESHOLDS.oov_increase
    assert any(reason.startswith("out-of-vocabulary words") for reason in reworded.reasons), reworded.reasons
    assert "outside the champion's vocabulary" in reworded.to_markdown()
    assert ListingsProfile.from_json(json.loads(json.dumps(reference.to_json()))).oov_rate == reference.oov_rate


def test_psi_and_js_distance_worked_by_hand():
    p, q = np.array([50.0, 50]), np.array([60.0, 40])
    # PSI = sum (q - p) ln(q / p) = 0.1 ln 1.2 + 0.1 ln 1.25
    assert population_stability_index(p, q) == pytest.approx(0.1 * np.log(1.2) + 0.1 * np.log(1.25))
    # JS distance (base 2): the square root of the mean KL divergence to the midpoint m = (.55, .45)
    kl_p = 0.5 * np.log(0.5 / 0.55) + 0.5 * np.log(0.5 / 0.45)
    kl_q = 0.6 * np.log(0.6 / 0.55) + 0.4 * np.log(0.4 / 0.45)
    assert js_distance(p, q) == pytest.approx(np.sqrt((kl_p + kl_q) / 2 / np.log(2)))
    assert js_distance(p, np.zeros(2)) == 0.0


def test_rare_values_and_values_the_reference_lacks_are_pooled():
    reference, current = {"a": 90, "b": 9, "c": 1}, {"a": 50, "c": 20, "z": 30}
    ref, cur = aligned(reference, current, min_share=0.05)  # c (1 %) is rare; z is new
    assert ref.tolist() == [90, 9, 1] and cur.tolist() == [50, 0, 50]
    ref, cur = aligned(reference, current)  # nothing rare: only z pooled
    assert ref.tolist() == [90, 9, 1, 0] and cur.tolist() == [50, 0, 20, 30]
    ref, cur = aligned({"a": 99, "b": 1}, {"b": 5}, min_share=0.01)  # exactly min_share is kept
    assert ref.tolist() == [99, 1, 0] and cur.tolist() == [0, 5, 0]


def shipping_profile(rows: int, seller_pays: int) -> ListingsProfile:
    """The same listings every time; only how many have the seller paying shipping changes."""
    listings = market(rows + 100, seed=11).head(rows).reset_index(drop=True)
    listings["shipping"] = [1] * seller_pays + [0] * (rows - seller_pays)
    return ListingsProfile.from_listings(listings)


def test_each_threshold_is_crossed_just_past_it_and_not_before():
    reference = shipping_profile(1_000, 500)
    # PSI of (x, 1 - x) against (.5, .5) is (x - .5) ln(x / (1 - x)): 0.188 at 71 %, 0.208 at 72 %
    below = compare(reference, shipping_profile(1_000, 710), THRESHOLDS)
    above = compare(reference, shipping_profile(1_000, 720), THRESHOLDS)
    assert not below.drifted and below.reasons == [], below.reasons
    assert above.drifted and above.reasons == ["shipping PSI 0.208 > 0.2"], above.reasons
    # the same shift in fewer listings than min_rows is reported, not judged
    small = compare(reference, shipping_profile(499, 499), THRESHOLDS)
    assert small.drifted is False and small.reasons == ["only 499 listings (< 500); not judged"]
    assert compare(reference, shipping_profile(499, 250), THRESHOLDS).reasons == []  # small and calm: nothing to say
    assert compare(reference, shipping_profile(500, 500), THRESHOLDS).drifted is True  # 500 is enough
    # the champion's error on new labelled listings: judged from min_labelled rows, past rmsle_increase
    calm = shipping_profile(1_000, 500)
    for rows, rmsle, drifted in ((199, 0.70, False), (200, 0.549, False), (200, 0.551, True)):
        report = compare(reference, calm, THRESHOLDS, LabelledError(rows, rmsle, 0.50))
        assert report.drifted is drifted, (rows, rmsle, report.reasons)


def test_the_drift_report_says_what_was_measured():
    reference = shipping_profile(1_000, 500)
    calm = compare(reference, reference, THRESHOLDS)
    moved = compare(reference, shipping_profile(1_000, 720), THRESHOLDS)
    assert [f.feature for f in calm.features] == [
        "category",
        "category_name",
        "brand_name",
        "item_condition_id",
        "shipping",
        *reference.histograms,
    ]
    assert calm.drifted is False and calm.reasons == []
    assert all(f.psi == 0 and f.js_distance == 0 for f in calm.features)
    assert calm.labelled_rows == 0 and calm.labelled_rmsle is None and calm.reference_rmsle is None
    assert calm.to_markdown().splitlines()[:4] == [
        "**no drift** over 1,000 listings",
        "",
        "| feature | PSI | JS distance |",
        "|---|---:|---:|",
    ]
    shown = moved.to_markdown().splitlines()
    assert shown[0] == "**DRIFT** over 1,000 listings: shipping PSI 0.208 > 0.2"
    assert "| shipping | 0.208 | 0.193 |" in shown  # JS: midpoint (.39, .61), mean KL 0.0257 nats
    assert shown[-1] == "Unseen categories: 0.0% of listings; unseen brands: 0.0%."
    # words outside the vocabulary: judged on the rise over the reference's own rate, from 5 points
    for rate, drifted in ((0.15, False), (0.151, True)):
        report = compare(replace(reference, oov_rate=0.10), replace(reference, oov_rate=rate), THRESHOLDS)
        assert report.drifted is drifted and report.oov_rate == rate and report.reference_oov_rate == 0.10
    report = compare(replace(reference, oov_rate=0.10), replace(reference, oov_rate=0.151), THRESHOLDS)
    assert report.reasons == ["out-of-vocabulary words 15.1%, +5.1% over held-out training data (10.0%)"]
    assert "Words outside the champion's vocabulary: 15.1% (held-out training data: 10.0%)." in report.to_markdown()
    labelled = compare(reference, reference, THRESHOLDS, LabelledError(200, 0.561, 0.5))
    assert (labelled.labelled_rows, labelled.labelled_rmsle, labelled.reference_rmsle) == (200, 0.561, 0.5)
    assert labelled.reasons == ["champion RMSLE 0.561 on 200 new labelled listings, +0.061 over its evaluation (0.500)"]
    assert "Champion RMSLE on 200 new labelled listings: 0.5610 (at evaluation: 0.5000)." in labelled.to_markdown()


def test_top_level_categories_are_the_first_level_with_missing_ones_apart():
    listings = (
        market(60, seed=3)
        .head(6)
        .assign(
            category_name=["Women/Tops/A", "Women/Dresses/B", "Men/Shoes/C", "Men", None, "Kids/Toys/Building/Sets"]
        )
    )
    assert ListingsProfile.from_listings(listings).top_level_categories() == {
        "Women": 2,
        "Men": 2,
        "(none)": 1,
        "Kids": 1,
    }
