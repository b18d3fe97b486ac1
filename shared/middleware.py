"""ASGI middleware of the HTTP services: the body limits and the rate limits every route shares."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from shared.probes import CLUSTER_PATHS
from shared.problems import problem_response
from shared.ratelimit import Budgets, retry_after

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BODY_HEADERS = {
    name.encode(): name for name in ("content-length", "content-type", "transfer-encoding")
}


def _body_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers about the body (ASGI gives names lower-cased), leaving the others undecoded."""
    return {_BODY_HEADERS[k]: v.decode("latin-1") for k, v in raw if k in _BODY_HEADERS}


class BodyLimits:
    """ASGI middleware: 415 unless a body is JSON, 413 past `max_bytes` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = _body_headers(scope["headers"])
        declared = headers.get("content-length")
        if declared in (None, "0") and "transfer-encoding" not in headers:
            # No body (an action such as POST .../result-return): nothing to type-check.
            await self.app(scope, receive, send)
            return
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            response = problem_response(
                415,
                "Unsupported media type",
                "Send the body as application/json",
                kind="unsupported-media-type",
            )
            await response(scope, receive, send)
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        # A chunked body has no declared length: read it all here and count.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Any:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Any, receive: Any, send: Any) -> None:
        response = problem_response(
            413,
            "Payload too large",
            f"The body exceeds {self.max_bytes} bytes",
            kind="payload-too-large",
        )
        await response(scope, receive, send)


RATE_LIMITED = Counter(
    "motcua_http_rate_limited_total",
    "Requests refused with 429, by the budget they exceeded",
    ["budget"],
)
for _budget in ("caller", "unit", "anonymous", "auth_failures"):
    RATE_LIMITED.labels(_budget)

_AUTHORIZATION = b"authorization"
_REFUSALS = {
    "caller": "Too many requests from this caller: retry later",
    "unit": "Too many requests for this unit: retry later",
    "anonymous": "Too many requests without a valid token from this address: retry later",
    "auth_failures": "Too many failed authentications from this address: retry later",
}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a valid token names, as the budgets key it."""

    caller: str
    unit: str


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == _AUTHORIZATION:
            if value[:7].lower() == b"bearer ":
                return value[7:].strip().decode("latin-1")
            return None
    return None


def source_of(scope: Any) -> str:
    """The client's address (the proxy's X-Forwarded-For already applied by uvicorn); an IPv6
    client by its /64, the smallest block one subscriber gets."""
    client = scope.get("client")
    if not client:
        return "unknown"
    host: str = client[0]
    if ":" not in host:
        return host
    try:
        return str(ipaddress.IPv6Network(f"{host}/64", strict=False))
    except ValueError:
        return host


class RateLimits:
    """ASGI middleware: 429 problem+json with Retry-After past a budget of `Budgets`.

    A request with a valid bearer token is charged to its caller and to the caller's unit;
    one without, to its source address. A source whose requests keep failing authentication
    (answered 401) is refused before its credentials are checked, except credentials already
    seen valid here, so an attacker guessing tokens behind the same address as a commune's
    counters does not lock the counters out. `identify` checks a token (None: not valid).
    """

    def __init__(
        self,
        app: Any,
        budgets: Budgets,
        identify: Callable[[str], Identity | None],
        clock: Callable[[], float] = time.monotonic,
        known_tokens: int = 4096,
    ) -> None:
        self.app = app
        self.budgets = budgets
        self.identify = identify
        self.clock = clock
        self.known_tokens = known_tokens
        # Tokens seen valid: no check per request, and they pass a throttled source.
        self._known: dict[str, Identity] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in CLUSTER_PATHS:
            await self.app(scope, receive, send)
            return
        now = self.clock()
        source = source_of(scope)
        token = _bearer(scope["headers"])
        identity = None if token is None else self._known.get(token)
        if token is not None and identity is None:
            waiting = self.budgets.auth_failures.wait(source, now)
            if waiting > 0.0:
                await self._refuse(scope, receive, send, waiting, "auth_failures")
                return
            identity = self.identify(token)
            if identity is not None:
                if len(self._known) >= self.known_tokens:
                    self._known.clear()
                self._known[token] = identity
        if identity is not None:
            budgets = self.budgets
            waiting = budgets.caller.wait(identity.caller, now)
            budget = "caller"
            unit_waiting = budgets.unit.wait(identity.unit, now)
            if unit_waiting > waiting:
                waiting, budget = unit_waiting, "unit"
            if waiting > 0.0:
                await self._refuse(scope, receive, send, waiting, budget)
                return
            budgets.caller.charge(identity.caller, now)
            budgets.unit.charge(identity.unit, now)
            await self.app(scope, receive, send)
            return
        waiting = self.budgets.anonymous.take(source, now)
        if waiting > 0.0:
            await self._refuse(scope, receive, send, waiting, "anonymous")
            return

        async def send_and_count_failures(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.budgets.auth_failures.take(source, self.clock())
            await send(message)

        await self.app(scope, receive, send_and_count_failures)

    async def _refuse(
        self, scope: Any, receive: Any, send: Any, waiting: float, budget: str
    ) -> None:
        RATE_LIMITED.labels(budget).inc()
        response = problem_response(
            429, "Too many requests", _REFUSALS[budget], kind="too-many-requests"
        )
        response.headers["Retry-After"] = retry_after(waiting)
        await response(scope, receive, send)
