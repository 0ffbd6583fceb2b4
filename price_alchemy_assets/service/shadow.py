"""The challenger in shadow: every listing the champion prices, the challenger prices too, where it
can never slow or fail a seller's answer.

The model store's challenger pointer (challenger.json, set by the champion gate when a candidate
lost by a hair) names a bundle. A child process at nice 19 (child_process.py) loads it and, for
each model call the service makes, prices the same listings and writes them to the prediction
log's shadow table itself, so nothing comes back to the service. The inference thread only appends
the listings to a buffer; a feeder thread hands the buffer over once the service has priced
nothing for QUIET_SECONDS, so the challenger works between the champion's calls, not during them
(measured with the hand-over as soon as the child was free: paced p99 +4 ms, from the hand-over's
own interpreter time and the child's work beside a burst), and the listings that arrive meanwhile
go together in one call.
With `max_waiting` listings already waiting, more are skipped and counted, not queued: a challenger
that falls behind loses samples, never adds latency or memory. online_evaluation compares the two
on the prices those listings later asked.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

import sqlalchemy as sa

from price_alchemy_assets.listings.columns import SELLER_FIELDS, seller_columns
from price_alchemy_assets.model.bundle import PriceModel
from price_alchemy_assets.model.store import ChampionRecord, ModelStore
from price_alchemy_assets.monitoring.prediction_log_table import metadata, prediction_log_engine, shadow_predictions
from price_alchemy_assets.service.child_process import low_priority_process

log = logging.getLogger(__name__)

SHADOW_ROUTE = "shadow"
QUIET_SECONDS = 0.01


class ShadowScorer:
    def __init__(self, store: ModelStore, prediction_log: str, max_waiting: int, poll_seconds: float) -> None:
        """`max_waiting`: listings waiting for the child before more are skipped (0: no shadow)."""
        self.store, self.prediction_log = store, prediction_log
        self.max_waiting, self.poll_seconds = max_waiting, poll_seconds
        self.challenger: ChampionRecord | None = None
        """The challenger being scored: loaded in the child."""
        self._following: ChampionRecord | None = None
        """What the pointer names (loading, or loaded)."""
        self._bundle_dir: str | None = None
        self.scored = self.skipped = self.failed = 0
        self.last_error: str | None = None
        self._waiting: list[dict] = []
        self._last_arrival = 0.0
        self._arrived = threading.Condition()
        self._batch_numbers = itertools.count(1)
        self._instance = uuid.uuid4().hex[:12]
        self._pool = low_priority_process() if max_waiting else None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._pool is None:
            return
        self.refresh()
        for target, name in ((self._watch, "challenger-watcher"), (self._feed, "shadow-feeder")):
            self._threads.append(threading.Thread(target=target, name=name, daemon=True))
            self._threads[-1].start()

    def stop(self) -> None:
        """Hands over what is waiting, then stops: the listings already priced get their shadow."""
        self._stop.set()
        with self._arrived:
            self._arrived.notify()
        for thread in self._threads:
            thread.join(timeout=30)
        if self._pool:
            self._pool.shutdown(wait=True)

    def refresh(self) -> None:
        """Follow the challenger pointer: load a new challenger in the child (it is scored once it
        has loaded), or stop shadowing when the pointer is gone."""
        try:
            record = self.store.challenger()
            if record == self._following:
                return
            bundle_dir = str(self.store.bundle_dir(record.model_path)) if record else None
        except Exception as error:  # an unreadable pointer or bundle: no shadow until it is fixed
            self._note_error(f"challenger not followed: {error}")
            return
        self._following, self.challenger, self._bundle_dir = record, None, None
        if record is None:
            return
        try:
            loading = self._pool.submit(_load, bundle_dir, self.prediction_log)
        except (BrokenProcessPool, RuntimeError) as error:
            self._restart(str(error))
            return
        loading.add_done_callback(lambda done: self._loaded(record, bundle_dir, done))

    def _loaded(self, record: ChampionRecord, bundle_dir: str, done: Future) -> None:
        """A bundle that does not load is not retried until the pointer names another (a corrupt
        bundle stays corrupt); a process that died is restarted and the next refresh loads again."""
        if not done.cancelled() and isinstance(done.exception(), BrokenProcessPool):
            self._restart("while loading")
        elif (error := _error_of(done)) is not None:
            self._note_error(f"challenger {record.version} at {record.model_path} not loaded: {error}")
        elif record == self._following:
            self.challenger, self._bundle_dir, self.last_error = record, bundle_dir, None
            log.info("scoring challenger %s in shadow", record.version)

    def score(self, listings: list[dict]) -> None:
        """The listings the champion just priced, for the challenger: an append, never a wait."""
        if self.challenger is None or not listings:
            return
        with self._arrived:
            if len(self._waiting) + len(listings) > self.max_waiting:
                self.skipped += len(listings)
                return
            self._last_arrival = time.monotonic()
            if not self._waiting:  # the feeder sleeps until the first; then it watches the clock itself
                self._arrived.notify()
            self._waiting.extend(listings)

    def stats(self) -> dict[str, int | str | None]:
        return {
            "challenger_version": self.challenger.version if self.challenger else None,
            "scored": self.scored,
            "skipped": self.skipped,
            "failed": self.failed,
            "waiting": len(self._waiting),
            "last_error": self.last_error,
        }

    def _feed(self) -> None:
        """Everything waiting goes to the child in one call once the service is quiet, the next
        once that call is done."""
        while True:
            with self._arrived:
                while not self._waiting and not self._stop.is_set():
                    self._arrived.wait()
                while not self._stop.is_set():
                    quiet = time.monotonic() - self._last_arrival
                    if quiet >= QUIET_SECONDS:
                        break
                    self._arrived.wait(QUIET_SECONDS - quiet)
                if not self._waiting:
                    return
                listings, self._waiting = self._waiting, []
            challenger, bundle_dir = self.challenger, self._bundle_dir
            if challenger is None or bundle_dir is None:  # the pointer went while they waited
                with self._arrived:
                    self.skipped += len(listings)
                continue
            columns = seller_columns(listings)
            request_id = f"{self._instance}-s{next(self._batch_numbers)}"
            try:
                self._pool.submit(
                    _score, bundle_dir, challenger.version, self.prediction_log, request_id, datetime.now(UTC), columns
                ).result()
            except (BrokenProcessPool, RuntimeError) as error:
                self.failed += len(listings)
                self._restart(str(error))
                continue
            except Exception as error:
                self.failed += len(listings)
                self._note_error(f"shadow scoring failed: {type(error).__name__}: {error}")
                continue
            self.scored += len(listings)

    def _restart(self, error: str) -> None:
        """The child died (killed, out of memory): start another; the next refresh loads the challenger."""
        self._note_error(f"the shadow process died ({error}); starting a new one")
        self._pool = low_priority_process()
        self._following, self.challenger, self._bundle_dir = None, None, None

    def _note_error(self, error: str) -> None:
        if error != self.last_error:
            log.error(error)
        self.last_error = error

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()


def _error_of(done: Future) -> str | None:
    if done.cancelled():
        return "shadow scoring cancelled"
    error = done.exception()
    return None if error is None else f"{type(error).__name__}: {error}"


_loaded: tuple[str, PriceModel] | None = None
_engines: dict[str, sa.Engine] = {}


def _challenger(bundle_dir: str) -> PriceModel:
    """The child's challenger, loaded once (the previous one is dropped first)."""
    global _loaded
    if _loaded is None or _loaded[0] != bundle_dir:
        _loaded = None
        _loaded = (bundle_dir, PriceModel.load(bundle_dir))
    return _loaded[1]


def _engine(url: str) -> sa.Engine:
    if url not in _engines:
        engine = prediction_log_engine(url)
        metadata.create_all(engine, tables=[shadow_predictions])
        _engines[url] = engine
    return _engines[url]


def _load(bundle_dir: str, prediction_log: str) -> None:
    _challenger(bundle_dir)
    _engine(prediction_log)


def _score(
    bundle_dir: str, version: str, prediction_log: str, request_id: str, logged_at: datetime, columns: dict[str, list]
) -> None:
    model = _challenger(bundle_dir)
    started = time.perf_counter()
    prices = model.price_range(model.predict_log(columns)).round(2).tolist()
    latency_ms = (time.perf_counter() - started) * 1000
    rows = [
        {
            "logged_at": logged_at,
            "request_id": request_id,
            "route": SHADOW_ROUTE,
            "model_version": version,
            "latency_ms": latency_ms,
            **{field: columns[field][i] for field in SELLER_FIELDS},
            "price": price,
            "price_low": low,
            "price_high": high,
        }
        for i, (price, low, high) in enumerate(prices)
    ]
    with _engine(prediction_log).begin() as connection:
        connection.execute(shadow_predictions.insert(), rows)
