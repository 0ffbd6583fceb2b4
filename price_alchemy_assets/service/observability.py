"""Operational signals: one ECS JSON log line per request, and Prometheus metrics.

One ASGI middleware around the whole app observes each request once, for both: route (the
matched path template, so unknown paths cannot blow up label counts), status and duration.

The log lines are Elastic Common Schema JSON, written by Elastic's ecs-logging formatter, so
Filebeat or Logstash can ship them to Elasticsearch unchanged (deploy/ has that pipeline). They go
through a queue to a listener thread, so a slow stdout never holds up a response.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import time
import traceback

import ecs_logging
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

access_log = logging.getLogger("price_alchemy.access")


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


class _FlushingWhenIdle(logging.handlers.QueueListener):
    """Polls the queue instead of blocking on it: a put with no thread waiting on the queue
    costs the request nothing but an append. Lines reach stdout within POLL_SECONDS."""

    POLL_SECONDS = 0.02

    def dequeue(self, block: bool):
        if block and self.queue.empty():
            for handler in self.handlers:
                handler.drain()
            while self.queue.empty():
                time.sleep(self.POLL_SECONDS)
        return self.queue.get_nowait()


def start_ecs_logging(level: int = logging.INFO) -> logging.handlers.QueueListener:
    """Route the service's loggers through a queue to one JSON-lines handler on stdout."""
    records: queue.SimpleQueue = queue.SimpleQueue()
    output = _LinesToStdout(sys.stdout)
    # Elastic's own formatter: ECS field names and types as Filebeat and Kibana expect them; a
    # record's `extra` objects (http, url, event...) become ECS fields of the line
    output.setFormatter(ecs_logging.StdlibFormatter(extra={"service": {"name": SERVICE_NAME}}))
    listener = _FlushingWhenIdle(records, output)
    listener.start()
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
            headers = dict(scope.get("headers") or [])
            client = scope.get("client") or ("", 0)
            access_log.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "event": {"kind": "event", "category": ["web"], "duration": duration},
                    "http": {"request": {"method": scope["method"]}, "response": {"status_code": status}},
                    "url": {"path": scope["path"], "query": scope.get("query_string", b"").decode("latin-1")},
                    "client": {"ip": client[0], "port": client[1]},
                    "user_agent": {"original": headers.get(b"user-agent", b"").decode("latin-1")},
                },
            )

    return middleware
