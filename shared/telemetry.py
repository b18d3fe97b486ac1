"""What every service exposes about itself: the build it runs and its HTTP traffic."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from prometheus_client import Gauge

from shared.http_metrics import HttpMetrics

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
