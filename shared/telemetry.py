"""What every service exposes about itself: the build it runs, its HTTP traffic, /metrics."""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
)

from shared.http_metrics import HttpMetrics

# FastAPI's OpenTelemetry bridge asks the global providers at every request (about 2 % of a
# submission's CPU) and would find none: the services' telemetry is Prometheus and structlog.
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

BUILD_INFO = Gauge(
    "motcua_build_info",
    "Always 1: the service and the version of the motcua package it runs",
    ["service", "version"],
)


def package_version() -> str:
    try:
        return version("motcua")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def instrument(app: FastAPI, service: str) -> None:
    """build_info, and the HTTP metrics of every route. Call it after the app's other
    middleware, so that it wraps them and measures their answers too."""
    BUILD_INFO.labels(service, package_version()).set(1)
    app.add_middleware(HttpMetrics, owner=app)


def metrics_router(
    *registries: CollectorRegistry,
    before: Callable[[], Awaitable[None]] | None = None,
    rendered: Callable[[], bytes] | None = None,
) -> APIRouter:
    """/metrics in the Prometheus text format (a route, not a mount: no redirect to /metrics/).

    `before` runs at every scrape (the metrics service re-reads its exact totals there);
    `rendered` returns families already in the text format, appended as they are.
    """
    router = APIRouter(tags=["metrics"])
    sources = registries or (REGISTRY,)

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if before is not None:
            await before()
        body = b"".join(generate_latest(r) for r in sources)
        if rendered is not None:
            body += rendered()
        # The metrics page holds the unit info of both maps (megabytes of text): Prometheus asks
        # for gzip, which makes it a twentieth of that for a few milliseconds of the fastest level.
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(
                gzip.compress(body, compresslevel=1),
                media_type=CONTENT_TYPE_LATEST,
                headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
            )
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Vary": "Accept-Encoding"})

    return router
