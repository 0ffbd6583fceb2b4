"""A synthetic second-hand marketplace in Kaggle's train.tsv format, so a fresh clone runs end to
end without any download.

Prices are log-normal around a category median, moved by brand, model words, condition, who
pays shipping, "new with tags", bundles and storage sizes; the same words appear in the name
and description, so a text model has real signal to find. `drift` makes a shifted batch.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from price_alchemy_assets.listings import taxonomy as tx
from price_alchemy_assets.listings.columns import LISTING_FIELDS, utc

MISSING_BRAND_SHARE = 0.42
MISSING_CATEGORY_SHARE = 0.004
NO_DESCRIPTION_SHARE = 0.055
ZERO_PRICE_SHARE = 0.001
NOISE_SD = 0.45
STRUCTURE_SCALE = 0.75  # brand and model premiums, shrunk so log-price spread matches genuine rows
MARKET_SEED = 20_260_101
"""Fixes the market's shape (how busy each leaf category is); a batch's seed only draws listings."""
PRICE_LEVEL = -0.14  # moves the whole market so its log-price mean matches the genuine rows
MIN_PRICE, MAX_PRICE = 3, 2000
TSV_COLUMNS = ["train_id", *LISTING_FIELDS, "created_at"]


class DriftKind(StrEnum):
    """How a drifted batch differs from the reference market."""

    NEW_CATEGORIES = "new-categories"
    NEW_BRANDS = "new-brands"
    INFLATION = "inflation"
    TEXT = "text"
    CONDITION = "condition"


@dataclass(frozen=True)
class Leaf:
    path: str
    top: str
    log_median: float
    noun: str
    accessory: bool
    apparel: bool


def _catalogue() -> list[Leaf]:
    """The fixed category tree; leaf price offsets come from a fixed seed so every run agrees."""
    rng = np.random.default_rng(20171120)
    leaves = []
    for top, middles in tx.CATEGORY_TREE.items():
        for middle, (median, names) in middles.items():
            for name in names:
                leaves.append(_leaf(f"{top}/{middle}/{name}", np.log(median) + rng.normal(0, 0.2)))
    return leaves


def _leaf(path: str, log_median: float) -> Leaf:
    top, _, name = path.split("/", 2)
    noun = name.split(",")[0].split("&")[0].strip().rstrip("s") if name.endswith("s") else name.split(",")[0]
    accessory = any(word in path for word in ("Cases", "Chargers", "Accessories", "Bags & Cases", "Games"))
    apparel = top in ("Women", "Men", "Kids") and not any(
        w in path for w in ("Toys", "Gear", "Jewelry", "Handbags", "Accessories")
    )
    return Leaf(path, top, float(log_median), noun.strip() or name, accessory, apparel)


CATALOGUE = _catalogue()
_TOPS = list(tx.TOP_SHARES)
_SIZES = np.array(["XS", "S", "M", "L", "XL", "XXL"])
_SHOE_SIZES = np.array(["6", "7", "7.5", "8", "8.5", "9", "10", "11"])
_COLORS = np.array(["Black", "White", "Pink", "Blue", "Red", "Grey", "Navy", "Floral", "Gold", "Purple", ""])
_STORAGE = np.array(["16GB", "32GB", "64GB", "128GB", "256GB"])
_FILLER = np.array(
    [
        "Smoke free home.",
        "Pet free home.",
        "Ships fast!",
        "Open to reasonable offers.",
        "Bundle to save!",
        "Price is firm.",
        "Check out my other listings.",
        "Ships within 1 day.",
        "No trades.",
        "",
    ]
)
_DETAILS = [
    "Colors may vary slightly from the photos.",
    "Please ask any questions before buying.",
    "Will ship in a padded mailer with tracking.",
    "Comes with the original box and paperwork.",
    "No rips, stains or holes that I can see.",
    "Perfect for gifting, wrapped with care.",
    "Retail price was much higher, great deal.",
    "Measurements available on request.",
    "Stored in a closet, always kept clean.",
    "",
]
_CONDITION_TEXT = {
    1: ["Brand new, never used.", "New with tags.", "Brand new in box.", "Never worn, tags attached."],
    2: ["Like new, worn once.", "Excellent condition.", "Used once, like new."],
    3: ["Good used condition.", "Some signs of wear.", "Gently used.", "Normal wear."],
    4: ["Has a small stain, see photos.", "Fair condition.", "Visible wear on the corners."],
    5: ["For parts or repair.", "Does not work, selling as is.", "Heavily worn, damaged."],
}
_SLANG_TEXT = [
    "✨ bnwt ✨",
    "pre-loved but fire 🔥",
    "HTF!! ISO offers",
    "vibes only, gently loved 💖",
    "lowkey perfect cond",
    "bnib never opened 📦",
    "y2k aesthetic, obsessed",
]


class MarketplaceSynthesizer:
    """Generates listings chunk by chunk from one seeded random stream (same seed, same rows)."""

    def __init__(self, seed: int = 0, drift: DriftKind | None = None, strength: float = 1.0):
        self.rng = np.random.default_rng(seed)
        self.drift, self.strength = drift, float(strength)
        self.leaves = list(CATALOGUE)
        leaf_tops = np.array([leaf.top for leaf in self.leaves])
        weights = np.array([tx.TOP_SHARES[top] for top in leaf_tops])
        counts = {top: int((leaf_tops == top).sum()) for top in _TOPS}
        weights = weights / np.array([counts[top] for top in leaf_tops])
        # some leaves are busier than others, the same ones whatever the seed: one market, many batches
        weights *= np.random.default_rng(MARKET_SEED).lognormal(0, 0.6, len(weights))
        if drift is DriftKind.NEW_CATEGORIES:
            new = [
                _leaf(f"{middle}/{name}", np.log(median) + 0.1 * i)
                for middle, (median, names) in tx.NEW_CATEGORIES.items()
                for i, name in enumerate(names)
            ]
            share = min(0.9, 0.35 * self.strength)
            weights = np.concatenate([weights / weights.sum() * (1 - share), np.full(len(new), share / len(new))])
            self.leaves += new
        self.leaf_weights = weights / weights.sum()
        self.brands = {top: list(brands) for top, brands in tx.BRANDS.items()}
        if drift is DriftKind.NEW_BRANDS:
            for top in self.brands:
                pool = self.brands[top]
                total = sum(weight for _, _, weight in pool)
                extra = total * min(3.0, 1.2 * self.strength) / sum(w for _, _, w in tx.NEW_BRANDS)
                pool += [(name, premium, weight * extra) for name, premium, weight in tx.NEW_BRANDS]

    def batches(
        self, rows: int, start: datetime, days: float, first_id: int = 0, chunk_rows: int = 200_000
    ) -> Iterator[pd.DataFrame]:
        done = 0
        while done < rows:
            size = min(chunk_rows, rows - done)
            yield self._batch(size, first_id + done, start, days)
            done += size

    def _batch(self, n: int, first_id: int, start: datetime, days: float) -> pd.DataFrame:
        rng = self.rng
        leaf_index = rng.choice(len(self.leaves), size=n, p=self.leaf_weights)
        leaves = [self.leaves[i] for i in leaf_index]
        log_price = np.array([leaf.log_median for leaf in leaves]) + PRICE_LEVEL

        condition_shares = np.array(list(tx.CONDITION_SHARES.values()))
        if self.drift is DriftKind.CONDITION:
            condition_shares = condition_shares * np.array(
                [1, 1, 1 + self.strength, 1 + 12 * self.strength, 1 + 40 * self.strength]
            )
        condition = rng.choice(np.arange(1, 6), size=n, p=condition_shares / condition_shares.sum())
        log_price += np.vectorize(tx.CONDITION_EFFECT.get)(condition)
        shipping = (rng.random(n) < 0.45).astype(int)
        log_price += tx.SELLER_PAYS_EFFECT * shipping

        brand = np.empty(n, dtype=object)
        model = np.full(n, "", dtype=object)
        has_brand = rng.random(n) >= MISSING_BRAND_SHARE
        uniform = rng.random((n, 2))
        for i in np.flatnonzero(has_brand):
            leaf = leaves[i]
            pool = self.brands[leaf.top]
            weights = np.cumsum([w for _, _, w in pool])
            name, premium, _ = pool[int(np.searchsorted(weights, uniform[i, 0] * weights[-1]))]
            brand[i] = name
            log_price[i] += STRUCTURE_SCALE * premium * (0.4 if leaf.accessory else 1.0)
            models = tx.MODELS.get(name)
            if models and uniform[i, 1] < 0.55:
                words, model_premium = models[int(uniform[i, 1] / 0.55 * len(models))]
                model[i] = words
                log_price[i] += STRUCTURE_SCALE * model_premium * (0.2 if leaf.accessory else 1.0)

        new_with_tags = (condition == 1) & (rng.random(n) < 0.35)
        log_price += 0.22 * new_with_tags
        bundle = np.where(rng.random(n) < 0.06, rng.integers(2, 7, n), 1)
        log_price += 0.6 * np.log(bundle)
        storage = np.full(n, "", dtype=object)
        for i in range(n):
            if (
                model[i]
                and leaves[i].top == "Electronics"
                and not leaves[i].accessory
                and "Phone" in model[i] + leaves[i].path
            ):
                pick = int(uniform[i, 0] * 1000) % len(_STORAGE)
                storage[i] = _STORAGE[pick]
                log_price[i] += 0.18 * pick
        log_price += rng.normal(0, NOISE_SD, n)
        if self.drift is DriftKind.INFLATION:
            log_price += np.log1p(0.35 * self.strength)

        price = np.clip(np.round(np.exp(log_price)), MIN_PRICE, MAX_PRICE)
        price[rng.random(n) < ZERO_PRICE_SHARE] = 0.0

        size = np.where([leaf.apparel for leaf in leaves], rng.choice(_SIZES, n), "")
        size = np.where(
            ["Shoes" in leaf.path or "Sneakers" in leaf.path for leaf in leaves], rng.choice(_SHOE_SIZES, n), size
        )
        color = rng.choice(_COLORS, n)
        names, descriptions = self._texts(
            n, leaves, brand, model, condition, new_with_tags, bundle, size, color, storage, shipping
        )
        category = np.array([leaf.path for leaf in leaves], dtype=object)
        category[rng.random(n) < MISSING_CATEGORY_SHARE] = None

        offsets = np.sort(rng.random(n)) * days * 86400.0
        created_at = pd.Timestamp(utc(start)) + pd.to_timedelta(offsets, unit="s")
        return pd.DataFrame(
            {
                "train_id": np.arange(first_id, first_id + n),
                "name": names,
                "item_condition_id": condition,
                "category_name": category,
                "brand_name": brand,
                "price": price,
                "shipping": shipping,
                "item_description": descriptions,
                "created_at": created_at.floor("s"),
            }
        )

    def _texts(self, n, leaves, brand, model, condition, nwt, bundle, size, color, storage, shipping):
        rng = self.rng
        slang = self.drift is DriftKind.TEXT
        slang_share = min(1.0, 0.6 * self.strength) if slang else 0.0
        pick = rng.random((n, 7))
        names, descriptions = [], []
        for i in range(n):
            leaf = leaves[i]
            parts = [brand[i] or "", model[i], storage[i], color[i] if pick[i, 0] < 0.4 else "", leaf.noun]
            if nwt[i]:
                parts.append("NWT")
            if size[i]:
                parts.append(f"size {size[i]}")
            if bundle[i] > 1:
                parts.insert(0, f"Bundle of {bundle[i]}")
            name = " ".join(p for p in parts if p)[:40]
            use_slang = slang and pick[i, 5] < slang_share
            if use_slang:
                name = name.lower() + " " + _SLANG_TEXT[int(pick[i, 1] * len(_SLANG_TEXT))].split()[0]
            names.append(name)
            if pick[i, 2] < NO_DESCRIPTION_SHARE and not use_slang:
                descriptions.append("No description yet")
                continue
            options = _CONDITION_TEXT[int(condition[i])]
            sentences = [options[int(pick[i, 3] * len(options))]]
            if nwt[i]:
                sentences.append("New with tags, never worn.")
            if model[i]:
                sentences.append(f"{brand[i]} {model[i]}{' ' + storage[i] if storage[i] else ''}, works great.")
            elif brand[i]:
                sentences.append(f"Authentic {brand[i]}.")
            if size[i]:
                sentences.append(f"Size {size[i]}.")
            if bundle[i] > 1:
                sentences.append(f"You get all {bundle[i]} items in this bundle.")
            if shipping[i]:
                sentences.append("Free shipping!")
            sentences += [
                _DETAILS[int(pick[i, 6] * len(_DETAILS))],
                _FILLER[int(pick[i, 4] * len(_FILLER))],
                _FILLER[int(pick[i, 0] * len(_FILLER))],
            ]
            if use_slang:
                sentences = [_SLANG_TEXT[int(pick[i, 3] * len(_SLANG_TEXT))], sentences[-1]]
            descriptions.append(" ".join(s for s in sentences if s))
        return names, descriptions


def write_synthetic_listings(
    path: str | Path,
    rows: int,
    seed: int = 0,
    start: datetime | None = None,
    days: float = 30.0,
    drift: DriftKind | None = None,
    strength: float = 1.0,
    first_id: int | None = None,
    on_chunk=None,
) -> Path:
    """Write `rows` listings to a train.tsv-format file (.gz compresses); ids start at seed x 10^7
    unless told, so batches from different seeds never collide."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = start or (datetime.now(UTC) - timedelta(days=days))
    first_id = seed * 10_000_000 if first_id is None else first_id
    synthesizer = MarketplaceSynthesizer(seed=seed, drift=drift, strength=strength)
    temporary = path.with_name(path.name + ".partial")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(temporary, "wt", encoding="utf-8", newline="") as handle:
        _write(handle, synthesizer.batches(rows, start, days, first_id), on_chunk)
    temporary.replace(path)
    return path


def _write(handle: IO[str], batches: Iterator[pd.DataFrame], on_chunk) -> None:
    header = True
    for frame in batches:
        frame = frame.assign(created_at=frame["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        frame.to_csv(handle, sep="\t", index=False, header=header, columns=TSV_COLUMNS, lineterminator="\n")
        header = False
        if on_chunk:
            on_chunk(len(frame))


def synthetic_market(rows: int, seed: int = 1) -> pd.DataFrame:
    """`rows` synthetic listings as the warehouse serves them (with a listing_id), the priced ones
    only: a small market for tests and benchmarks."""
    frame = pd.concat(MarketplaceSynthesizer(seed=seed).batches(rows, datetime(2026, 10, 1, tzinfo=UTC), 10.0))
    frame = frame.assign(listing_id="train-" + frame["train_id"].astype(str)).reset_index(drop=True)
    return frame[frame["price"] > 0].reset_index(drop=True)
