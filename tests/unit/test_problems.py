"""The catch-all answers: a database outage is 503 with Retry-After, a bug 500; neither says why."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared.problems import PROBLEM_JSON, install_problem_handlers


def _app(error: Exception) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
    ],
)
async def test_a_database_outage_is_503_with_retry_after(error: Exception) -> None:
    transport = httpx.ASGITransport(app=_app(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/boom")
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["type"].endswith("/database-unavailable")
    assert "5432" not in answer.text


async def test_a_bug_is_500_and_its_message_stays_in_the_log() -> None:
    transport = httpx.ASGITransport(app=_app(KeyError("secret detail")), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/boom")
    assert answer.status_code == 500
    assert "retry-after" not in answer.headers
    assert "secret detail" not in answer.text
