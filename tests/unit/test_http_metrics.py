"""HTTP metrics: the route template Starlette would choose, and what /metrics then shows."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.routing import iter_route_contexts
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from starlette.routing import Match

from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from services.processing.app import create_app as processing_app
from shared.bodies import RawBodyRoute
from shared.http_metrics import METHODS, HttpCollector, HttpMetrics, RouteTemplates, declared_routes
from shared.middleware import BodyLimits
from shared.problems import install_problem_handlers

# A small app shaped like intake: a fast route (a RawBodyRoute, first), framework routes with a
# path parameter, BodyLimits, the metrics outermost. Templates under /t/ are this test's own.
gate = asyncio.Event()


async def fast(request: Request) -> Response:
    body = await request.body()
    if body == b'"boom"':
        raise RuntimeError("a bug")
    return Response(b"{}", 201, media_type="application/json")


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.router.routes.insert(0, RawBodyRoute("/t/fast", fast, methods=["POST"]))

    @app.get("/t/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    # After the parameter route of the same shape: Starlette picks it for POST only.
    @app.post("/t/items/special")
    async def special() -> dict[str, str]:
        return {}

    @app.get("/t/slow")
    async def slow() -> dict[str, str]:
        await gate.wait()
        return {}

    app.add_middleware(BodyLimits, max_bytes=10)
    app.add_middleware(HttpMetrics, owner=app)
    return app


APPS = {
    "intake": intake_app(),
    "processing": processing_app(),
    "metrics": metrics_app(),
    "test": make_app(),
}


def starlette_choice(app: FastAPI, method: str, path: str) -> str | None:
    """The template of the route Starlette's own matcher picks: first full match, else the
    first partial one (405)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    partial = None
    for route in iter_route_contexts(app.routes):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(route.path)
        if match == Match.PARTIAL and partial is None:
            partial = str(route.path)
    return partial


def segments(app: FastAPI) -> list[str]:
    found = {"x", "0190a3c4-0000-7000-8000-000000000000", "", "v2", "metrics"}
    for route in declared_routes(app.routes):
        found.update(s for s in route.template.split("/") if not s.startswith("{"))
    return sorted(found)


@pytest.mark.parametrize("name", sorted(APPS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_template_is_the_route_starlette_would_choose(name: str, data: st.DataObject) -> None:
    app = APPS[name]
    templates = RouteTemplates(declared_routes(app.routes))
    parts = data.draw(st.lists(st.sampled_from(segments(app)), min_size=1, max_size=5))
    path = "/" + "/".join(parts)
    method = data.draw(st.sampled_from(sorted(METHODS)))
    route = templates.resolve(method, path)
    assert (None if route is None else route.template) == starlette_choice(app, method, path)


@pytest.mark.parametrize("name", sorted(APPS))
def test_every_declared_route_resolves_to_itself(name: str) -> None:
    app = APPS[name]
    templates = RouteTemplates(declared_routes(app.routes))
    for route in declared_routes(app.routes):
        path = route.template.replace("{dossier_id}", "0190a3c4").replace("{", "").replace("}", "")
        for method in sorted(route.methods or METHODS):
            found = templates.resolve(method, path)
            assert found is not None
            assert found.template == starlette_choice(app, method, path) == route.template


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests(handler: str, method: str, status: str) -> float:
    return sample("motcua_http_requests_total", handler=handler, method=method, status=status)


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_requests_are_counted_by_template_method_and_status_class() -> None:
    json = {"content-type": "application/json"}
    cases: list[tuple[str, str, dict[str, Any], tuple[str, str, str]]] = [
        ("POST", "/t/fast", {"content": b"{}", "headers": json}, ("/t/fast", "POST", "2xx")),
        # BodyLimits answers before the fast route: still its template.
        ("POST", "/t/fast", {"content": b"x" * 50, "headers": json}, ("/t/fast", "POST", "4xx")),
        ("POST", "/t/fast", {"content": b'"boom"', "headers": json}, ("/t/fast", "POST", "5xx")),
        ("GET", "/t/items/7", {}, ("/t/items/{item_id}", "GET", "2xx")),
        ("GET", "/t/items/seven", {}, ("/t/items/{item_id}", "GET", "4xx")),  # 422
        ("DELETE", "/t/items/7", {}, ("/t/items/{item_id}", "DELETE", "4xx")),  # 405
        ("POST", "/t/items/special", {}, ("/t/items/special", "POST", "2xx")),
        ("GET", "/t/items/special", {}, ("/t/items/{item_id}", "GET", "4xx")),  # 422
        ("GET", "/t/nowhere/8", {}, ("none", "GET", "4xx")),
        ("BREW", "/t/items/7", {}, ("/t/items/{item_id}", "other", "4xx")),
    ]
    app = make_app()
    async with client(app) as http:
        for method, path, kwargs, labels in cases:
            before = requests(*labels)
            response = await http.request(method, path, **kwargs)
            assert response.status_code // 100 == int(labels[2][0]), (method, path)
            assert requests(*labels) == before + 1, (method, path, labels)
    assert requests("/t/items/7", "GET", "2xx") == 0  # raw paths never become labels
    assert requests("/t/nowhere/8", "GET", "4xx") == 0
    assert requests("/t/items/{item_id}", "BREW", "4xx") == 0


async def test_duration_and_requests_in_progress() -> None:
    labels = {"handler": "/t/slow", "method": "GET"}
    histogram = "motcua_http_request_duration_seconds"
    before = {le: sample(f"{histogram}_bucket", **labels, le=le) for le in ("0.05", "0.1", "+Inf")}
    app = make_app()
    gate.clear()
    async with client(app) as http:
        pending = asyncio.create_task(http.get("/t/slow"))
        for _ in range(100):
            if sample("motcua_http_requests_in_progress", **labels) == 1:
                break
            await asyncio.sleep(0.01)
        assert sample("motcua_http_requests_in_progress", **labels) == 1
        await asyncio.sleep(0.06)
        gate.set()
        assert (await pending).status_code == 200
    assert sample("motcua_http_requests_in_progress", **labels) == 0
    after = {le: sample(f"{histogram}_bucket", **labels, le=le) for le in before}
    # It took at least 60 ms: not in the 50 ms bucket; counted once in all.
    assert after["0.05"] == before["0.05"]
    assert after["+Inf"] == before["+Inf"] + 1
    assert sample(f"{histogram}_count", **labels) == after["+Inf"]


def test_the_collector_renders_cumulative_buckets_and_status_classes() -> None:
    collector = HttpCollector()
    series = collector.get("/x/{id}", "GET")
    for status, elapsed in ((200, 0.005), (201, 0.0051), (404, 3.0), (503, 11.0), (99, 0.0)):
        series.in_progress += 1
        series.answered(status, elapsed)
    series.in_progress += 1  # one still in flight
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collector.collect()
        for s in family.samples
    }
    labels = (("handler", "/x/{id}"), ("method", "GET"))

    def bucket(le: str) -> float:
        return samples[
            ("motcua_http_request_duration_seconds_bucket", (*labels[:1], ("le", le), labels[1]))
        ]

    assert bucket("0.005") == 2  # 0 and exactly 0.005: a bound includes its value
    assert bucket("0.01") == 3
    assert bucket("2.5") == 3
    assert bucket("5.0") == 4
    assert bucket("10.0") == 4
    assert bucket("+Inf") == 5
    assert samples[("motcua_http_request_duration_seconds_count", labels)] == 5
    assert samples[("motcua_http_request_duration_seconds_sum", labels)] == pytest.approx(14.0101)
    by_class = {
        dict(key)["status"]: value
        for (name, key), value in samples.items()
        if name == "motcua_http_requests_total"
    }
    assert by_class == {"1xx": 1, "2xx": 2, "4xx": 1, "5xx": 1}  # 99 counts as 1xx
    assert samples[("motcua_http_requests_in_progress", labels)] == 1


def test_error_classes_are_exposed_from_zero() -> None:
    # rate() ignores a series' first sample: a 5xx series born with its first burst would hide
    # that burst from the error-budget alerts.
    collector = HttpCollector()
    collector.get("/y", "GET").answered(200, 0.01)
    by_class = {
        s.labels["status"]: s.value
        for family in collector.collect()
        for s in family.samples
        if s.name == "motcua_http_requests_total"
    }
    assert by_class == {"2xx": 1, "4xx": 0, "5xx": 0}
