"""DirectRoutes answers as the framework would: same statuses, bodies and error documents."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from shared.bodies import parse_json_body
from shared.middleware import BodyLimits, DirectRoutes
from shared.problems import Problem, install_problem_handlers


class Body(BaseModel):
    name: str
    count: int


async def endpoint(request: Request) -> Response:
    body = parse_json_body(Body, await request.body())
    if body.name == "conflict":
        raise Problem(409, "Conflict", "already there", kind="conflict")
    if body.name == "boom":
        raise RuntimeError("a bug")
    return Response(body.model_dump_json(), 201, media_type="application/json")


def make_app(direct: bool) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_api_route("/things", endpoint, methods=["POST"])
    if direct:
        app.add_middleware(DirectRoutes, owner=app, routes={("POST", "/things"): endpoint})
    app.add_middleware(BodyLimits, max_bytes=100)
    return app


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"name": "a", "count": 1}', {}),
        (b'{"name": "a", "count": "x"}', {}),  # a field error
        (b'{"name": "a\\u0000", "count": 1}', {}),  # NUL
        (b"{not json", {}),
        (b'{"name": "conflict", "count": 1}', {}),  # a Problem
        (b'{"name": "boom", "count": 1}', {}),  # an unexpected error: 500 problem
        (b'{"name": "' + b"x" * 200 + b'", "count": 1}', {}),  # 413 from BodyLimits
        (b"name=a", {"content-type": "application/x-www-form-urlencoded"}),  # 415
    ],
)
async def test_direct_and_framework_answers_are_the_same(
    content: bytes, headers: dict[str, str]
) -> None:
    answers = []
    for direct in (False, True):
        transport = httpx.ASGITransport(app=make_app(direct), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                "/things", content=content, headers={"content-type": "application/json", **headers}
            )
        answers.append((response.status_code, response.headers["content-type"], response.json()))
    assert answers[0] == answers[1]
