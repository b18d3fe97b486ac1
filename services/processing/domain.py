"""The dossier state machine and deadline rules: pure, no I/O.

Statuses are the interoperable codes of DossierStatus. An event that the state machine cannot
accept is rejected with a reason (the consumer dead-letters it; the API answers 409).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from shared.calendar import DAY, Timeliness, WorkingCalendar, classify
from shared.contract import (
    Channel,
    DossierEvent,
    DossierRated,
    DossierReceived,
    DossierRefusedAtReception,
    DossierStatus,
    DossierWithdrawn,
    ResultReturned,
    StatusChangedPayload,
    SupplementReceived,
)

S = DossierStatus
END_STATUSES = frozenset(
    {S.REFUSED_AT_RECEPTION, S.WITHDRAWN, S.STOPPED, S.RESOLVED, S.RESULT_RETURNED}
)
OPEN_STATUSES = frozenset(set(S) - END_STATUSES)


class Rejected(Exception):
    """The action is not allowed in the dossier's current state; the message says why."""


@dataclass(frozen=True, slots=True)
class Dossier:
    id: UUID
    code: str
    procedure_code: str
    channel: Channel
    receiving_unit: str
    competent_unit: str
    status: DossierStatus
    received_at: datetime
    appointment_at: datetime
    paused: timedelta = timedelta(0)
    supplement_requests: int = 0
    supplement_requested_at: datetime | None = None
    ended_at: datetime | None = None
    timeliness: Timeliness | None = None
    elapsed_working_days: float | None = None
    components_total: int = 0
    components_digitized: int = 0
    components_reused: int = 0
    result_is_paper: bool = True
    result_electronic: bool | None = None
    satisfied: bool | None = None
    rated: bool = False

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class Change:
    """The dossier after one event, and the status event to publish for it."""

    dossier: Dossier
    previous_status: DossierStatus | None
    note: str


def receive(event: DossierReceived) -> Dossier:
    p = event.payload
    return Dossier(
        id=event.dossier_id,
        code=p.dossier_code,
        procedure_code=p.procedure_code,
        channel=p.channel,
        receiving_unit=event.receiving_unit,
        competent_unit=event.competent_unit,
        status=S.RECEIVED,
        received_at=p.received_at,
        appointment_at=p.appointment_at,
        components_total=len(p.components),
        components_digitized=sum(c.digitized for c in p.components),
        components_reused=sum(c.reused for c in p.components),
        result_is_paper=p.result_is_paper,
    )


def end(
    dossier: Dossier, status: DossierStatus, at: datetime, calendar: WorkingCalendar
) -> Dossier:
    """Close processing: the first of resolved, returned, stopped, refused or withdrawn."""
    if dossier.ended_at is not None:
        return replace(dossier, status=status)
    # While a supplementation request is outstanding, the request instant is the end (index rule).
    effective = dossier.supplement_requested_at or at
    elapsed = calendar.working_time(dossier.received_at, effective) - dossier.paused
    return replace(
        dossier,
        status=status,
        ended_at=effective,
        timeliness=classify(
            effective, dossier.appointment_at, supplement_requests=dossier.supplement_requests
        ),
        elapsed_working_days=round(max(elapsed, timedelta(0)) / DAY, 4),
    )


def apply(dossier: Dossier | None, event: DossierEvent, calendar: WorkingCalendar) -> Change:
    """Apply one dossier event from the counters; raises Rejected if it cannot apply."""
    if isinstance(event, DossierReceived):
        if dossier is not None:
            raise Rejected("dossier already received")
        return Change(receive(event), None, "received at the counter")
    if dossier is None:
        raise Rejected("unknown dossier: no DossierReceived before this event")
    before = dossier.status
    if isinstance(event, SupplementReceived):
        if dossier.status is not S.SUPPLEMENT_REQUESTED or dossier.supplement_requested_at is None:
            raise Rejected(f"no supplementation requested (status {dossier.status.name})")
        pause = calendar.working_time(dossier.supplement_requested_at, event.occurred_at)
        after = replace(
            dossier,
            status=S.PROCESSING,
            paused=dossier.paused + pause,
            supplement_requested_at=None,
            appointment_at=calendar.advance(dossier.appointment_at, pause),
        )
        return Change(after, before, "supplement received")
    if isinstance(event, ResultReturned):
        if dossier.status is not S.RESOLVED:
            raise Rejected(f"result returned before resolution (status {dossier.status.name})")
        return Change(
            end(dossier, S.RESULT_RETURNED, event.occurred_at, calendar),
            before,
            "result returned to the applicant",
        )
    if isinstance(event, DossierWithdrawn):
        if not dossier.is_open:
            raise Rejected(f"dossier already ended (status {dossier.status.name})")
        return Change(
            end(dossier, S.WITHDRAWN, event.occurred_at, calendar),
            before,
            "withdrawn by the applicant",
        )
    if isinstance(event, DossierRefusedAtReception):
        if dossier.status is not S.RECEIVED:
            raise Rejected(f"refusal at reception after processing began ({dossier.status.name})")
        return Change(
            end(dossier, S.REFUSED_AT_RECEPTION, event.occurred_at, calendar),
            before,
            "refused at reception",
        )
    assert isinstance(event, DossierRated)
    if dossier.rated:
        raise Rejected("dossier already rated")
    return Change(
        replace(dossier, rated=True, satisfied=event.payload.satisfied),
        before,
        "rated by the applicant",
    )


def status_payload(change: Change, at: datetime) -> StatusChangedPayload:
    d = change.dossier
    return StatusChangedPayload(
        dossier_code=d.code,
        procedure_code=d.procedure_code,
        channel=d.channel,
        status=d.status,
        previous_status=change.previous_status,
        received_at=d.received_at,
        appointment_at=d.appointment_at,
        ended_at=d.ended_at,
        timeliness=d.timeliness,
        elapsed_working_days=d.elapsed_working_days,
        supplement_requests=d.supplement_requests,
        components_total=d.components_total,
        components_digitized=d.components_digitized,
        components_reused=d.components_reused,
        result_electronic=d.result_electronic,
        overdue=d.is_open and at > d.appointment_at,
        satisfied=d.satisfied,
    )
