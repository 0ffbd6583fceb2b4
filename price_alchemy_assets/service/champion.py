"""Follows the model store's champion pointer and swaps in new champions without a restart.

Loading happens on a background thread (or the admin reload), never on a request; the served
model is one immutable `ServedModel` replaced by a single reference assignment, so a request
sees the old champion or the new one. A pointer to a missing or broken bundle keeps the old
model serving and is reported as `last_error` until a good champion appears.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from price_alchemy_assets.model.bundle import PriceModel
from price_alchemy_assets.model.store import ChampionRecord, ChampionUnreadable, ModelStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    record: ChampionRecord
    model: PriceModel
    loaded_at: str
    bundle_dir: Path
    """The local folder it was loaded from (the explanation process loads it from there too)."""

    @property
    def version(self) -> str:
        return self.record.version


class ChampionWatcher:
    def __init__(
        self,
        store: ModelStore,
        poll_seconds: float = 2.0,
        on_outcome: Callable[[str], None] | None = None,
        retry_failed_seconds: float = 60.0,
    ) -> None:
        """`on_outcome` hears "loaded" or "failed" for each load attempt (for metrics)."""
        self.store, self.poll_seconds, self.retry_failed_seconds = store, poll_seconds, retry_failed_seconds
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self._failed_pointer: ChampionRecord | None = None
        self._failed_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self, force: bool = False) -> bool:
        """Load the champion if the pointer names another one; True when the served model changed.

        A pointer that already failed is retried only every `retry_failed_seconds` (a download from
        GCS can fail and then succeed; a corrupt bundle stays corrupt), or at once with `force`."""
        with self._lock:
            try:
                record = self.store.champion()
            except ChampionUnreadable as error:  # a torn or hand-edited pointer must not stop serving
                self.last_error = str(error)
                return False
            except Exception as error:  # nor a pointer that cannot be fetched (an object store's passing error)
                self.last_error = f"{self.store.pointer_location}: {error}"
                return False
            if record is None:
                self.last_error = f"no champion in {self.store.location}" + (
                    f" (its pointer is gone; still serving {self.current.version})" if self.current else " yet"
                )
                return False
            if self.current and record == self.current.record:
                self.last_error = None  # an earlier unreadable pointer was passing
                return False
            waited = time.monotonic() - self._failed_at
            if record == self._failed_pointer and not force and waited < self.retry_failed_seconds:
                return False
            try:
                bundle_dir = self.store.bundle_dir(record.model_path)
                model = self.store.load_bundle(record.model_path)
            except Exception as error:  # any unreadable bundle keeps the old model serving
                self._failed_pointer, self._failed_at = record, time.monotonic()
                self.last_error = f"champion {record.version} at {record.model_path} not loaded: {error}"
                log.error(self.last_error)
                self.on_outcome("failed")
                return False
            self.current = ServedModel(record, model, datetime.now(UTC).isoformat(timespec="seconds"), bundle_dir)
            # the model's hundreds of thousands of objects live as long as it serves: keep them out of
            # the cyclic collector's full passes, which would otherwise stall requests for tens of ms
            gc.collect()
            gc.freeze()
            self._failed_pointer, self.last_error = None, None
            log.info("serving champion %s", record.version)
            self.on_outcome("loaded")
            return True

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()
