"""A RawBodyRoute answers and is documented as the framework route would; it takes no dependency."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel

from shared.bodies import FrontDoor, RawBodyRoute, json_body_openapi, parse_json_body
from shared.middleware import BodyLimits
from shared.problems import Problem, install_problem_handlers
from shared.text import Text


class Body(BaseModel):
    name: Text
    count: int


async def endpoint(request: Request) -> Response:
    body = parse_json_body(Body, await request.body())
    if body.name == "conflict":
        raise Problem(409, "Conflict", "already there", kind="conflict")
    if body.name == "boom":
        raise RuntimeError("a bug")
    return Response(body.model_dump_json(), 201, media_type="application/json")


def make_app(raw: bool, front_door: bool = False) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    router = APIRouter(route_class=RawBodyRoute) if raw else APIRouter()
    router.add_api_route(
        "/things",
        endpoint,
        methods=["POST"],
        status_code=201,
        openapi_extra=json_body_openapi(Body),
    )
    if raw:
        app.router.routes[:0] = router.routes
    else:
        app.include_router(router)
    if front_door:
        # As intake's api.install does: the same route objects, ahead of the inner layers.
        app.add_middleware(FrontDoor, owner=app, routes=router.routes)
    app.add_middleware(BodyLimits, max_bytes=100)
    return app


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"name": "a", "count": 1}', {}),
        (b'{"name": "a", "count": "x"}', {}),  # a field error
        (b'{"name": "a\\u0000", "count": 1}', {}),  # NUL
        (b'{"name": "a\\u0000", "count": "x"}', {}),  # NUL and another field error
        (b"{not json", {}),
        (b'{"name": "conflict", "count": 1}', {}),  # a Problem
        (b'{"name": "boom", "count": 1}', {}),  # an unexpected error: 500 problem
        (b'{"name": "' + b"x" * 200 + b'", "count": 1}', {}),  # 413 from BodyLimits
        (b"name=a", {"content-type": "application/x-www-form-urlencoded"}),  # 415
    ],
)
async def test_raw_and_framework_answers_are_the_same(
    content: bytes, headers: dict[str, str]
) -> None:
    answers = []
    # The framework route, the raw route through the router, the raw route through the front door.
    for raw, front_door in ((False, False), (True, False), (True, True)):
        app = make_app(raw, front_door)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                "/things", content=content, headers={"content-type": "application/json", **headers}
            )
        answers.append((response.status_code, response.headers["content-type"], response.json()))
    assert answers[0] == answers[1] == answers[2]


def test_the_front_door_serves_raw_routes_only() -> None:
    router = APIRouter()
    router.add_api_route("/things", endpoint, methods=["POST"])
    with pytest.raises(TypeError, match="RawBodyRoutes only"):
        FrontDoor(make_app(False), owner=FastAPI(), routes=router.routes)


async def test_a_nul_is_a_field_error_among_the_others() -> None:
    transport = httpx.ASGITransport(app=make_app(True))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post(
            "/things",
            content=b'{"name": "a\\u0000", "count": "x"}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "name", "reason": "must not contain the NUL character"},
        {
            "field": "count",
            "reason": "Input should be a valid integer, unable to parse string as an integer",
        },
    ]


def test_the_raw_route_is_documented_as_the_framework_route() -> None:
    operations = [make_app(raw).openapi()["paths"]["/things"] for raw in (False, True)]
    assert operations[0] == operations[1]


async def _token(request: Request) -> str:
    return request.headers.get("authorization", "")


@pytest.mark.parametrize(
    "declare",
    [
        lambda r: r.add_api_route("/x", endpoint, methods=["POST"], dependencies=[Depends(_token)]),
        lambda r: r.add_api_route("/x/{n}", _with_path_parameter, methods=["POST"]),
        lambda r: r.add_api_route("/x", _with_dependency, methods=["POST"]),
    ],
)
def test_a_dependency_or_parameter_is_refused_never_skipped(declare: Any) -> None:
    with pytest.raises(TypeError, match="takes the Request and nothing else"):
        declare(APIRouter(route_class=RawBodyRoute))


async def _with_path_parameter(request: Request, n: int) -> Response:
    return Response(status_code=204)


async def _with_dependency(request: Request, token: Annotated[str, Depends(_token)]) -> Response:
    return Response(status_code=204)
