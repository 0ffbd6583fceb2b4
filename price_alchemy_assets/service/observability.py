"""Operational signals: one ECS JSON log line per request, and Prometheus metrics.

One ASGI middleware around the whole app observes each request once, for both: route (the
matched path template, so unknown paths cannot blow up label counts), status and duration.

The log lines are Elastic Common Schema JSON, so Filebeat or Logstash can ship them to
Elasticsearch unchanged (deploy/ has that pipeline). They go through a queue to a listener thread,
so a slow stdout never holds up a response. Log records (errors, reloads) are written by Elastic's
ecs-logging formatter. The access line, one per request, is not a log record: the request puts a
tuple on the queue and the listener encodes its ECS document with msgspec. Through a LogRecord and
Elastic's formatter it cost ~115 us of the interpreter lock a request (a sixth of a /predict at
capacity); as a tuple, a few.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import sys
import time
import traceback
from typing import NamedTuple

import ecs_logging
import msgspec
from prometheus_client import Counter, Gauge, Histogram

SERVICE_NAME = "price-alchemy"

PREDICTIONS = Counter("price_alchemy_predictions", "Listings priced, by model version", ["model_version"])
SUGGESTED_PRICE = Histogram(
    "price_alchemy_suggested_price_usd",
    "Suggested prices in USD",
    buckets=(1, 3, 5, 8, 10, 15, 20, 30, 50, 75, 100, 150, 250, 500, 1000, 2500),
)
REQUESTS = Counter("price_alchemy_requests", "HTTP requests by route and status", ["method", "route", "status_code"])
REQUEST_SECONDS = Histogram(
    "price_alchemy_request_duration_seconds",
    "HTTP request duration by route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
MODEL_RELOADS = Counter("price_alchemy_model_reloads", "Champion reloads, by outcome", ["outcome"])
PREDICTION_LOG_PENDING = Gauge("price_alchemy_prediction_log_pending", "Predictions waiting to be written")

ACCESS_LOGGER = "price_alchemy.access"


class AccessLine(NamedTuple):
    """One request as the access log records it: cheap to make on the request path; the listener
    thread turns it into its ECS document."""

    at: float
    """time.time() when the request was answered"""
    method: str
    path: str
    query: bytes
    status: int
    duration_ns: int
    client: tuple[str, int]
    user_agent: bytes

    def document(self) -> dict:
        """The ECS fields Elastic's formatter writes for a log record, and the request's own."""
        seconds = int(self.at)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        message = f"{self.method} {self.path} {self.status}"
        return {
            "@timestamp": f"{stamp}.{int((self.at - seconds) * 1000):03d}Z",
            "log.level": "info",
            "message": message,
            "ecs.version": ecs_logging.ECS_VERSION,
            "log": {"logger": ACCESS_LOGGER, "original": message},
            "process": {"pid": _PID},
            "service": {"name": SERVICE_NAME},
            "event": {"kind": "event", "category": ["web"], "duration": self.duration_ns},
            "http": {"request": {"method": self.method}, "response": {"status_code": self.status}},
            "url": {"path": self.path, "query": self.query.decode("latin-1")},
            "client": {"ip": self.client[0], "port": self.client[1]},
            "user_agent": {"original": self.user_agent.decode("latin-1")},
        }


_PID = os.getpid()
_access_lines: queue.SimpleQueue | None = None
"""The listener's queue once start_ecs_logging has run; before that, access lines are not written
(as an info record with no handler was not)."""


class _EcsQueueHandler(logging.handlers.QueueHandler):
    """Puts a record's exception in ECS `error` (with its stack trace) before the queue, which
    would otherwise fold it into the message and drop it: ecs-logging's formatter, on the other
    side of the queue, writes the `error` field as it finds it."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.exc_info:
            kind, error, trace = record.exc_info
            stack = "".join(traceback.format_exception(kind, error, trace))
            record.error = {"type": kind.__name__, "message": str(error), "stack_trace": stack}
            record.exc_info, record.exc_text = None, None
        return super().prepare(record)


class _LinesToStdout(logging.StreamHandler):
    """Writes without a flush per line; the listener flushes whenever the queue runs dry."""

    def flush(self) -> None:
        pass

    def drain(self) -> None:
        super().flush()

    def write_access(self, line: AccessLine) -> None:
        self.stream.write(_ENCODER.encode(line.document()).decode() + "\n")


_ENCODER = msgspec.json.Encoder()


class _FlushingWhenIdle(logging.handlers.QueueListener):
    """Polls the queue instead of blocking on it: a put with no thread waiting on the queue
    costs the request nothing but an append. Lines reach stdout within POLL_SECONDS."""

    POLL_SECONDS = 0.02

    def handle(self, record) -> None:
        if isinstance(record, AccessLine):
            for handler in self.handlers:
                handler.write_access(record)
        else:
            super().handle(record)

    def dequeue(self, block: bool):
        if block and self.queue.empty():
            for handler in self.handlers:
                handler.drain()
            while self.queue.empty():
                time.sleep(self.POLL_SECONDS)
        return self.queue.get_nowait()


def start_ecs_logging(level: int = logging.INFO) -> logging.handlers.QueueListener:
    """Route the service's loggers and access lines through a queue to one JSON-lines handler on stdout."""
    global _access_lines
    records: queue.SimpleQueue = queue.SimpleQueue()
    output = _LinesToStdout(sys.stdout)
    # Elastic's own formatter: ECS field names and types as Filebeat and Kibana expect them; a
    # record's `extra` objects (http, url, event...) become ECS fields of the line
    output.setFormatter(ecs_logging.StdlibFormatter(extra={"service": {"name": SERVICE_NAME}}))
    listener = _FlushingWhenIdle(records, output)
    listener.start()
    _access_lines = records
    for name in ("price_alchemy", "price_alchemy_assets", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [_EcsQueueHandler(records)]
        logger.setLevel(level)
        logger.propagate = False
    return listener


def observe_requests(app):
    """ASGI middleware: after each HTTP request, the request metrics and one ECS access line."""

    async def middleware(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started, status = time.perf_counter_ns(), 500

        async def send_and_note_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_and_note_status)
        finally:
            duration = time.perf_counter_ns() - started
            route = scope.get("path_template") or "(unmatched)"
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            REQUEST_SECONDS.labels(scope["method"], route).observe(duration / 1e9)
            if _access_lines is not None:
                headers = dict(scope.get("headers") or [])
                _access_lines.put(
                    AccessLine(
                        time.time(),
                        scope["method"],
                        scope["path"],
                        scope.get("query_string", b""),
                        status,
                        duration,
                        scope.get("client") or ("", 0),
                        headers.get(b"user-agent", b""),
                    )
                )

    return middleware
