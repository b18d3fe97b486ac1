"""Health probes: /healthz (alive), /readyz (dependencies answer), and why one is not ready."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse


class NotReady(Exception):
    """A readiness check's reason, shown as is on `/readyz`: it must name what is missing (a
    topic, a dependency), never a secret or personal data. Other exceptions show only their
    type."""


Check = Callable[[], Awaitable[bool]]

# The probes and the scrape: asked by the kubelet and Prometheus, so never behind a token nor a
# rate limit.
CLUSTER_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def health_router(
    checks: dict[str, Check], informational: frozenset[str] = frozenset()
) -> APIRouter:
    """/healthz: the process is alive. /readyz: every dependency answers (broker, database).

    An informational check is reported but does not make the service unready.
    """
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results = {}
        for name, check in checks.items():
            try:
                results[name] = "ok" if await check() else "unreachable"
            except NotReady as exc:
                results[name] = f"error: {exc}"
            except Exception as exc:
                results[name] = f"error: {type(exc).__name__}"
        ready = all(v == "ok" for k, v in results.items() if k not in informational)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    return router
