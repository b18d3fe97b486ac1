"""The counters' HTTP routes (/v1): thin, the rules live in domain.py and the SQL in store.py."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from services.intake import domain
from services.intake.context import Intake
from services.intake.store import (
    CODE_PLACEHOLDER,
    AlreadyRated,
    CodedEvent,
    Reception,
    StoredDossier,
)
from shared.auth import Caller
from shared.bodies import document_models, json_body_openapi, parse_json_body, reject_nul_characters
from shared.contract import (
    DossierRated,
    DossierRefusedAtReception,
    DossierStatus,
    DossierWithdrawn,
    PaymentPayload,
    PaymentReceived,
    RatingPayload,
    ReasonPayload,
    ResultReturned,
    SupplementReceived,
    dossier_key,
    encode,
    encode_dossier_received,
    new_event_fields,
)
from shared.ids import keyed_hash, uuid7
from shared.logging import get_logger
from shared.middleware import DirectRoutes
from shared.outbox import OutboxMessage
from shared.problems import Problem
from shared.reference import Unit

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["dossiers"])


def install(app: FastAPI) -> None:
    """The routes, and the direct path of the two reception routes (add BodyLimits after)."""
    app.include_router(router)
    # The reception routes read their models from the raw body (see below): their schemas
    # reach the OpenAPI components this way.
    document_models(app, domain.SubmissionIn, domain.RefusalIn)
    app.add_middleware(
        DirectRoutes,
        owner=app,
        routes={
            ("POST", "/v1/dossiers"): submit_dossier,
            ("POST", "/v1/refusals"): refuse_at_reception,
        },
    )


# Dependencies are `async def` on purpose: FastAPI runs plain `def` ones in a worker thread,
# a thread hop per request for what is a dictionary lookup.
async def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


async def _caller(request: Request, intake: Annotated[Intake, Depends(_intake)]) -> Caller:
    return intake.authenticate(request.headers.get("authorization"))


IntakeDep = Annotated[Intake, Depends(_intake)]
CurrentCounter = Annotated[Caller, Depends(_caller)]


class Receipt(BaseModel):
    """The receipt and appointment (mẫu 01), or the refusal note (mẫu 03)."""

    dossier_id: UUID
    dossier_code: str = Field(examples=["T001.H01.X01-261127-0001"])
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


def _refused(errors: list[domain.FieldError]) -> Problem:
    return Problem(
        422,
        "Dossier refused",
        "The submission breaks reception rules",
        kind="dossier-refused",
        errors=[{"field": e.field, "reason": e.reason} for e in errors],
    )


def _request_hash(body: BaseModel) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


_IDEMPOTENCY_KEY_DOC = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retrying with the same key returns the same dossier",
    "schema": {"type": "string", "maxLength": 200},
}


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > 200:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("header", "idempotency-key"),
                    "msg": "String should have at most 200 characters",
                }
            ]
        )
    return key


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


def _receipt_response(stored: StoredDossier, status_code: int) -> Response:
    return Response(receipt_json(stored), status_code, media_type="application/json")


def _replay(stored: StoredDossier, request_hash: str | None) -> Response:
    if stored.request_hash != request_hash:
        raise Problem(
            422,
            "Idempotency key reused",
            "This Idempotency-Key was already used for a different request",
            kind="idempotency-key-reused",
        )
    return _receipt_response(stored, 200)


B = TypeVar("B", bound=domain.SubmissionIn)


@dataclass(frozen=True, slots=True)
class _CounterRequest(Generic[B]):
    intake: Intake
    caller: Caller
    unit: Unit
    idempotency_key: str | None
    body: B


async def _counter_request(request: Request, model: type[B]) -> _CounterRequest[B]:
    """What both reception routes read, checked in the order they always were: the token (401),
    the Idempotency-Key header and the body (422), the caller's unit (403)."""
    intake: Intake = request.app.state.intake
    caller = intake.authenticate(request.headers.get("authorization"))
    idempotency_key = _idempotency_key(request)
    body = parse_json_body(model, await request.body())
    return _CounterRequest(intake, caller, intake.unit_of(caller), idempotency_key, body)


async def _issue(
    counter: _CounterRequest[B],
    *,
    admit: Callable[[datetime], tuple[str, datetime | None, str | None]],
    make_event: Callable[[UUID, str, datetime, str, datetime | None], bytes],
    status: DossierStatus,
) -> Response:
    """What reception and refusal share: idempotency, the daily code, dossier + event together."""
    intake, caller, unit = counter.intake, counter.caller, counter.unit
    body, idempotency_key = counter.body, counter.idempotency_key
    # Only a keyed request can be replayed, so only a keyed one needs its fingerprint.
    request_hash: str | None = None
    if idempotency_key is not None:
        request_hash = _request_hash(body)
        earlier = await intake.store.find_by_idempotency_key(caller.unit, idempotency_key)
        if earlier is not None:
            return _replay(earlier, request_hash)
    received_at = datetime.now(UTC)
    competent, appointment_at, reason = admit(received_at)
    dossier_id = uuid7()
    applicant_ref = keyed_hash(body.applicant.id_number, intake.id_hash_key)
    day = domain.reception_day(received_at)

    # Encoded once, around the placeholder the store replaces with the code it issues.
    event = make_event(dossier_id, CODE_PLACEHOLDER, received_at, applicant_ref, appointment_at)
    message = OutboxMessage(intake.topics.dossier_events, dossier_key(dossier_id), event)
    stored = await intake.writer.receive(
        Reception(
            dossier_id=dossier_id,
            receiving_unit=unit.code,
            competent_unit=competent,
            procedure_code=body.procedure_code,
            channel=body.channel.value,
            applicant_kind=body.applicant.kind.value,
            applicant_ref=applicant_ref,
            applicant_name=body.applicant.name,
            received_at=received_at,
            appointment_at=appointment_at,
            status=int(status),
            refusal_reason=reason,
            components=[c.model_dump() for c in body.components],
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            day=day,
            code_prefix=domain.dossier_code_prefix(unit.code, day),
            events=[CodedEvent.of(message)],
        )
    )
    if stored is None:
        # A concurrent request with the same Idempotency-Key stored its dossier first.
        assert idempotency_key is not None
        earlier = await intake.store.find_by_idempotency_key(caller.unit, idempotency_key)
        assert earlier is not None
        return _replay(earlier, request_hash)
    log.info(
        "dossier received" if status is DossierStatus.RECEIVED else "dossier refused at reception",
        dossier_code=stored.code,
        unit=unit.code,
        procedure=stored.procedure_code,
    )
    return _receipt_response(stored, 201)


# The two reception routes read the raw request: they carry the counters' whole load, and
# FastAPI's generic parameter handling (dependency solving, json.loads then validation, response
# re-validation) was a fifth of the CPU of a submission; `install` also has them called directly
# (`DirectRoutes`). What they accept is documented the same way (`openapi_extra`), and their
# errors are the same problem+json.


@router.post(
    "/dossiers",
    status_code=201,
    response_model=Receipt,
    responses={200: {"description": "A retried submission: the same receipt"}},
    openapi_extra=json_body_openapi(domain.SubmissionIn, _IDEMPOTENCY_KEY_DOC),
)
async def submit_dossier(request: Request) -> Response:
    """Receive a dossier: validate it, issue its code and appointment, publish DossierReceived."""
    counter = await _counter_request(request, domain.SubmissionIn)
    intake, caller, unit, submission = counter.intake, counter.caller, counter.unit, counter.body
    admission: list[domain.Admission] = []

    def admit(received_at: datetime) -> tuple[str, datetime | None, str | None]:
        verdict = domain.check_submission(
            submission, unit, intake.reference, domain.reception_day(received_at)
        )
        if isinstance(verdict, list):
            raise _refused(verdict)
        admission.append(verdict)
        appointment = domain.appointment_for(intake.calendar, verdict.procedure, received_at)
        return verdict.competent_unit.code, appointment, None

    def make_event(
        dossier_id: UUID, code: str, at: datetime, ref: str, appointment: datetime | None
    ) -> bytes:
        verdict = admission[0]
        assert appointment is not None
        return encode_dossier_received(
            occurred_at=at,
            dossier_id=dossier_id,
            receiving_unit=unit.code,
            competent_unit=verdict.competent_unit.code,
            actor=caller.subject,
            payload=domain.received_payload(
                submission,
                verdict,
                code=code,
                applicant_ref=ref,
                received_at=at,
                appointment_at=appointment,
                clock_started_at=domain.clock_start_for(intake.calendar, verdict.procedure, at),
            ),
        )

    return await _issue(counter, admit=admit, make_event=make_event, status=DossierStatus.RECEIVED)


@router.post(
    "/refusals",
    status_code=201,
    response_model=Receipt,
    responses={200: {"description": "A retried refusal: the same note"}},
    openapi_extra=json_body_openapi(domain.RefusalIn, _IDEMPOTENCY_KEY_DOC),
)
async def refuse_at_reception(request: Request) -> Response:
    """Refuse a dossier at the counter with the reason (mẫu 03); it never enters processing."""
    counter = await _counter_request(request, domain.RefusalIn)
    intake, caller, unit, refusal = counter.intake, counter.caller, counter.unit, counter.body

    def admit(received_at: datetime) -> tuple[str, datetime | None, str | None]:
        errors = domain.check_refusal(refusal, intake.reference, domain.reception_day(received_at))
        if errors:
            raise _refused(errors)
        return refusal.competent_unit or unit.code, None, refusal.reason

    def make_event(
        dossier_id: UUID, code: str, at: datetime, ref: str, _appointment: datetime | None
    ) -> bytes:
        return encode(
            DossierRefusedAtReception(
                **new_event_fields(
                    at,
                    dossier_id,
                    unit.code,
                    refusal.competent_unit or unit.code,
                    actor=caller.subject,
                ),
                payload=domain.refusal_payload(
                    refusal, refusal.reason, code=code, applicant_ref=ref, received_at=at
                ),
            )
        )

    return await _issue(
        counter, admit=admit, make_event=make_event, status=DossierStatus.REFUSED_AT_RECEPTION
    )


async def _own(intake: Intake, caller: Caller, dossier_id: UUID) -> StoredDossier:
    stored = await intake.store.get(caller.unit, dossier_id)
    if stored is None:
        raise Problem(404, "Not found", "No dossier with this id was received by your unit")
    return stored


@router.get("/dossiers/{dossier_id}", response_model=Receipt)
async def read_dossier(dossier_id: UUID, caller: CurrentCounter, intake: IntakeDep) -> Receipt:
    """A dossier this unit received; any other unit's dossier answers 404."""
    return Receipt.of(await _own(intake, caller, dossier_id))


async def _counter_action(
    intake: Intake,
    caller: Caller,
    dossier_id: UUID,
    build: Callable[[dict[str, object]], Any],
    *,
    rated: bool = False,
) -> Accepted:
    stored = await _own(intake, caller, dossier_id)
    event = build(
        new_event_fields(
            datetime.now(UTC),
            stored.id,
            stored.receiving_unit,
            stored.competent_unit,
            actor=caller.subject,
        )
    )
    problem = domain.counter_action_problem(
        event.type, DossierStatus(stored.status), rated=stored.rated
    )
    if problem is not None:
        raise Problem(409, "Action not allowed", problem, kind="illegal-transition")
    message = OutboxMessage(intake.topics.dossier_events, dossier_key(stored.id), encode(event))
    try:
        await intake.store.record_action(caller.unit, stored.id, message, rated=rated)
    except AlreadyRated as exc:
        raise Problem(
            409, "Action not allowed", "the dossier was already rated", kind="illegal-transition"
        ) from exc
    log.info("counter action", action=event.type, dossier_code=stored.code, unit=caller.unit)
    return Accepted(dossier_id=stored.id, event_id=event.event_id, type=event.type)


@router.post("/dossiers/{dossier_id}/supplement", status_code=202, response_model=Accepted)
async def record_supplement(
    dossier_id: UUID, caller: CurrentCounter, intake: IntakeDep
) -> Accepted:
    """The applicant handed in the requested supplement: the paused clock runs again."""
    return await _counter_action(intake, caller, dossier_id, lambda f: SupplementReceived(**f))


@router.post("/dossiers/{dossier_id}/result-return", status_code=202, response_model=Accepted)
async def record_result_returned(
    dossier_id: UUID, caller: CurrentCounter, intake: IntakeDep
) -> Accepted:
    """The result was handed to the applicant."""
    return await _counter_action(intake, caller, dossier_id, lambda f: ResultReturned(**f))


@router.post("/dossiers/{dossier_id}/payment", status_code=202, response_model=Accepted)
async def record_payment(
    dossier_id: UUID, body: domain.PaymentIn, caller: CurrentCounter, intake: IntakeDep
) -> Accepted:
    """The applicant paid (part of) the fee processing asked for; once all of it is paid,
    processing goes on."""
    payload = PaymentPayload(amount_vnd=body.amount_vnd)
    return await _counter_action(
        intake, caller, dossier_id, lambda f: PaymentReceived(**f, payload=payload)
    )


@router.post("/dossiers/{dossier_id}/withdrawal", status_code=202, response_model=Accepted)
async def record_withdrawal(
    dossier_id: UUID, body: domain.ReasonIn, caller: CurrentCounter, intake: IntakeDep
) -> Accepted:
    """The applicant withdrew the dossier."""
    reject_nul_characters(body)
    return await _counter_action(
        intake,
        caller,
        dossier_id,
        lambda f: DossierWithdrawn(**f, payload=ReasonPayload(reason=body.reason)),
    )


@router.post("/dossiers/{dossier_id}/rating", status_code=202, response_model=Accepted)
async def record_rating(
    dossier_id: UUID, body: domain.RatingIn, caller: CurrentCounter, intake: IntakeDep
) -> Accepted:
    """The applicant's satisfaction rating (once per dossier)."""
    reject_nul_characters(body)
    payload = RatingPayload(satisfied=body.satisfied, criteria=tuple(body.criteria))
    return await _counter_action(
        intake, caller, dossier_id, lambda f: DossierRated(**f, payload=payload), rated=True
    )
