"""What the service accepts and answers, as msgspec structs: requests are decoded strictly against
them (request_body.py: unknown fields, wrong types, blank titles and out-of-range values are a
400 naming the field) and Litestar publishes them in the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated

import msgspec

MAX_NAME_CHARS = 200
MAX_CATEGORY_CHARS = 200
MAX_BRAND_CHARS = 100
MAX_DESCRIPTION_CHARS = 10_000
NOT_BLANK = r"\S"
"""A title needs one character that is not white space (msgspec searches the pattern)."""


class Listing(msgspec.Struct, forbid_unknown_fields=True):
    """One listing, as a seller enters it."""

    name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS, pattern=NOT_BLANK, description="listing title")
    ]
    item_condition_id: Annotated[int, msgspec.Meta(ge=1, le=5, description="1 = new ... 5 = poor")]
    shipping: Annotated[int, msgspec.Meta(ge=0, le=1, description="1 = seller pays shipping, 0 = buyer pays")]
    category_name: (
        Annotated[str, msgspec.Meta(max_length=MAX_CATEGORY_CHARS, examples=["Women/Tops & Blouses/T-Shirts"])] | None
    ) = None
    brand_name: Annotated[str, msgspec.Meta(max_length=MAX_BRAND_CHARS)] | None = None
    item_description: Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION_CHARS)] | None = None


class ListingBatch(msgspec.Struct, forbid_unknown_fields=True):
    listings: Annotated[list[Listing], msgspec.Meta(min_length=1)]


class PriceSuggestion(msgspec.Struct):
    price: float
    price_low: float
    price_high: float
    model_version: str
    currency: str = "USD"


class PriceSuggestions(msgspec.Struct):
    predictions: list[PriceSuggestion]
    model_version: str


class PriceDriverOut(msgspec.Struct):
    feature: str
    """Something this listing has: a word of its title or description, its brand, category, condition..."""
    effect_percent: float
    """How much it moved the price: +12.5 multiplies the price by 1.125."""


class TypicalPriceOut(msgspec.Struct):
    category: str
    listings: int
    p25: float
    median: float
    p75: float


class ComparableOut(msgspec.Struct):
    """A listing the champion learned from that looks like this one, and the price it asked."""

    name: str
    item_condition_id: int
    category_name: str | None
    brand_name: str | None
    price: float
    similarity: float
    """Cosine similarity of the title and brand words, 0 to 1."""


class ExplainedSuggestion(msgspec.Struct):
    """base_price x (1 + each driver's effect) x (1 + other_effect_percent / 100) = the suggested price."""

    suggestion: PriceSuggestion
    typical_price: TypicalPriceOut | None
    base_price: float
    """The model's price for an empty listing (no words, brand, category, condition or shipping)."""
    drivers: list[PriceDriverOut]
    other_effect_percent: float
    """All of this listing's other features together."""
    comparables: list[ComparableOut]
    """The most similar listings the champion learned from, its category first, most similar first."""
    comparables_asking_less: int
    """How many of the comparables asked less than the suggested price: where it sits among them."""


class ModelInfo(msgspec.Struct):
    model_version: str
    promoted_at: str
    loaded_at: str
    dagster_run_id: str
    data_version: str
    code_version: str
    mlflow_run_id: str
    registered_model_version: str
    training_rows: int
    metrics: dict[str, float]
    interval_coverage: float


class Health(msgspec.Struct):
    status: str
    model_version: str | None
    last_reload_error: str | None
    prediction_log: dict[str, int | str | None]
    shadow: dict[str, int | str | None]
    """The challenger scored in shadow (challenger.json): its version, listings scored, skipped
    (too many were waiting), failed and waiting, and the last error."""


class ReloadResult(msgspec.Struct):
    model_version: str | None
    changed: bool
    error: str | None
