"""Online evaluation: how far the prices the service suggested were from the prices listings asked.

A served request has no price. When the same listing is later ingested with one, the two are
matched by a fingerprint of the seller's fields (title, condition, category, brand, shipping,
description, each trimmed, as the seller typed them), and the listing's price is the realized
price of that suggestion. A listing matches the latest suggestion for the same fields logged
before it was ingested (a seller who asked twice kept the last answer); each suggestion counts
once. Per model version and ISO week of the suggestion: matched listings, RMSLE of the suggested
against the realized price, the share of realized prices inside the suggested range, and how far
sellers went from the suggestion (median of realized / suggested - 1).

A challenger scored in shadow has its prices for the same listings in the shadow log (same fields,
logged a moment after the champion's). Matched the same way, each realized listing has both models'
last suggestions before it and one realized price: a paired comparison, so the listings' own
difficulty cancels.
The challenger wins when it has enough pairs, a lower RMSLE on them, and a one-sided Wilcoxon
signed-rank test on the per-listing squared log errors says the champion's are larger (p < alpha).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.model.metrics import rmsle

REPORT_COLUMNS = ["model_version", "week", "matched", "rmsle", "inside_range", "median_deviation"]


def seller_fingerprints(listings: pd.DataFrame) -> pd.Series:
    """One hash per listing of what its seller typed (missing and blank alike), index kept."""
    parts = []
    for field in SELLER_FIELDS:
        column = listings[field]
        if field in ("item_condition_id", "shipping"):
            parts.append(column.astype("Int64").astype(str))
        else:
            parts.append(column.fillna("").astype(str).str.strip())
    joined = parts[0].str.cat(parts[1:], sep="\x1f")
    return joined.map(lambda text: hashlib.blake2b(text.encode(), digest_size=16).hexdigest())


def match_realized(served: pd.DataFrame, listings: pd.DataFrame) -> pd.DataFrame:
    """Each priced listing with the suggestion it got: model_version, logged_at, the suggested
    price and range, the realized price. `served` as PredictionLogReader.served gives it,
    `listings` as the warehouse does (with price and ingested_at)."""
    columns = ["model_version", "logged_at", "suggested", "low", "high", "realized", "key", "ingested_at"]
    if served.empty or listings.empty:
        return pd.DataFrame(columns=columns)
    listings = listings[listings["price"] > 0]
    asked = served.assign(key=seller_fingerprints(served)).rename(
        columns={"price": "suggested", "price_low": "low", "price_high": "high"}
    )
    got = listings.assign(key=seller_fingerprints(listings)).rename(columns={"price": "realized"})
    # one resolution on both sides, whatever each source gave (merge_asof compares them)
    got["ingested_at"] = pd.to_datetime(got["ingested_at"], utc=True).astype("datetime64[ns, UTC]")
    asked["logged_at"] = pd.to_datetime(asked["logged_at"], utc=True).astype("datetime64[ns, UTC]")
    asked, got = asked.sort_values("logged_at"), got.sort_values("ingested_at")
    matched = pd.merge_asof(
        got[["key", "ingested_at", "realized"]],
        asked[["key", "logged_at", "suggested", "low", "high", "model_version"]],
        left_on="ingested_at",
        right_on="logged_at",
        by="key",
        allow_exact_matches=False,
    ).dropna(subset=["suggested"])
    # a suggestion counts once: the first listing ingested after it
    matched = matched.drop_duplicates(subset=["key", "logged_at"], keep="first")
    return matched[columns].reset_index(drop=True)


@dataclass(frozen=True)
class OnlineEvaluation:
    by_week: pd.DataFrame
    """REPORT_COLUMNS, one row per model version and ISO week of the suggestion."""
    by_version: pd.DataFrame
    """The same measures over every week, one row per model version."""

    def rmsle_of(self, model_version: str) -> float | None:
        rows = self.by_version[self.by_version["model_version"] == model_version]
        return None if rows.empty else float(rows["rmsle"].iloc[0])

    def matched_of(self, model_version: str) -> int:
        rows = self.by_version[self.by_version["model_version"] == model_version]
        return 0 if rows.empty else int(rows["matched"].iloc[0])

    def to_markdown(self) -> str:
        if self.by_week.empty:
            return "No served suggestion has a realized price yet."
        return self.by_week.to_markdown(index=False, floatfmt=".4f")


def evaluate_online(matched: pd.DataFrame) -> OnlineEvaluation:
    week = matched["logged_at"].dt.strftime("%G-W%V") if not matched.empty else pd.Series(dtype=str)
    return OnlineEvaluation(
        _measures(matched.assign(week=week), ["model_version", "week"]),
        _measures(matched, ["model_version"]),
    )


def _measures(matched: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    columns = [*keys, *REPORT_COLUMNS[2:]]
    if matched.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in matched.groupby(keys, sort=True):
        realized, suggested = group["realized"].to_numpy(float), group["suggested"].to_numpy(float)
        inside = (realized >= group["low"].to_numpy(float)) & (realized <= group["high"].to_numpy(float))
        rows.append(
            [
                *(key if isinstance(key, tuple) else (key,)),
                len(group),
                rmsle(realized, suggested),
                float(inside.mean()),
                float(np.median(realized / np.clip(suggested, 0.01, None) - 1)),
            ]
        )
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class ChallengerComparison:
    """The champion and the challenger on the same listings' realized prices."""

    champion_version: str
    challenger_version: str
    pairs: int
    champion_rmsle: float
    challenger_rmsle: float
    challenger_wins: int
    """Listings where the challenger's suggestion was closer (in log price) to the realized price."""
    p_value: float
    """One-sided Wilcoxon signed-rank: the champion's squared log errors are larger (1.0 with no pairs)."""

    def verdict(self, min_pairs: int, alpha: float) -> tuple[bool, str]:
        """(promote the challenger?, why) with at least `min_pairs` and p < `alpha`."""
        summary = (
            f"challenger {self.challenger_version} RMSLE {self.challenger_rmsle:.4f} against champion "
            f"{self.champion_version} {self.champion_rmsle:.4f} on {self.pairs} listings "
            f"(closer on {self.challenger_wins}), p = {self.p_value:.3g}"
        )
        if self.pairs < min_pairs:
            return False, f"not judged: {self.pairs} paired realized prices, {min_pairs} needed"
        if self.challenger_rmsle < self.champion_rmsle and self.p_value < alpha:
            return True, f"promote: {summary} < {alpha}"
        return False, f"keep the champion: {summary}"


def compare_challenger(
    champion_matched: pd.DataFrame, challenger_matched: pd.DataFrame, champion_version: str, challenger_version: str
) -> ChallengerComparison:
    """`champion_matched` and `challenger_matched` as match_realized gives them for the served log and
    the shadow log; a pair is one realized listing (fingerprint and ingest time) with the last
    suggestion of each model before it."""
    ours = champion_matched[champion_matched["model_version"] == champion_version]
    theirs = challenger_matched[challenger_matched["model_version"] == challenger_version]
    one_each = ["key", "ingested_at"]
    pairs = ours.drop_duplicates(one_each).merge(
        theirs.drop_duplicates(one_each), on=one_each, suffixes=("_champion", "_challenger")
    )
    realized = np.log1p(pairs["realized_champion"].to_numpy(float))
    champion_error = (np.log1p(pairs["suggested_champion"].to_numpy(float)) - realized) ** 2
    challenger_error = (np.log1p(pairs["suggested_challenger"].to_numpy(float)) - realized) ** 2
    difference = champion_error - challenger_error
    p_value = 1.0
    if np.any(difference != 0):
        p_value = float(stats.wilcoxon(difference, alternative="greater").pvalue)
    return ChallengerComparison(
        champion_version,
        challenger_version,
        len(pairs),
        float(np.sqrt(champion_error.mean())) if len(pairs) else float("nan"),
        float(np.sqrt(challenger_error.mean())) if len(pairs) else float("nan"),
        int((difference > 0).sum()),
        p_value,
    )
