"""The audit log: one record per request to an audited route, whatever its outcome, naming the
caller, the dossier and the answer, never the applicant, and written whatever the log level."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import httpx
import orjson
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute

from shared import audit
from shared.auth import Caller
from shared.bodies import FrontDoor, RawBodyRoute
from shared.problems import Problem, install_problem_handlers

DOSSIER = "0190f3c4-0000-7000-8000-000000000001"
OFFICER = Caller(unit="T01.X00004", role="officer", subject="officer-7")


class Refused(Exception):
    """A service's own error, answered by its own handler."""


def authenticated(request: Request) -> Caller:
    if request.headers.get("authorization") != "Bearer ok":
        raise Problem(401, "Unauthorized", "no", kind="unauthorized")
    return audit.note_caller(request, OFFICER)


async def _officer(request: Request) -> Caller:
    return authenticated(request)


Officer = Annotated[Caller, Depends(_officer)]


def make_app(records: list[bytes]) -> FastAPI:
    log = audit.AuditLog(records.append)
    app = FastAPI()
    install_problem_handlers(app)

    async def on_refused(_request: Request, _exc: Exception) -> Response:
        return Response(status_code=409)

    app.add_exception_handler(Refused, on_refused)

    def status_of(exc: Exception) -> int:
        return 409 if isinstance(exc, Refused) else audit.status_of(exc)

    router = APIRouter(
        prefix="/v1",
        route_class=audit.route_class(APIRoute, service="svc", status_of=status_of, log=log),
    )

    @router.get("/dossiers/{dossier_id}")
    async def read_dossier(dossier_id: str, officer: Officer) -> dict[str, str]:
        return {"id": dossier_id}

    @router.post("/dossiers/{dossier_id}/stop")
    async def stop(dossier_id: str, officer: Officer) -> dict[str, str]:
        raise Refused

    @router.get("/dossiers")
    async def list_dossiers(request: Request, officer: Officer, procedure_code: str) -> list[str]:
        audit.note_filters(request, {"procedure_code": procedure_code, "limit": 50})
        return []

    raw = APIRouter(
        prefix="/v1",
        route_class=audit.route_class(RawBodyRoute, service="svc", status_of=status_of, log=log),
    )

    @raw.post("/receptions", status_code=201)
    async def receive(request: Request) -> Response:
        authenticated(request)
        if await request.body() == b"refuse":
            raise Refused
        audit.note_dossier(request, UUID(DOSSIER), "T01.X00004-261202-0001")
        return Response(b"{}", 201, media_type="application/json")

    app.router.routes[:0] = raw.routes
    app.add_middleware(FrontDoor, owner=app, routes=raw.routes)
    app.include_router(router)
    return app


async def call(
    method: str, path: str, *, token: bool = True, content: bytes = b"", **params: str
) -> tuple[int, list[dict[str, Any]]]:
    records: list[bytes] = []
    transport = httpx.ASGITransport(app=make_app(records), client=("203.0.113.9", 5000))
    headers = {"authorization": "Bearer ok"} if token else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.request(
            method, path, headers=headers, content=content, params=params
        )
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in records)
    return response.status_code, [orjson.loads(line) for line in records]


async def test_a_read_names_the_caller_the_dossier_the_client_and_the_answer() -> None:
    status, records = await call("GET", f"/v1/dossiers/{DOSSIER}")
    assert status == 200
    (record,) = records
    at = record.pop("at")
    assert abs(datetime.fromisoformat(at) - datetime.now(UTC)).total_seconds() < 5
    assert at.endswith("Z")
    assert record == {
        "audit": True,
        "service": "svc",
        "action": "read_dossier",
        "method": "GET",
        "route": "/v1/dossiers/{dossier_id}",
        "subject": "officer-7",
        "unit": "T01.X00004",
        "role": "officer",
        "dossier_id": DOSSIER,
        "dossier_code": None,
        "filters": None,
        "client": "203.0.113.9",
        "status": 200,
    }


async def test_a_refused_action_is_recorded_with_the_status_its_handler_answers() -> None:
    status, records = await call("POST", f"/v1/dossiers/{DOSSIER}/stop")
    assert status == 409
    (record,) = records
    assert (record["action"], record["subject"], record["dossier_id"], record["status"]) == (
        "stop",
        "officer-7",
        DOSSIER,
        409,
    )


async def test_an_unauthenticated_attempt_is_recorded_without_a_caller() -> None:
    status, records = await call("GET", f"/v1/dossiers/{DOSSIER}", token=False)
    assert status == 401
    (record,) = records
    assert (record["subject"], record["unit"], record["role"], record["status"]) == (
        None,
        None,
        None,
        401,
    )
    assert record["dossier_id"] == DOSSIER  # what was tried


async def test_a_path_that_is_not_a_dossier_id_is_not_recorded() -> None:
    # Whatever a client types in the path (here an ID number) stays out of the log.
    status, records = await call("GET", "/v1/dossiers/001099012345")
    assert status == 200
    (record,) = records
    assert record["dossier_id"] is None
    assert "001099012345" not in orjson.dumps(record).decode()


async def test_a_list_is_recorded_with_its_filters_masked() -> None:
    status, records = await call("GET", "/v1/dossiers", procedure_code="001099012345")
    assert status == 200
    (record,) = records
    assert record["action"] == "list_dossiers"
    assert record["filters"] == {"procedure_code": "001*********", "limit": 50}


@pytest.mark.parametrize(("content", "status"), [(b"ok", 201), (b"refuse", 409)])
async def test_a_raw_body_route_served_by_the_front_door_is_recorded(
    content: bytes, status: int
) -> None:
    answered, records = await call("POST", "/v1/receptions", content=content)
    assert answered == status
    (record,) = records
    assert (record["action"], record["subject"], record["status"]) == (
        "receive",
        "officer-7",
        status,
    )
    if status == 201:
        assert (record["dossier_id"], record["dossier_code"]) == (
            DOSSIER,
            "T01.X00004-261202-0001",
        )


def test_a_record_holds_the_fixed_keys_in_order_null_where_unknown() -> None:
    record = audit.Record(service="intake", action="submit_dossier", route="/v1/dossiers")
    record.at, record.method, record.status = datetime(2026, 12, 2, tzinfo=UTC), "POST", 422
    assert audit.render(record) == (
        b'{"audit":true,"at":"2026-12-02T00:00:00Z","service":"intake",'
        b'"action":"submit_dossier","method":"POST","route":"/v1/dossiers","subject":null,'
        b'"unit":null,"role":null,"dossier_id":null,"dossier_code":null,"filters":null,'
        b'"client":null,"status":422}\n'
    )


def test_the_default_log_writes_to_stderr_whatever_the_log_level(
    capfd: pytest.CaptureFixture[str],
) -> None:
    record = audit.Record(service="intake", action="read_dossier", route="/v1/dossiers/{id}")
    record.status = 404
    logging.disable(logging.CRITICAL)  # no level, not even this, turns the audit log off
    try:
        audit.AUDIT.write(record)
    finally:
        logging.disable(logging.NOTSET)
    out, err = capfd.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert orjson.loads(line)["status"] == 404
