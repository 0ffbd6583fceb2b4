"""The prediction log: every suggestion the service made (input fields, output, model version,
time, latency), for monitoring and the drift sensor.

Requests only put rows on an in-memory queue; one writer thread inserts them in batches. By
default the store is an SQLite file in WAL mode (one writer, any number of concurrent
readers); in production a PostgreSQL URL. `close()` writes everything still queued, so a clean
shutdown loses nothing. If the database is unavailable the rows wait and are retried; past
`max_pending` the oldest are dropped and counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa

from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.monitoring.prediction_log_table import LOGGED_COLUMNS, metadata, prediction_log_engine

log = logging.getLogger(__name__)

POLL_SECONDS = 0.02


class LoggedRequest(NamedTuple):
    """One request's predictions as the service hands them over: cheap to make on the request
    path; the writer thread turns it into rows."""

    logged_at: datetime
    request_id: str
    route: str
    model_version: str
    latency_ms: float
    listings: list[dict]
    prices: list[tuple[float, float, float]]
    """price, price_low, price_high per listing"""

    def rows(self, logged_at: datetime | str) -> list[tuple]:
        head = (logged_at, self.request_id, self.route, self.model_version, self.latency_ms)
        return [
            head + tuple(listing[field] for field in SELLER_FIELDS) + price
            for listing, price in zip(self.listings, self.prices, strict=True)
        ]


class PredictionLog:
    def __init__(
        self, url: str, batch_rows: int = 1000, flush_seconds: float = 0.5, max_pending: int = 200_000
    ) -> None:
        """`flush_seconds`: how long the writer waits for rows before looking again (and for
        retrying a failed write)."""
        self.url, self.batch_rows, self.flush_seconds, self.max_pending = url, batch_rows, flush_seconds, max_pending
        self.engine = prediction_log_engine(url)
        self._queue: queue.SimpleQueue[LoggedRequest | None] = queue.SimpleQueue()
        self._pending: deque[tuple] = deque()
        sqlite = self.engine.dialect.name == "sqlite"
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._insert = (
            f"INSERT INTO predictions ({', '.join(LOGGED_COLUMNS)}) VALUES ({', '.join([mark] * len(LOGGED_COLUMNS))})"
        )
        # SQLite has no timestamp type: store the text SQLAlchemy's DateTime reads back
        self._timestamp = (lambda t: t.strftime("%Y-%m-%d %H:%M:%S.%f")) if sqlite else (lambda t: t)
        self.written = self.dropped = 0
        self.last_error: str | None = None
        self._schema_ready = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the table and start the writer. An unreachable database does not stop the
        service from starting: the writer creates the table when it can (see `stats`)."""
        try:
            metadata.create_all(self.engine)
            self._schema_ready = True
        except sa.exc.SQLAlchemyError as error:
            self.last_error = f"{type(error).__name__}: {error}".splitlines()[0]
        self._thread = threading.Thread(target=self._write_loop, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, request: LoggedRequest) -> None:
        """Cheap and non-blocking: called on the request path."""
        self._queue.put(request)

    def close(self) -> None:
        """Write everything queued, then stop the writer."""
        if self._thread:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self.engine.dispose()

    def stats(self) -> dict[str, int | str | None]:
        return {
            "written": self.written,
            "pending": len(self._pending) + self._queue.qsize(),  # rows, plus requests not yet unpacked
            "dropped": self.dropped,
            "last_error": self.last_error,
        }

    def _write_loop(self) -> None:
        """Wait for rows, take everything queued, write it in batches; rows that arrive during a
        write make the next batch."""
        closing = False
        while not closing:
            # poll rather than block on the queue: with no thread waiting, a put costs the
            # request path nothing but an append
            waited = 0.0
            while self._queue.empty() and waited < self.flush_seconds:
                time.sleep(POLL_SECONDS)
                waited += POLL_SECONDS
            items = []
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            for item in items:
                if item is None:
                    closing = True
                else:
                    self._pending.extend(item.rows(self._timestamp(item.logged_at)))
            self._flush(retry_until_written=closing)
            if self._pending and not closing:
                time.sleep(self.flush_seconds)  # the database is away: back off before retrying

    def _flush(self, retry_until_written: bool) -> None:
        attempts = 0
        while self._pending:
            batch = [self._pending[i] for i in range(min(self.batch_rows, len(self._pending)))]
            try:
                if not self._schema_ready:
                    metadata.create_all(self.engine)
                    self._schema_ready = True
                with self.engine.begin() as connection:
                    connection.exec_driver_sql(self._insert, batch)
            except sa.exc.SQLAlchemyError as error:
                self.last_error = f"{type(error).__name__}: {error}".splitlines()[0]
                log.warning("prediction log write failed, %d rows waiting: %s", len(self._pending), self.last_error)
                while len(self._pending) > self.max_pending:
                    self._pending.popleft()
                    self.dropped += 1
                attempts += 1
                if not retry_until_written or attempts >= 5:
                    return
                time.sleep(1.0)
                continue
            for _ in batch:
                self._pending.popleft()
            self.written += len(batch)
            self.last_error = None
