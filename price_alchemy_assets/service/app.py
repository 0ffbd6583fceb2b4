"""The Litestar app: suggestions from the champion, hot reload, prediction log, metrics, seller page.

    price-alchemy serve --host 127.0.0.1 --port 8000

The CLI reads the settings (settings.ServiceSettings and the model store's) and hands them over;
the model store is the one the pipeline promotes into and batch scoring reads, opened the same way.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
from litestar import Litestar, Request, Response, get, post
from litestar.di import Provide
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ServiceUnavailableException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK
from litestar.types import Scope
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from price_alchemy_assets import __version__
from price_alchemy_assets.model.bundle import limit_blas_threads
from price_alchemy_assets.model.comparables import Comparable, position_among
from price_alchemy_assets.model.explain import PriceExplanation, typical_price
from price_alchemy_assets.service.batching import InferenceBatcher
from price_alchemy_assets.service.champion import ChampionWatcher, ServedModel
from price_alchemy_assets.service.explaining import ExplanationWorker
from price_alchemy_assets.service.observability import (
    MODEL_RELOADS,
    PREDICTION_LOG_PENDING,
    PREDICTIONS,
    SUGGESTED_PRICE,
    observe_requests,
    start_ecs_logging,
)
from price_alchemy_assets.service.prediction_log import LoggedRequest, PredictionLog
from price_alchemy_assets.service.request_body import (
    ClosedStructSchemaPlugin,
    RequestTimeout,
    rejected,
    strict_json_bodies,
)
from price_alchemy_assets.service.schemas import (
    ComparableOut,
    ExplainedSuggestion,
    Health,
    Listing,
    ListingBatch,
    ModelInfo,
    PriceDriverOut,
    PriceSuggestion,
    PriceSuggestions,
    ReloadResult,
    TypicalPriceOut,
)
from price_alchemy_assets.service.shadow import ShadowScorer
from price_alchemy_assets.settings import Settings

SELLER_PAGE = Path(__file__).with_name("seller_page.html")
log = logging.getLogger(__name__)


class PriceService:
    """What the handlers share: the champion, the inference batcher, the explanation process, the
    challenger's shadow and the prediction log."""

    def __init__(self, settings: Settings) -> None:
        self.config = settings.service
        self.explanations = ExplanationWorker(self.config.explain_queue)
        store = settings.open_model_store()
        self.champion = ChampionWatcher(store, self.config.reload_seconds, on_outcome=self._reloaded)
        self.shadow = ShadowScorer(
            store, self.config.prediction_log, self.config.shadow_queue, self.config.reload_seconds
        )
        self.batcher = InferenceBatcher(lambda: self.champion.current, on_priced=self.shadow.score)
        self.prediction_log = PredictionLog(self.config.prediction_log)
        # request ids: this process's random prefix and a counter (uuid4 per request costs a syscall)
        self.instance_id, self.request_numbers = uuid.uuid4().hex[:12], itertools.count(1)

    async def start(self) -> None:
        self.prediction_log.start()
        self.champion.start()
        self.shadow.start()
        await self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        self.champion.stop()
        self.shadow.stop()
        self.explanations.stop()
        self.prediction_log.close()

    def _reloaded(self, outcome: str) -> None:
        MODEL_RELOADS.labels(outcome).inc()
        if outcome == "loaded":
            self.explanations.load(self.champion.current.bundle_dir)

    def served(self) -> ServedModel:
        served = self.champion.current
        if served is None:
            raise ServiceUnavailableException(
                detail=f"no champion loaded yet ({self.champion.last_error}); run `price-alchemy train`",
            )
        return served

    async def suggest(self, records: list[dict], route: str) -> tuple[list[PriceSuggestion], str]:
        """`records` from listing_records."""
        self.served()
        started = time.perf_counter()
        predicted, version = await self.batcher.predict(records)
        return self._answered(records, predicted, version, route, started), version

    async def explain(self, record: dict) -> tuple[PriceSuggestion, PriceExplanation, list[Comparable], ServedModel]:
        """The price, its range, why and the comparable listings, all from the explanation process
        (one model, one call), so an explanation adds nothing to the inference thread that prices
        every other request."""
        with self.explanations.place():  # refused before anything is priced or logged
            served = self.served()
            started = time.perf_counter()
            predicted, explanation, comparables = await self.explanations.explain(served.bundle_dir, record)
        self.shadow.score([record])
        [suggestion] = self._answered([record], predicted[None], served.version, "predict_explain", started)
        return suggestion, explanation, comparables, served

    def _answered(
        self, records: list[dict], predicted: np.ndarray, version: str, route: str, started: float
    ) -> list[PriceSuggestion]:
        """Prices (PRICE_COLUMNS rows) as suggestions, recorded in the prediction log and the metrics."""
        latency_ms = (time.perf_counter() - started) * 1000
        suggestions = [
            PriceSuggestion(round(p, 2), round(low, 2), round(high, 2), version) for p, low, high in predicted.tolist()
        ]
        request_id = f"{self.instance_id}-{next(self.request_numbers)}"
        prices = [(s.price, s.price_low, s.price_high) for s in suggestions]
        self.prediction_log.append(
            LoggedRequest(datetime.now(UTC), request_id, route, version, latency_ms, records, prices)
        )
        PREDICTIONS.labels(version).inc(len(suggestions))
        for suggestion in suggestions:
            SUGGESTED_PRICE.observe(suggestion.price)
        return suggestions


def listing_records(listings: list[Listing]) -> list[dict]:
    """Plain dicts for the model and the prediction log."""
    return [msgspec.structs.asdict(listing) for listing in listings]


# what each route may answer besides 200, published in the OpenAPI schema (schemathesis holds us to it)
LISTING_ERRORS = [ValidationException, RequestTimeout, RequestEntityTooLarge, ServiceUnavailableException]
MODEL_ERRORS = [ServiceUnavailableException]
ADMIN_ERRORS = [NotAuthorizedException, PermissionDeniedException]


@post(
    "/predict", summary="Suggest a price and its range for one listing", status_code=HTTP_200_OK, raises=LISTING_ERRORS
)
async def predict(data: Listing, service: PriceService) -> PriceSuggestion:
    suggestions, _ = await service.suggest(listing_records([data]), "predict")
    return suggestions[0]


@post("/predict/batch", summary="Suggest prices for several listings", status_code=HTTP_200_OK, raises=LISTING_ERRORS)
async def predict_batch(data: ListingBatch, service: PriceService) -> PriceSuggestions:
    if len(data.listings) > service.config.max_batch:
        raise rejected("listings", f"at most {service.config.max_batch} listings per batch, got {len(data.listings)}")
    suggestions, version = await service.suggest(listing_records(data.listings), "predict_batch")
    return PriceSuggestions(suggestions, version)


@post(
    "/predict/explain",
    summary="A suggestion with why: typical category price, price drivers and comparable listings",
    status_code=HTTP_200_OK,
    raises=LISTING_ERRORS,
)
async def predict_explain(data: Listing, service: PriceService) -> ExplainedSuggestion:
    suggestion, explanation, comparables, served = await service.explain(listing_records([data])[0])
    typical = typical_price(served.model, data.category_name)
    return ExplainedSuggestion(
        suggestion,
        TypicalPriceOut(typical.category, typical.listings, typical.p25, typical.median, typical.p75)
        if typical
        else None,
        round(explanation.base_price, 2),
        [PriceDriverOut(d.feature, round(d.effect * 100, 1)) for d in explanation.drivers],
        round(explanation.other_effect * 100, 1),
        [ComparableOut(**asdict(comparable)) for comparable in comparables],
        position_among(suggestion.price, comparables),
    )


@get("/model", summary="The champion being served and where it came from", raises=MODEL_ERRORS)
async def model_info(service: PriceService) -> ModelInfo:
    served = service.served()
    record = served.record
    return ModelInfo(
        model_version=record.version,
        promoted_at=record.promoted_at,
        loaded_at=served.loaded_at,
        dagster_run_id=record.dagster_run_id,
        data_version=record.data_version,
        code_version=record.code_version,
        mlflow_run_id=record.mlflow_run_id,
        registered_model_version=record.registered_model_version,
        training_rows=record.training_rows,
        metrics={k: float(v) for k, v in record.metrics.items() if isinstance(v, int | float)},
        interval_coverage=served.model.interval_coverage,
    )


@get("/categories", summary="Categories the champion has typical prices for", raises=MODEL_ERRORS)
async def categories(service: PriceService) -> list[str]:
    return sorted(key for key in service.served().model.category_prices if key.count("/") >= 2)


@get("/health", summary="Liveness, the served model and the last reload error")
async def health(service: PriceService) -> Health:
    log_stats = service.prediction_log.stats()
    PREDICTION_LOG_PENDING.set(log_stats["pending"])
    current = service.champion.current
    degraded = service.champion.last_error or log_stats["last_error"]
    return Health(
        status="degraded" if degraded else "ok",
        model_version=current.version if current else None,
        last_reload_error=service.champion.last_error,
        prediction_log=log_stats,
        shadow=service.shadow.stats(),
    )


@get(
    "/ready",
    summary="200 once a champion is loaded, else 503",
    responses={503: ResponseSpec(dict[str, bool | str | None], description="no champion loaded yet, and why")},
)
async def ready(service: PriceService) -> Response[dict]:
    current = service.champion.current
    if current is None:
        return Response({"ready": False, "reason": service.champion.last_error}, status_code=503)
    return Response({"ready": True, "model_version": current.version})


@post(
    "/admin/reload",
    summary="Load the champion now (needs the admin bearer token)",
    status_code=HTTP_200_OK,
    raises=ADMIN_ERRORS,
)
async def admin_reload(request: Request, service: PriceService) -> ReloadResult:
    token = service.config.token()
    if not token:
        raise PermissionDeniedException(detail="admin reload is off: PRICE_ALCHEMY_ADMIN_TOKEN is not set")
    scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
    # the scheme is case-insensitive (RFC 9110); a bare token is refused, it is not a Bearer credential
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise NotAuthorizedException(detail="a valid 'Authorization: Bearer <token>' header is required")
    changed = await asyncio.to_thread(service.champion.refresh, True)
    current = service.champion.current
    return ReloadResult(current.version if current else None, changed, service.champion.last_error)


# Litestar adds the charset itself
@get("/metrics", summary="Prometheus metrics", media_type=CONTENT_TYPE_LATEST.replace("; charset=utf-8", ""))
async def metrics() -> bytes:
    return generate_latest()


@get("/", include_in_schema=False, media_type="text/html")
async def seller_page() -> str:
    return SELLER_PAGE.read_text()


def log_server_error(error: Exception, scope: Scope) -> None:
    """Every error that is not an answer (an HTTPException) is a 500: log it with its stack trace
    (Litestar logs exceptions only in debug mode)."""
    if not isinstance(error, HTTPException):
        log.error("%s %s failed", scope["method"], scope["path"], exc_info=error)


def create_app(settings: Settings) -> Litestar:
    service = PriceService(settings)
    return Litestar(
        route_handlers=[
            seller_page,
            predict,
            predict_batch,
            predict_explain,
            model_info,
            categories,
            health,
            ready,
            admin_reload,
            metrics,
        ],
        dependencies={"service": Provide(lambda: service, use_cache=True, sync_to_thread=False)},
        on_startup=[service.start],
        on_shutdown=[service.stop],
        openapi_config=OpenAPIConfig(title="Price Alchemy", version=__version__, path="/schema"),
        plugins=[ClosedStructSchemaPlugin()],
        before_request=strict_json_bodies(settings.service.client_timeout_seconds),
        after_exception=[log_server_error],
        request_max_body_size=16 * 1024 * 1024,
    )


def answer_head_as_get(app):
    """ASGI middleware: HEAD wherever GET exists (RFC 9110), the GET's status and headers without
    its body. Litestar answers HEAD only from handlers declared for it, which may not return a body."""

    async def middleware(scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return

        async def headers_only(message) -> None:
            await send({**message, "body": b""} if message["type"] == "http.response.body" else message)

        # a copy: the server reads the method from its own scope to know no body follows
        as_get = {**scope, "method": "GET"}
        try:
            await app(as_get, receive, headers_only)
        finally:
            if "path_template" in as_get:  # the route, for the request observer's metrics
                scope["path_template"] = as_get["path_template"]

    return middleware


def asgi_app(settings: Settings):
    """What uvicorn serves: the app wrapped in the request observer."""
    start_ecs_logging()
    limit_blas_threads()
    return observe_requests(answer_head_as_get(create_app(settings)))
