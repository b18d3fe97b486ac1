"""HTTP RED metrics (requests, duration, in flight) by route template, as a pure ASGI middleware.

Why not a library: prometheus-fastapi-instrumentator matches every route with Starlette's matcher
and builds Request/Response objects on every request (≈25 µs per submission, ≈50 µs per 404,
measured: 8 % of the ≈300 µs of CPU a submission costs intake); starlette-exporter labels by
`path`, numeric `status_code` and `app_name`, with no route on the in-flight gauge. Here a request
costs one dict lookup (routes without parameters) or one precompiled regex match, then a few
additions to plain numbers that a collector turns into the three families at scrape time
(prometheus_client's metric objects, with a lock per update, cost twice as much per request).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

UNMATCHED = "none"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Any other method is labelled `other`: a client must not be able to mint series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_BOUNDS = [repr(b) for b in BUCKETS] + ["+Inf"]  # as prometheus_client writes them: 1.0, 0.005
_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_ALWAYS_SHOWN = frozenset({"2xx", "4xx", "5xx"})

# A path parameter's named group: the patterns of all routes share one regex, where the same
# name twice would be an error; only the matching alternative is wanted, not the values.
_NAMED_GROUP = re.compile(r"\(\?P<[^>]+>")


@dataclass(frozen=True, slots=True)
class Route:
    """What the resolution needs of a declared route."""

    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str] | None  # None: any method (a mount)

    @property
    def static(self) -> bool:
        """No path parameter: the template is the only path it matches."""
        return self.pattern.groups == 0


def declared_routes(routes: Iterable[Any]) -> list[Route]:
    """The app's routes in matching order, the routers FastAPI includes flattened."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # plain Starlette: the routes are already flat
        flat: Iterable[Any] = routes
    else:
        flat = iter_route_contexts(list(routes))
    found = []
    for route in flat:
        template = getattr(route, "path", None)
        pattern = getattr(route, "path_regex", None)
        if isinstance(template, str) and isinstance(pattern, re.Pattern):
            methods = getattr(route, "methods", None)
            found.append(Route(template, pattern, None if methods is None else frozenset(methods)))
    return found


class RouteTemplates:
    """The template of the route Starlette would choose for (method, path).

    As Starlette: the first route matching path and method; else the first matching the path
    alone (a 405); else none. Each set of candidate routes is one alternation, in declaration
    order, so the first alternative that matches the whole path is the first such route.
    """

    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes = list(routes)
        self._any = self._alternation(None)
        self._by_method = {method: self._alternation(method) for method in METHODS}

    def _alternation(self, method: str | None) -> re.Pattern[str] | None:
        """One regex of the routes accepting `method` (None: all), each alternative named after
        the route's index in `_routes`."""
        parts = []
        for n, route in enumerate(self._routes):
            if method is None or route.methods is None or method in route.methods:
                body = _NAMED_GROUP.sub("(?:", route.pattern.pattern).removeprefix("^")
                parts.append(f"(?P<r{n}>{body.removesuffix('$')})")
        return re.compile("|".join(parts)) if parts else None

    def resolve(self, method: str, path: str) -> Route | None:
        for pattern in (self._by_method.get(method), self._any):
            match = pattern.fullmatch(path) if pattern is not None else None
            if match is not None:
                assert match.lastgroup is not None
                return self._routes[int(match.lastgroup[1:])]
        return None


class _Series:
    """The figures of one (handler, method), as plain numbers: every request updates them on the
    event loop's thread, so they need no lock."""

    __slots__ = ("buckets", "by_class", "handler", "in_progress", "method", "seconds")

    def __init__(self, handler: str, method: str) -> None:
        self.handler = handler
        self.method = method
        self.in_progress = 0
        self.by_class = [0] * 5  # requests answered, by status class 1xx … 5xx
        self.buckets = [0] * (len(BUCKETS) + 1)  # durations per bucket, not cumulative
        self.seconds = 0.0

    def answered(self, status: int, elapsed: float) -> None:
        self.in_progress -= 1
        self.by_class[min(max(status // 100, 1), 5) - 1] += 1
        self.buckets[bisect_left(BUCKETS, elapsed)] += 1  # the first bound >= elapsed
        self.seconds += elapsed


class HttpCollector(Collector):
    """Renders every series of every HttpMetrics middleware of the process."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], _Series] = {}

    def get(self, handler: str, method: str) -> _Series:
        series = self.series.get((handler, method))
        if series is None:
            series = self.series[(handler, method)] = _Series(handler, method)
        return series

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "motcua_http_requests",
            "HTTP requests answered, by route template, method and status class",
            labels=["handler", "method", "status"],
        )
        duration = HistogramMetricFamily(
            "motcua_http_request_duration_seconds",
            "Seconds from receiving an HTTP request to the end of its response, by route template",
            labels=["handler", "method"],
        )
        in_progress = GaugeMetricFamily(
            "motcua_http_requests_in_progress",
            "HTTP requests being served, by route template",
            labels=["handler", "method"],
        )
        for (handler, method), series in sorted(self.series.items()):
            in_progress.add_metric([handler, method], series.in_progress)
            for klass, count in zip(_CLASSES, series.by_class, strict=True):
                # 2xx, 4xx and 5xx from 0: rate() ignores a series' first sample, so a class
                # appearing with its first burst would hide that burst from the error ratios.
                if count or klass in _ALWAYS_SHOWN:
                    requests.add_metric([handler, method, klass], count)
            cumulative, running = [], 0
            for bound, count in zip(_BOUNDS, series.buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            duration.add_metric([handler, method], cumulative, sum_value=series.seconds)
        yield requests
        yield duration
        yield in_progress


HTTP = HttpCollector()
REGISTRY.register(HTTP)


def _route_path(scope: dict[str, Any]) -> str:
    """The path the routes match (Starlette strips the root path the same way)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


class HttpMetrics:
    """ASGI middleware measuring every HTTP request by the template of the route it reaches.

    Add it last (outermost), so that the answers of the other middleware (BodyLimits' 413/415)
    are measured with the template of the route they stand for. The
    routes are read at the first request, when the app has them all.
    """

    def __init__(self, app: Any, owner: Any) -> None:
        self.app = app
        self.owner = owner
        self._templates: RouteTemplates | None = None
        # (method, path) of routes without parameters, and (template, method): bounded by the
        # declared routes times METHODS; unmatched paths are never keys.
        self._static: dict[tuple[str, str], _Series] = {}

    def _series_for(self, method: str, path: str) -> _Series:
        if method not in METHODS:
            method = "other"
        series = self._static.get((method, path))
        if series is not None:
            return series
        if self._templates is None:
            self._templates = RouteTemplates(declared_routes(self.owner.routes))
        route = self._templates.resolve(method, path)
        series = HTTP.get(UNMATCHED if route is None else route.template, method)
        if route is not None and route.static:
            self._static[(method, path)] = series
        return series

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        series = self._series_for(scope["method"], _route_path(scope))
        # An exception passing through here becomes the 500 of the server error middleware.
        status = 500

        async def send_and_note(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        series.in_progress += 1
        started = perf_counter()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            series.answered(status, perf_counter() - started)
