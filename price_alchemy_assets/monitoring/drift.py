"""How far a batch of listings is from what the champion was trained on.

Per feature: the population stability index (PSI) and the Jensen-Shannon distance between the
reference profile's distribution and the batch's; plus the share of the batch whose category or
brand the champion never saw. Brands and categories have thousands of values, so their
distributions keep the values with at least `min_share` of the reference and pool the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.spatial.distance import jensenshannon

from price_alchemy_assets.listings.profile import ListingsProfile
from price_alchemy_assets.monitoring.drift_thresholds import DriftThresholds

OTHER = "(other)"


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    js_distance: float


@dataclass
class DriftReport:
    rows: int
    features: list[FeatureDrift]
    unseen_category_share: float
    unseen_brand_share: float
    drifted: bool
    reasons: list[str] = field(default_factory=list)
    labelled_rows: int = 0
    labelled_rmsle: float | None = None
    reference_rmsle: float | None = None
    oov_rate: float | None = None
    reference_oov_rate: float | None = None

    def to_json(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        lines = [
            f"**{'DRIFT' if self.drifted else 'no drift'}** over {self.rows:,} listings"
            + (f": {'; '.join(self.reasons)}" if self.reasons else ""),
            "",
            "| feature | PSI | JS distance |",
            "|---|---:|---:|",
            *(f"| {f.feature} | {f.psi:.3f} | {f.js_distance:.3f} |" for f in self.features),
            "",
            f"Unseen categories: {self.unseen_category_share:.1%} of listings; "
            f"unseen brands: {self.unseen_brand_share:.1%}.",
        ]
        if self.oov_rate is not None and self.reference_oov_rate is not None:
            lines.append(
                f"Words outside the champion's vocabulary: {self.oov_rate:.1%} (held-out training data: "
                f"{self.reference_oov_rate:.1%})."
            )
        if self.labelled_rmsle is not None:
            lines.append(
                f"Champion RMSLE on {self.labelled_rows:,} new labelled listings: {self.labelled_rmsle:.4f} "
                f"(at evaluation: {self.reference_rmsle:.4f})."
            )
        return "\n".join(lines)


def aligned(reference: dict, current: dict, min_share: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The two distributions over the same values; reference values under `min_share` (and values
    the reference lacks) pooled as one OTHER value."""
    total = sum(reference.values()) or 1
    kept = [value for value, count in reference.items() if count / total >= min_share]
    keys = set(kept)
    ref = [reference[value] for value in kept] + [sum(c for v, c in reference.items() if v not in keys)]
    cur = [current.get(value, 0) for value in kept] + [sum(c for v, c in current.items() if v not in keys)]
    return np.asarray(ref, dtype=np.float64), np.asarray(cur, dtype=np.float64)


def population_stability_index(reference: np.ndarray, current: np.ndarray, floor: float = 1e-4) -> float:
    p = np.clip(reference / max(reference.sum(), 1), floor, None)
    q = np.clip(current / max(current.sum(), 1), floor, None)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    if reference.sum() == 0 or current.sum() == 0:
        return 0.0
    return float(jensenshannon(reference, current, base=2))


def unseen_share(reference: dict, current: dict) -> float:
    total = sum(current.values())
    return sum(count for value, count in current.items() if value not in reference) / total if total else 0.0


@dataclass(frozen=True)
class LabelledError:
    """The champion's error on newly labelled listings, beside its error at evaluation."""

    rows: int
    rmsle: float
    reference_rmsle: float


def compare(
    reference: ListingsProfile,
    batch: ListingsProfile,
    thresholds: DriftThresholds,
    labelled: LabelledError | None = None,
) -> DriftReport:
    """Feature-by-feature drift of `batch` from `reference`, the champion's error on new labelled
    listings where given, and whether either crosses the thresholds."""
    distributions = {
        "category": (reference.top_level_categories(), batch.top_level_categories(), 0.0),
        "category_name": (reference.counts["category_name"], batch.counts["category_name"], thresholds.min_share),
        "brand_name": (reference.counts["brand_name"], batch.counts["brand_name"], thresholds.min_share),
        "item_condition_id": (reference.counts["item_condition_id"], batch.counts["item_condition_id"], 0.0),
        "shipping": (reference.counts["shipping"], batch.counts["shipping"], 0.0),
    }
    for name, histogram in reference.histograms.items():
        if batch.histograms.get(name):
            distributions[name] = (histogram, batch.histograms[name], 0.0)
    features = []
    for name, (ref, cur, min_share) in distributions.items():
        p, q = aligned(ref, cur, min_share)
        features.append(FeatureDrift(name, population_stability_index(p, q), js_distance(p, q)))
    unseen_categories = unseen_share(reference.counts["category_name"], batch.counts["category_name"])
    unseen_brands = unseen_share(reference.counts["brand_name"], batch.counts["brand_name"])
    reasons = [f"{f.feature} PSI {f.psi:.3f} > {thresholds.psi}" for f in features if f.psi > thresholds.psi]
    for label, share in (("categories", unseen_categories), ("brands", unseen_brands)):
        if share > thresholds.unseen_share:
            reasons.append(f"unseen {label} {share:.1%} > {thresholds.unseen_share:.0%}")
    judge_oov = batch.oov_rate is not None and reference.oov_rate is not None
    if judge_oov and batch.oov_rate - reference.oov_rate > thresholds.oov_increase:
        reasons.append(
            f"out-of-vocabulary words {batch.oov_rate:.1%}, +{batch.oov_rate - reference.oov_rate:.1%} "
            f"over held-out training data ({reference.oov_rate:.1%})"
        )
    if batch.rows < thresholds.min_rows:
        reasons = [f"only {batch.rows} listings (< {thresholds.min_rows}); not judged"] if reasons else []
        drifted = False
    else:
        drifted = bool(reasons)
    if labelled is not None and labelled.rows >= thresholds.min_labelled:
        increase = labelled.rmsle - labelled.reference_rmsle
        if increase > thresholds.rmsle_increase:
            reasons.append(
                f"champion RMSLE {labelled.rmsle:.3f} on {labelled.rows} new labelled listings, "
                f"+{increase:.3f} over its evaluation ({labelled.reference_rmsle:.3f})"
            )
            drifted = True
    return DriftReport(
        batch.rows,
        features,
        unseen_categories,
        unseen_brands,
        drifted,
        reasons,
        labelled.rows if labelled else 0,
        labelled.rmsle if labelled else None,
        labelled.reference_rmsle if labelled else None,
        batch.oov_rate,
        reference.oov_rate,
    )
