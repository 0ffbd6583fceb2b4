"""Explanations in a process of their own, at the lowest CPU priority, so they never delay a price.

An explanation walks the champion's trees in Python (milliseconds a listing). On the inference
thread it queued prices behind it; on another thread of the service it would still hold the
interpreter lock prices need. In a child process at nice 19 (child_process.py) it takes only CPU
that prices leave idle. The child loads the champion's bundle from the folder the service loaded it from, the way
every consumer does (PriceModel.load), ahead of the first request. At most `max_waiting`
explanations wait or run; one more is a 503 with Retry-After, not an ever longer queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from litestar.exceptions import ServiceUnavailableException

from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.model.bundle import PriceModel
from price_alchemy_assets.model.comparables import Comparable
from price_alchemy_assets.model.explain import PriceExplainer, PriceExplanation
from price_alchemy_assets.service.child_process import low_priority_process

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
Explained = tuple[np.ndarray, PriceExplanation, list[Comparable]]
"""A listing's prices (PRICE_COLUMNS), why, and the most similar listings the champion learned from."""


class ExplanationsBusy(ServiceUnavailableException):
    """503 with Retry-After: the explanation queue is full (prices are still answered)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail, headers={"retry-after": str(RETRY_AFTER_SECONDS)})


class ExplanationWorker:
    def __init__(self, max_waiting: int = 4) -> None:
        self.max_waiting = max_waiting
        self._waiting = 0
        self._pool = low_priority_process()

    def load(self, bundle_dir: Path) -> Future:
        """Load a new champion in the child now, not on the first explanation that needs it."""
        return self._pool.submit(_preload, str(bundle_dir))

    @contextmanager
    def place(self) -> Iterator[None]:
        """A place in the queue, taken before any work for the request; ExplanationsBusy if none is left."""
        if self._waiting >= self.max_waiting:
            raise ExplanationsBusy(f"{self._waiting} explanations are already waiting; try again shortly")
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1

    async def explain(self, bundle_dir: Path, listing: dict) -> Explained:
        """The listing's prices (PRICE_COLUMNS), their explanation and its comparable listings;
        call within `place()`."""
        try:
            return await asyncio.wrap_future(self._pool.submit(_explain, str(bundle_dir), listing))
        except BrokenProcessPool:  # the child died (killed, out of memory): start another for the next request
            log.error("the explanation process died; starting a new one")
            self._pool = low_priority_process()
            raise ExplanationsBusy("the explanation process restarted; try again shortly") from None

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


_loaded: tuple[str, PriceExplainer] | None = None


def _explainer(bundle_dir: str) -> PriceExplainer:
    """The child's explainer for this bundle, with its comparable listings, loaded once (the previous
    champion's is dropped first)."""
    global _loaded
    if _loaded is None or _loaded[0] != bundle_dir:
        _loaded = None
        _loaded = (bundle_dir, PriceExplainer(PriceModel.load(bundle_dir, with_comparables=True)).prepare())
    return _loaded[1]


def _preload(bundle_dir: str) -> None:
    _explainer(bundle_dir)


def _explain(bundle_dir: str, listing: dict) -> Explained:
    explainer = _explainer(bundle_dir)
    model = explainer.model
    frame = pd.DataFrame([listing], columns=list(SELLER_FIELDS))
    comparables = model.comparables.find(listing) if model.comparables is not None else []
    return model.price_range(model.predict_log(frame))[0], explainer.explain(frame), comparables
