"""The officers' HTTP routes (/v1), scoped to the officer's unit (the competent unit)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from services.processing import domain, workflow
from services.processing.context import Processing
from services.processing.store import DossierFilter
from shared import audit
from shared.auth import Caller
from shared.contract import (
    ApologyIssued,
    ApologyPayload,
    DossierResolved,
    DossierStatus,
    DossierStopped,
    DossierTransferred,
    OfficerEvent,
    PaymentRequested,
    PaymentRequestPayload,
    ProcessingStarted,
    ReasonPayload,
    ResolutionPayload,
    ResultDigitized,
    SupplementRequested,
    TransferPayload,
)
from shared.problems import Problem
from shared.reference import AdminMapError
from shared.text import Note, Reason, Text
from shared.unit_problems import unit_problem

# Every route writes its audit record (shared/audit.py): the route class does.
router = APIRouter(
    prefix="/v1", tags=["dossiers"], route_class=audit.route_class(APIRoute, service="processing")
)


# `async def` on purpose: FastAPI runs plain `def` dependencies in a worker thread.
async def _processing(request: Request) -> Processing:
    processing: Processing = request.app.state.processing
    return processing


async def _officer(
    request: Request, processing: Annotated[Processing, Depends(_processing)]
) -> Caller:
    return audit.note_caller(
        request, await processing.sign_in(request.headers.get("authorization"))
    )


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


# PostgreSQL stores an instant in UTC: a day inside Python's range (years 1 to 9999) converts
# whatever its offset, where `0001-01-01T00:00:00+14:00` would fail in the database (a 500).
# Naive bounds: the wall-clock part is compared, whatever the offset (or none).
_EARLIEST = datetime(1, 1, 2)
_END = datetime(9999, 12, 31)
INSTANT_RANGE = "must lie between 0001-01-02 and 9999-12-30, both included"


def _within_range(value: datetime) -> datetime:
    if not _EARLIEST <= value.replace(tzinfo=None) < _END:
        raise PydanticCustomError("instant_out_of_range", INSTANT_RANGE)
    return value


# An instant a request may carry into PostgreSQL.
Instant = Annotated[datetime, AfterValidator(_within_range)]


class ReasonIn(_Body):
    reason: Reason


class ResolutionIn(_Body):
    approved: bool
    result_electronic: bool = False
    reason: Note | None = None


class PaymentRequestIn(_Body):
    amount_vnd: int = Field(ge=1, le=10**12, description="in Vietnamese đồng")
    reason: Text = Field(min_length=1, max_length=2000, description="what the payment is for")


class TransferIn(_Body):
    to_unit: Text = Field(min_length=1, max_length=64, description="the competent unit's code")
    reason: Reason


class ApologyIn(_Body):
    new_appointment_at: Annotated[AwareDatetime, AfterValidator(_within_range)]
    reason: Reason


def _cursor(d: domain.Dossier) -> str:
    return base64.urlsafe_b64encode(f"{d.received_at.isoformat()}|{d.id}".encode()).decode()


def _after(cursor: str | None) -> tuple[datetime, UUID] | None:
    if cursor is None:
        return None
    try:
        at, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        after = _within_range(datetime.fromisoformat(at)), UUID(ident)
    except (ValueError, UnicodeDecodeError) as exc:
        # Answered as the other query parameters' errors are (422), without echoing the input.
        reason = "use the next_cursor of a previous page"
        raise RequestValidationError(
            [{"type": "invalid_cursor", "loc": ("query", "cursor"), "msg": reason}]
        ) from exc
    return after


@router.get("/dossiers", response_model=Page)
async def list_dossiers(
    *,
    request: Request,
    officer: CurrentOfficer,
    processing: ProcessingDep,
    status: Annotated[int | None, Query(ge=1, le=10)] = None,
    overdue: bool | None = None,
    procedure_code: Annotated[str | None, Query(max_length=32)] = None,
    received_from: Instant | None = None,
    received_to: Instant | None = None,
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
    # What was asked, never what was answered.
    audit.note_filters(
        request,
        {
            "status": status,
            "overdue": overdue,
            "procedure_code": procedure_code,
            "received_from": received_from,
            "received_to": received_to,
            "limit": limit,
            "cursor": cursor is not None,
        },
    )
    items = await processing.store.list_dossiers(officer.unit, where, limit, _after(cursor))
    return Page(
        items=[DossierOut.of(d) for d in items],
        next_cursor=_cursor(items[-1]) if len(items) == limit else None,
    )


def _not_yours() -> Problem:
    return Problem(404, "Not found", "No dossier with this id is handled by your unit")


@router.get("/dossiers/{dossier_id}", response_model=DossierOut)
async def read_dossier(
    dossier_id: UUID, officer: CurrentOfficer, processing: ProcessingDep
) -> DossierOut:
    """One dossier with its full timeline: every hand-over with its time."""
    dossier = await processing.store.get(officer.unit, dossier_id)
    if dossier is None:
        raise _not_yours()
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


@dataclass(frozen=True, slots=True)
class OfficerAction:
    """One action of an officer on one dossier of their unit: what every action route does."""

    processing: Processing
    officer: Caller
    dossier_id: UUID

    async def __call__(
        self,
        event: Callable[..., OfficerEvent],
        payload: BaseModel | None = None,
        *,
        at: datetime | None = None,
    ) -> DossierOut:
        """Apply the event (of this officer, at `at`, now by default) to the dossier; 404 or 409
        if it cannot be."""
        processing = self.processing
        try:
            change = await workflow.officer_action(
                processing.store,
                processing.calendar,
                processing.topics,
                officer=self.officer,
                dossier_id=self.dossier_id,
                event=event,
                payload=payload,
                at=at,
            )
        except domain.NotHandledHere:
            raise _not_yours() from None
        except domain.Rejected as exc:
            raise Problem(409, "Action not allowed", str(exc), kind="illegal-transition") from None
        return DossierOut.of(change.dossier)


async def _action(
    dossier_id: UUID, officer: CurrentOfficer, processing: ProcessingDep
) -> OfficerAction:
    return OfficerAction(processing, officer, dossier_id)


# The dossier named by the path, acted on by the officer of the token.
Action = Annotated[OfficerAction, Depends(_action)]


@router.post("/dossiers/{dossier_id}/start", response_model=DossierOut)
async def start_processing(act: Action) -> DossierOut:
    return await act(ProcessingStarted)


@router.post("/dossiers/{dossier_id}/supplement-request", response_model=DossierOut)
async def request_supplement(body: ReasonIn, act: Action) -> DossierOut:
    """Ask the applicant for a supplement (mẫu 02); the wait is excluded from elapsed time."""
    return await act(SupplementRequested, ReasonPayload(reason=body.reason))


@router.post("/dossiers/{dossier_id}/resolution", response_model=DossierOut)
async def resolve(body: ResolutionIn, act: Action) -> DossierOut:
    """Approve (electronic or paper result) or refuse with a reason."""
    return await act(
        DossierResolved,
        ResolutionPayload(
            approved=body.approved, result_electronic=body.result_electronic, reason=body.reason
        ),
    )


@router.post("/dossiers/{dossier_id}/stop", response_model=DossierOut)
async def stop(body: ReasonIn, act: Action) -> DossierOut:
    """Stop processing (mẫu 05) with a reason."""
    return await act(DossierStopped, ReasonPayload(reason=body.reason))


@router.post("/dossiers/{dossier_id}/result-digitization", response_model=DossierOut)
async def digitize_result(act: Action) -> DossierOut:
    """Record that a paper result was issued electronically as well."""
    return await act(ResultDigitized)


@router.post("/dossiers/{dossier_id}/apology", response_model=DossierOut)
async def issue_apology(body: ApologyIn, act: Action) -> DossierOut:
    """The apology letter with a new appointment (mẫu 04), for an overdue dossier."""
    return await act(
        ApologyIssued,
        ApologyPayload(new_appointment_at=body.new_appointment_at, reason=body.reason),
    )


@router.post("/dossiers/{dossier_id}/payment-request", response_model=DossierOut)
async def request_payment(body: PaymentRequestIn, act: Action) -> DossierOut:
    """Ask the applicant to pay a fee (status 6); the counter records the payment, after which
    processing goes on. The deadline keeps running meanwhile."""
    return await act(
        PaymentRequested, PaymentRequestPayload(amount_vnd=body.amount_vnd, reason=body.reason)
    )


@router.post("/dossiers/{dossier_id}/transfer", response_model=DossierOut)
async def transfer(body: TransferIn, act: Action) -> DossierOut:
    """Hand the dossier over to another agency (liên thông); the deadline does not restart, and
    from then on the dossier is that unit's, not yours. The unit must be in force at the
    transfer instant, as at a reception: one that ended is a 422 naming its successors."""
    now = datetime.now(UTC)
    try:
        to_unit = act.processing.reference.admit(body.to_unit, now)
    except AdminMapError as error:
        raise unit_problem(error, field="to_unit") from None
    # Admitted and recorded at the same instant: a transfer at midnight of a reorganisation is
    # judged by the day it carries.
    return await act(
        DossierTransferred, TransferPayload(to_unit=to_unit.code, reason=body.reason), at=now
    )
