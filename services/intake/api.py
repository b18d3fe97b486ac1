"""The counters' HTTP routes (/v1): thin, the rules live in domain.py and the SQL in store.py."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, Field

from services.intake import domain
from services.intake.context import Intake
from services.intake.store import LostRace, StoredDossier
from shared.auth import Caller
from shared.contract import (
    ApplicantKind,
    DossierReceived,
    DossierReceivedPayload,
    dossier_key,
    encode,
    new_event_fields,
)
from shared.http import Problem
from shared.ids import keyed_hash, uuid7
from shared.logging import get_logger
from shared.outbox import OutboxMessage

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["dossiers"])


def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


def _caller(request: Request, intake: Annotated[Intake, Depends(_intake)]) -> Caller:
    return intake.authenticate(request.headers.get("authorization"))


IntakeDep = Annotated[Intake, Depends(_intake)]
CurrentCounter = Annotated[Caller, Depends(_caller)]


class Receipt(BaseModel):
    """The receipt and appointment (mẫu 01: giấy tiếp nhận hồ sơ và hẹn trả kết quả)."""

    dossier_id: UUID
    dossier_code: str = Field(examples=["T001.H01.X01-261127-0001"])
    receiving_unit: str
    competent_unit: str
    procedure_code: str
    channel: str
    received_at: datetime
    appointment_at: datetime

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
        )


def _request_hash(submission: domain.SubmissionIn) -> str:
    return hashlib.sha256(submission.model_dump_json().encode()).hexdigest()


def _replay(stored: StoredDossier, request_hash: str, response: Response) -> Receipt:
    if stored.request_hash != request_hash:
        raise Problem(
            422,
            "Idempotency key reused",
            "This Idempotency-Key was already used for a different submission",
            kind="idempotency-key-reused",
        )
    response.status_code = 200
    return Receipt.of(stored)


@router.post(
    "/dossiers",
    status_code=201,
    response_model=Receipt,
    responses={200: {"description": "A retried submission: the same receipt"}},
)
async def submit_dossier(
    submission: domain.SubmissionIn,
    caller: CurrentCounter,
    intake: IntakeDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Receipt:
    """Receive a dossier: validate it, issue its code and appointment, publish DossierReceived."""
    request_hash = _request_hash(submission)
    if idempotency_key is not None:
        earlier = await intake.store.find_by_idempotency_key(caller.unit, idempotency_key)
        if earlier is not None:
            return _replay(earlier, request_hash, response)
    unit = intake.reference.units.get(caller.unit)
    if unit is None:
        raise Problem(
            403,
            "Unknown unit",
            "The token's unit is not in the reference data",
            kind="unknown-unit",
        )
    received_at = datetime.now(UTC)
    verdict = domain.check_submission(
        submission, unit, intake.reference, domain.reception_day(received_at)
    )
    if isinstance(verdict, list):
        raise Problem(
            422,
            "Dossier refused",
            "The submission breaks reception rules",
            kind="dossier-refused",
            errors=[{"field": e.field, "reason": e.reason} for e in verdict],
        )
    appointment_at = domain.appointment_for(intake.calendar, verdict.procedure, received_at)
    dossier_id = uuid7()
    applicant_ref = keyed_hash(submission.applicant.id_number, intake.id_hash_key)

    def make_event(code: str) -> OutboxMessage:
        event = DossierReceived(
            **new_event_fields(received_at, dossier_id, unit.code, verdict.competent_unit.code),
            payload=DossierReceivedPayload(
                dossier_code=code,
                procedure_code=verdict.procedure.code,
                channel=submission.channel,
                applicant_kind=submission.applicant.kind,
                applicant_ref=applicant_ref,
                received_at=received_at,
                appointment_at=appointment_at,
                processing_days=verdict.procedure.processing_days,
                components=tuple(submission.components),
                result_is_paper=verdict.procedure.result_is_paper,
            ),
        )
        return OutboxMessage(intake.topics.dossier_events, dossier_key(dossier_id), encode(event))

    day = domain.reception_day(received_at)
    try:
        stored = await intake.store.receive(
            dossier_id=dossier_id,
            receiving_unit=unit.code,
            competent_unit=verdict.competent_unit.code,
            procedure_code=verdict.procedure.code,
            channel=submission.channel.value,
            applicant_kind=ApplicantKind(submission.applicant.kind).value,
            applicant_ref=applicant_ref,
            applicant_name=submission.applicant.name,
            received_at=received_at,
            appointment_at=appointment_at,
            components=[c.model_dump() for c in submission.components],
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            day=day,
            make_code=lambda seq: domain.dossier_code(unit.code, day, seq),
            make_event=make_event,
        )
    except LostRace:
        assert idempotency_key is not None
        earlier = await intake.store.find_by_idempotency_key(caller.unit, idempotency_key)
        assert earlier is not None
        return _replay(earlier, request_hash, response)
    log.info(
        "dossier received",
        dossier_code=stored.code,
        unit=unit.code,
        procedure=stored.procedure_code,
    )
    return Receipt.of(stored)


@router.get("/dossiers/{dossier_id}", response_model=Receipt)
async def read_dossier(dossier_id: UUID, caller: CurrentCounter, intake: IntakeDep) -> Receipt:
    """A dossier this unit received; any other unit's dossier answers 404."""
    stored = await intake.store.get(caller.unit, dossier_id)
    if stored is None:
        raise Problem(404, "Not found", "No dossier with this id was received by your unit")
    return Receipt.of(stored)
