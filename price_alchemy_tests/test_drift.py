"""Reference profiles and drift measures: identical batches of one market never drift, each
kind of synthetic shift is caught by the feature it moves, and small batches are not judged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from price_alchemy_assets.listings.synthetic import DriftKind, MarketplaceSynthesizer
from price_alchemy_assets.monitoring.drift import (
    DriftThresholds,
    LabelledError,
    aligned,
    compare,
    js_distance,
    population_stability_index,
)
from price_alchemy_assets.monitoring.profile import ListingsProfile

from .test_model_pieces import market

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
    assert not small.drifted and small.reasons == ["only 499 listings (< 500); not judged"]
    # the champion's error on new labelled listings: judged from min_labelled rows, past rmsle_increase
    calm = shipping_profile(1_000, 500)
    for rows, rmsle, drifted in ((199, 0.70, False), (200, 0.549, False), (200, 0.551, True)):
        report = compare(reference, calm, THRESHOLDS, LabelledError(rows, rmsle, 0.50))
        assert report.drifted is drifted, (rows, rmsle, report.reasons)
