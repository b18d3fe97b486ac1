"""The counters' HTTP routes (/v1): requests to workflow calls, outcomes to HTTP answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from services.intake import domain, workflow
from services.intake.context import Intake
from services.intake.store import StoredDossier
from shared import audit
from shared.auth import Caller
from shared.bodies import (
    FrontDoor,
    RawBodyRoute,
    document_models,
    json_body_openapi,
    parse_json_body,
)
from shared.contract import (
    DossierRated,
    DossierStatus,
    DossierWithdrawn,
    PaymentPayload,
    PaymentReceived,
    RatingPayload,
    ReasonPayload,
    ResultReturned,
    SupplementReceived,
)
from shared.problems import Problem, problem_response
from shared.unit_problems import unit_problem


def _status_of(exc: Exception) -> int:
    """The status answering what a route raised, for the audit log."""
    if isinstance(exc, domain.IntakeError):
        return _problem(exc).status
    return audit.status_of(exc)


# The two reception routes carry the counters' whole load: `RawBodyRoute`s, whose endpoints read
# the raw request and answer the Response themselves, without FastAPI's dependency solving,
# json.loads-then-validation and response re-validation (a fifth of a submission's CPU). What
# they accept is documented the same way (`openapi_extra`), their errors are the same
# problem+json, and `install` puts them first in the app's routes.
# Every route of both routers writes its audit record (shared/audit.py): the route class does.
reception = APIRouter(
    prefix="/v1",
    tags=["dossiers"],
    route_class=audit.route_class(RawBodyRoute, service="intake", status_of=_status_of),
)
# The other routes: ordinary FastAPI routes.
router = APIRouter(
    prefix="/v1",
    tags=["dossiers"],
    route_class=audit.route_class(APIRoute, service="intake", status_of=_status_of),
)


def install(app: FastAPI) -> None:
    """The routes, reception's first, and the problem document answering each refusal of the
    workflow (add BodyLimits after)."""
    # Into the app's own route list, ahead of all: an included router is matched through
    # FastAPI's include context, ~20 µs a request (measured), on the counters' whole load.
    app.router.routes[:0] = reception.routes
    # And served ahead of the framework's inner layers (see FrontDoor): the same route objects.
    app.add_middleware(FrontDoor, owner=app, routes=reception.routes)
    app.include_router(router)
    # Their models are read from the raw body: their schemas reach the OpenAPI components here.
    document_models(app, domain.SubmissionIn, domain.RefusalIn)
    for refusal in (
        domain.Refused,
        domain.UnitRefused,
        domain.IdempotencyKeyReused,
        domain.DossierNotFound,
        domain.ActionNotAllowed,
    ):
        app.add_exception_handler(refusal, _on_refusal)


def _problem(exc: domain.IntakeError) -> Problem:
    """What the workflow refused, as the client reads it."""
    if isinstance(exc, domain.Refused):
        return Problem(
            422,
            "Dossier refused",
            "The submission breaks reception rules",
            kind="dossier-refused",
            errors=[{"field": e.field, "reason": e.reason} for e in exc.errors],
        )
    if isinstance(exc, domain.UnitRefused):
        # 422 `unit-not-in-force` naming the successors to resend to, or `unknown-unit`.
        return unit_problem(exc.error, field=exc.field)
    if isinstance(exc, domain.IdempotencyKeyReused):
        return Problem(
            422,
            "Idempotency key reused",
            "This Idempotency-Key was already used for a different request",
            kind="idempotency-key-reused",
        )
    if isinstance(exc, domain.DossierNotFound):
        return Problem(404, "Not found", "No dossier with this id was received by your unit")
    assert isinstance(exc, domain.ActionNotAllowed)
    return Problem(409, "Action not allowed", str(exc), kind="illegal-transition")


async def _on_refusal(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, domain.IntakeError)
    problem = _problem(exc)
    return problem_response(
        problem.status,
        problem.title,
        problem.detail,
        kind=problem.kind,
        errors=problem.errors,
        extensions=problem.extensions,
    )


# Dependencies are `async def` on purpose: FastAPI runs plain `def` ones in a worker thread,
# a thread hop per request for what is a dictionary lookup.
async def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


async def _caller(request: Request, intake: Annotated[Intake, Depends(_intake)]) -> Caller:
    return audit.note_caller(request, await intake.sign_in(request.headers.get("authorization")))


IntakeDep = Annotated[Intake, Depends(_intake)]
CurrentCounter = Annotated[Caller, Depends(_caller)]


class Receipt(BaseModel):
    """The receipt and appointment (mẫu 01), or the refusal note (mẫu 03)."""

    dossier_id: UUID
    dossier_code: str = Field(examples=["T01.X00004-261127-0001"])
    receiving_unit: str
    competent_unit: str
    procedure_code: str
    channel: str
    received_at: datetime
    appointment_at: datetime | None
    status: int
    status_name: str
    refusal_reason: str | None = None

    @classmethod
    def of(cls, stored: StoredDossier) -> Receipt:
        return cls(
            dossier_id=stored.id,
            dossier_code=stored.code,
            receiving_unit=stored.receiving_unit,
            competent_unit=stored.competent_unit,
            procedure_code=stored.procedure_code,
            channel=stored.channel,
            received_at=stored.received_at,
            appointment_at=stored.appointment_at,
            status=stored.status,
            status_name=DossierStatus(stored.status).name.lower(),
            refusal_reason=stored.refusal_reason,
        )


class Accepted(BaseModel):
    """The action is recorded and its event will reach processing."""

    dossier_id: UUID
    event_id: UUID
    type: str


def receipt_json(stored: StoredDossier) -> bytes:
    """`Receipt.of(stored).model_dump_json()`, written directly (a test holds them equal): the
    model's validation and serialisation were a twentieth of a submission's CPU."""
    return orjson.dumps(
        {
            "dossier_id": str(stored.id),  # asyncpg's own UUID type, unknown to orjson
            "dossier_code": stored.code,
            "receiving_unit": stored.receiving_unit,
            "competent_unit": stored.competent_unit,
            "procedure_code": stored.procedure_code,
            "channel": stored.channel,
            "received_at": stored.received_at,
            "appointment_at": stored.appointment_at,
            "status": stored.status,
            "status_name": DossierStatus(stored.status).name.lower(),
            "refusal_reason": stored.refusal_reason,
        },
        option=orjson.OPT_UTC_Z,
    )


def _receipt(request: Request, issued: workflow.Issued) -> Response:
    """201 with the receipt; 200 with the same receipt for a retried request."""
    audit.note_dossier(request, issued.dossier.id, issued.dossier.code)
    status = 200 if issued.replayed else 201
    return Response(receipt_json(issued.dossier), status, media_type="application/json")


_IDEMPOTENCY_KEY_DOC = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The counter's own key for one request: a retry with it returns the same "
    "receipt (another counter's same key is another request)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}


def _idempotency_key(request: Request) -> str | None:
    """The header's key (each counter's own: another counter's same key is another request);
    present but empty, or too long, is a 422."""
    key = request.headers.get("idempotency-key")
    if key is None or 0 < len(key) <= 200:
        return key
    kind, message = (
        ("string_too_short", "String should have at least 1 character")
        if not key
        else ("string_too_long", "String should have at most 200 characters")
    )
    raise RequestValidationError(
        [{"type": kind, "loc": ("header", "idempotency-key"), "msg": message}]
    )


async def _counter(request: Request) -> tuple[Intake, Caller, str | None]:
    """What both reception routes check first, in the order they always did: the token (401,
    also for a unit the reference data does not know), then the Idempotency-Key header (422);
    the body, then whether the caller's unit is in force now (422), follow."""
    intake: Intake = request.app.state.intake
    caller = audit.note_caller(request, await intake.sign_in(request.headers.get("authorization")))
    return intake, caller, _idempotency_key(request)


@reception.post(
    "/dossiers",
    status_code=201,
    response_model=Receipt,
    responses={200: {"description": "A retried submission: the same receipt"}},
    openapi_extra=json_body_openapi(domain.SubmissionIn, _IDEMPOTENCY_KEY_DOC),
)
async def submit_dossier(request: Request) -> Response:
    """Receive a dossier: validate it, issue its code and appointment, publish DossierReceived."""
    intake, caller, key = await _counter(request)
    submission = parse_json_body(domain.SubmissionIn, await request.body())
    return _receipt(request, await workflow.submit(intake, caller, submission, key))


@reception.post(
    "/refusals",
    status_code=201,
    response_model=Receipt,
    responses={200: {"description": "A retried refusal: the same note"}},
    openapi_extra=json_body_openapi(domain.RefusalIn, _IDEMPOTENCY_KEY_DOC),
)
async def refuse_at_reception(request: Request) -> Response:
    """Refuse a dossier at the counter with the reason (mẫu 03); it never enters processing."""
    intake, caller, key = await _counter(request)
    refusal = parse_json_body(domain.RefusalIn, await request.body())
    return _receipt(request, await workflow.refuse(intake, caller, refusal, key))


@router.get("/dossiers/{dossier_id}", response_model=Receipt)
async def read_dossier(dossier_id: UUID, caller: CurrentCounter, intake: IntakeDep) -> Receipt:
    """A dossier this unit received; any other unit's dossier answers 404."""
    return Receipt.of(await workflow.dossier(intake, caller, dossier_id))


def _accepted(event: workflow.CounterAction) -> Accepted:
    return Accepted(dossier_id=event.dossier_id, event_id=event.event_id, type=event.type)


@router.post("/dossiers/{dossier_id}/supplement", status_code=202, response_model=Accepted)
async def record_supplement(
    dossier_id: UUID, caller: CurrentCounter, intake: IntakeDep
) -> Accepted:
    """The applicant handed in the requested supplement: the paused clock runs again."""
    return _accepted(await workflow.record_action(intake, caller, dossier_id, SupplementReceived))


@router.post("/dossiers/{dossier_id}/result-return", status_code=202, response_model=Accepted)
async def record_result_returned(
    dossier_id: UUID, caller: CurrentCounter, intake: IntakeDep
) -> Accepted:
    """The result was handed to the applicant."""
    return _accepted(await workflow.record_action(intake, caller, dossier_id, ResultReturned))


@router.post("/dossiers/{dossier_id}/payment", status_code=202, response_model=Accepted)
async def record_payment(
    dossier_id: UUID, body: domain.PaymentIn, caller: CurrentCounter, intake: IntakeDep
) -> Accepted:
    """The applicant paid (part of) the fee processing asked for; once all of it is paid,
    processing goes on."""
    payload = PaymentPayload(amount_vnd=body.amount_vnd)
    return _accepted(
        await workflow.record_action(intake, caller, dossier_id, PaymentReceived, payload)
    )


@router.post("/dossiers/{dossier_id}/withdrawal", status_code=202, response_model=Accepted)
async def record_withdrawal(
    dossier_id: UUID, body: domain.ReasonIn, caller: CurrentCounter, intake: IntakeDep
) -> Accepted:
    """The applicant withdrew the dossier."""
    payload = ReasonPayload(reason=body.reason)
    return _accepted(
        await workflow.record_action(intake, caller, dossier_id, DossierWithdrawn, payload)
    )


@router.post("/dossiers/{dossier_id}/rating", status_code=202, response_model=Accepted)
async def record_rating(
    dossier_id: UUID, body: domain.RatingIn, caller: CurrentCounter, intake: IntakeDep
) -> Accepted:
    """The applicant's satisfaction rating (once per dossier)."""
    payload = RatingPayload(satisfied=body.satisfied, criteria=tuple(body.criteria))
    return _accepted(
        await workflow.record_action(intake, caller, dossier_id, DossierRated, payload)
    )
