"""The officers' HTTP routes (/v1), scoped to the officer's unit (the competent unit)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.processing import domain, workflow
from services.processing.context import Processing
from services.processing.store import DossierFilter
from shared.auth import Caller
from shared.bodies import reject_nul_characters
from shared.contract import (
    ApologyIssued,
    ApologyPayload,
    DossierEvent,
    DossierResolved,
    DossierStatus,
    DossierStopped,
    DossierTransferred,
    PaymentRequested,
    PaymentRequestPayload,
    ProcessingStarted,
    ReasonPayload,
    ResolutionPayload,
    ResultDigitized,
    SupplementRequested,
    TransferPayload,
    new_event_fields,
)
from shared.logging import get_logger
from shared.problems import Problem

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["dossiers"])


# `async def` on purpose: FastAPI runs plain `def` dependencies in a worker thread.
async def _processing(request: Request) -> Processing:
    processing: Processing = request.app.state.processing
    return processing


async def _officer(
    request: Request, processing: Annotated[Processing, Depends(_processing)]
) -> Caller:
    return processing.authenticate(request.headers.get("authorization"))


ProcessingDep = Annotated[Processing, Depends(_processing)]
CurrentOfficer = Annotated[Caller, Depends(_officer)]


class TimelineOut(BaseModel):
    occurred_at: datetime
    status: int
    status_name: str
    note: str
    actor: str | None


class DossierOut(BaseModel):
    """A dossier's state; with its process control slip (mẫu 06) when read alone."""

    id: UUID
    code: str
    procedure_code: str
    channel: str
    receiving_unit: str
    competent_unit: str
    status: int
    status_name: str
    received_at: datetime
    appointment_at: datetime
    overdue: bool
    supplement_requests: int
    ended_at: datetime | None
    timeliness: str | None
    elapsed_working_days: float | None
    approved: bool | None
    result_electronic: bool | None
    digitized: bool
    apology_issued_at: datetime | None
    promised_at: datetime | None
    payment_due_vnd: int = Field(description="fees requested so far")
    payment_paid_vnd: int = Field(description="paid so far; approval waits until all is paid")
    transfers: int = Field(description="hand-overs to another agency (liên thông)")
    satisfied: bool | None
    timeline: list[TimelineOut] | None = None

    @classmethod
    def of(cls, d: domain.Dossier, timeline: list[TimelineOut] | None = None) -> DossierOut:
        return cls(
            id=d.id,
            code=d.code,
            procedure_code=d.procedure_code,
            channel=d.channel.value,
            receiving_unit=d.receiving_unit,
            competent_unit=d.competent_unit,
            status=int(d.status),
            status_name=d.status.name.lower(),
            received_at=d.received_at,
            appointment_at=d.appointment_at,
            overdue=d.overdue_at(datetime.now(UTC)),
            supplement_requests=d.supplement_requests,
            ended_at=d.ended_at,
            timeliness=None if d.timeliness is None else d.timeliness.value,
            elapsed_working_days=d.elapsed_working_days,
            approved=d.approved,
            result_electronic=d.result_electronic,
            digitized=d.digitized,
            apology_issued_at=d.apology_issued_at,
            promised_at=d.promised_at,
            payment_due_vnd=d.payment_due_vnd,
            payment_paid_vnd=d.payment_paid_vnd,
            transfers=d.transfers,
            satisfied=d.satisfied,
            timeline=timeline,
        )


class Page(BaseModel):
    items: list[DossierOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReasonIn(_Body):
    reason: str = Field(min_length=1, max_length=2000)


class ResolutionIn(_Body):
    approved: bool
    result_electronic: bool = False
    reason: str | None = Field(default=None, max_length=2000)


class PaymentRequestIn(_Body):
    amount_vnd: int = Field(ge=1, le=10**12, description="in Vietnamese đồng")
    reason: str = Field(min_length=1, max_length=2000, description="what the payment is for")


class TransferIn(_Body):
    to_unit: str = Field(min_length=1, max_length=64, description="the competent unit's code")
    reason: str = Field(min_length=1, max_length=2000)


class ApologyIn(_Body):
    new_appointment_at: AwareDatetime
    reason: str = Field(min_length=1, max_length=2000)


def _cursor(d: domain.Dossier) -> str:
    return base64.urlsafe_b64encode(f"{d.received_at.isoformat()}|{d.id}".encode()).decode()


def _after(cursor: str | None) -> tuple[datetime, UUID] | None:
    if cursor is None:
        return None
    try:
        at, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(at), UUID(ident)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(
            400, "Invalid cursor", "Use the next_cursor of a previous page", kind="invalid-cursor"
        ) from exc


@router.get("/dossiers", response_model=Page)
async def list_dossiers(
    *,
    officer: CurrentOfficer,
    processing: ProcessingDep,
    status: Annotated[int | None, Query(ge=1, le=10)] = None,
    overdue: bool | None = None,
    procedure_code: Annotated[str | None, Query(max_length=32)] = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page:
    """The unit's dossiers, newest first, filtered and paginated."""
    where = DossierFilter(
        None if status is None else DossierStatus(status),
        overdue,
        procedure_code,
        received_from,
        received_to,
    )
    items = await processing.store.list_dossiers(officer.unit, where, limit, _after(cursor))
    return Page(
        items=[DossierOut.of(d) for d in items],
        next_cursor=_cursor(items[-1]) if len(items) == limit else None,
    )


def _not_yours() -> Problem:
    return Problem(404, "Not found", "No dossier with this id is handled by your unit")


async def _load(processing: Processing, officer: Caller, dossier_id: UUID) -> domain.Dossier:
    dossier = await processing.store.get(officer.unit, dossier_id)
    if dossier is None:
        raise _not_yours()
    return dossier


@router.get("/dossiers/{dossier_id}", response_model=DossierOut)
async def read_dossier(
    dossier_id: UUID, officer: CurrentOfficer, processing: ProcessingDep
) -> DossierOut:
    """One dossier with its full timeline: every hand-over with its time."""
    dossier = await _load(processing, officer, dossier_id)
    entries = await processing.store.timeline(dossier_id)
    return DossierOut.of(
        dossier,
        [
            TimelineOut(
                occurred_at=t.occurred_at,
                status=t.status,
                status_name=DossierStatus(t.status).name.lower(),
                note=t.note,
                actor=t.actor,
            )
            for t in entries
        ],
    )


async def _act(processing: Processing, officer: Caller, dossier_id: UUID, build: Any) -> DossierOut:
    async with processing.store.batch() as tx:
        # Read under the row's lock: a colleague's transfer may have committed a moment ago.
        dossier = await tx.handled_by(officer.unit, dossier_id)
        if dossier is None:
            raise _not_yours()
        fields = new_event_fields(
            datetime.now(UTC),
            dossier.id,
            dossier.receiving_unit,
            dossier.competent_unit,
            actor=officer.subject,
        )
        event: DossierEvent = build(fields)
        outcome = await workflow.apply_events(tx, [event], processing.calendar, processing.topics)
        if outcome.rejected:
            # Raising inside the transaction rolls back the claimed event id too.
            raise Problem(
                409, "Action not allowed", outcome.rejected[0][1], kind="illegal-transition"
            )
    change = outcome.applied[0]
    log.info(
        "officer action", action=event.type, dossier_code=change.dossier.code, unit=officer.unit
    )
    return DossierOut.of(change.dossier)


@router.post("/dossiers/{dossier_id}/start", response_model=DossierOut)
async def start_processing(
    dossier_id: UUID, officer: CurrentOfficer, processing: ProcessingDep
) -> DossierOut:
    return await _act(processing, officer, dossier_id, lambda f: ProcessingStarted(**f))


@router.post("/dossiers/{dossier_id}/supplement-request", response_model=DossierOut)
async def request_supplement(
    dossier_id: UUID, body: ReasonIn, officer: CurrentOfficer, processing: ProcessingDep
) -> DossierOut:
    """Ask the applicant for a supplement (mẫu 02); the wait is excluded from elapsed time."""
    reject_nul_characters(body)
    return await _act(
        processing,
        officer,
        dossier_id,
        lambda f: SupplementRequested(**f, payload=ReasonPayload(reason=body.reason)),
    )


@router.post("/dossiers/{dossier_id}/resolution", response_model=DossierOut)
async def resolve(
    dossier_id: UUID, body: ResolutionIn, officer: CurrentOfficer, processing: ProcessingDep
) -> DossierOut:
    """Approve (electronic or paper result) or refuse with a reason."""
    reject_nul_characters(body)
    payload = ResolutionPayload(
        approved=body.approved, result_electronic=body.result_electronic, reason=body.reason
    )
    return await _act(
        processing, officer, dossier_id, lambda f: DossierResolved(**f, payload=payload)
    )


@router.post("/dossiers/{dossier_id}/stop", response_model=DossierOut)
async def stop(
    dossier_id: UUID, body: ReasonIn, officer: CurrentOfficer, processing: ProcessingDep
) -> DossierOut:
    """Stop processing (mẫu 05) with a reason."""
    reject_nul_characters(body)
    return await _act(
        processing,
        officer,
        dossier_id,
        lambda f: DossierStopped(**f, payload=ReasonPayload(reason=body.reason)),
    )


@router.post("/dossiers/{dossier_id}/result-digitization", response_model=DossierOut)
async def digitize_result(
    dossier_id: UUID, officer: CurrentOfficer, processing: ProcessingDep
) -> DossierOut:
    """Record that a paper result was issued electronically as well."""
    return await _act(processing, officer, dossier_id, lambda f: ResultDigitized(**f))


@router.post("/dossiers/{dossier_id}/apology", response_model=DossierOut)
async def issue_apology(
    dossier_id: UUID, body: ApologyIn, officer: CurrentOfficer, processing: ProcessingDep
) -> DossierOut:
    """The apology letter with a new appointment (mẫu 04), for an overdue dossier."""
    reject_nul_characters(body)
    payload = ApologyPayload(new_appointment_at=body.new_appointment_at, reason=body.reason)
    return await _act(
        processing, officer, dossier_id, lambda f: ApologyIssued(**f, payload=payload)
    )


@router.post("/dossiers/{dossier_id}/payment-request", response_model=DossierOut)
async def request_payment(
    dossier_id: UUID, body: PaymentRequestIn, officer: CurrentOfficer, processing: ProcessingDep
) -> DossierOut:
    """Ask the applicant to pay a fee (status 6); the counter records the payment, after which
    processing goes on. The deadline keeps running meanwhile."""
    reject_nul_characters(body)
    payload = PaymentRequestPayload(amount_vnd=body.amount_vnd, reason=body.reason)
    return await _act(
        processing, officer, dossier_id, lambda f: PaymentRequested(**f, payload=payload)
    )


@router.post("/dossiers/{dossier_id}/transfer", response_model=DossierOut)
async def transfer(
    dossier_id: UUID, body: TransferIn, officer: CurrentOfficer, processing: ProcessingDep
) -> DossierOut:
    """Hand the dossier over to another agency (liên thông); the deadline does not restart, and
    from then on the dossier is that unit's, not yours."""
    reject_nul_characters(body)
    if body.to_unit not in processing.reference.units:
        raise Problem(
            422,
            "Invalid request",
            "The request does not satisfy the schema",
            kind="invalid-request",
            errors=[{"field": "to_unit", "reason": "no unit has this code"}],
        )
    payload = TransferPayload(to_unit=body.to_unit, reason=body.reason)
    return await _act(
        processing, officer, dossier_id, lambda f: DossierTransferred(**f, payload=payload)
    )
