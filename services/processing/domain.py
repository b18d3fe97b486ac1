"""The dossier state machine and deadline rules: pure, no I/O.

Statuses are the interoperable codes of DossierStatus. Every change, whether it comes from a counter
event, an officer's action in the API or a historical import, goes through `apply`; what it cannot
accept raises Rejected with the reason (the consumer dead-letters it, the API answers 409).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from shared.calendar import DAY, Timeliness, WorkingCalendar, classify
from shared.contract import (
    OPEN_STATUSES,
    ApologyIssued,
    Channel,
    DossierEvent,
    DossierRated,
    DossierReceived,
    DossierRefusedAtReception,
    DossierResolved,
    DossierStatus,
    DossierStopped,
    DossierWithdrawn,
    ProcessingStarted,
    ResultDigitized,
    ResultReturned,
    SupplementReceived,
    SupplementRequested,
)

S = DossierStatus
# Where an officer can still act on the substance of the dossier.
ACTIVE = frozenset({S.RECEIVED, S.PROCESSING, S.PAYMENT_REQUESTED})


class Rejected(Exception):
    """The action is not allowed in the dossier's current state; the message says why."""


# Not frozen: a frozen dataclass's __init__ sets each of its 25 fields through
# object.__setattr__, and `replace` builds one per applied event (a third of the state machine's
# time). The rules never change a Dossier in place; they `replace` it.
@dataclass(slots=True)
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
    approved: bool | None = None
    result_electronic: bool | None = None
    satisfied: bool | None = None
    overdue_notified: bool = False
    apology_issued_at: datetime | None = None
    promised_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def overdue_at(self, now: datetime) -> bool:
        """Open and past the appointment; waiting for a supplement pauses the clock."""
        return (
            self.is_open and self.status is not S.SUPPLEMENT_REQUESTED and now > self.appointment_at
        )

    @property
    def digitized(self) -> bool:
        """Components digitized at reception AND an electronic result (DOMAIN.md, Digitization)."""
        return (
            self.components_total > 0
            and self.components_digitized == self.components_total
            and bool(self.result_electronic)
        )


@dataclass(frozen=True, slots=True)
class Change:
    """The dossier after one event, with what happened for the timeline (the control slip)."""

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
        appointment_at=max(p.appointment_at, p.received_at),
        components_total=len(p.components),
        components_digitized=sum(c.digitized for c in p.components),
        components_reused=sum(c.reused for c in p.components),
        result_is_paper=p.result_is_paper,
    )


def refused_at_reception(event: DossierRefusedAtReception) -> Dossier:
    p = event.payload
    return Dossier(
        id=event.dossier_id,
        code=p.dossier_code,
        procedure_code=p.procedure_code,
        channel=p.channel,
        receiving_unit=event.receiving_unit,
        competent_unit=event.competent_unit,
        status=S.REFUSED_AT_RECEPTION,
        received_at=p.received_at,
        appointment_at=p.received_at,
        ended_at=p.received_at,
        elapsed_working_days=0.0,
    )


def end(
    dossier: Dossier, status: DossierStatus, at: datetime, calendar: WorkingCalendar
) -> Dossier:
    """Close processing: the first of resolved, returned, stopped or withdrawn sets the end."""
    if dossier.ended_at is not None:
        return replace(dossier, status=status)
    # While a supplementation request is outstanding, its instant is the end (index rule).
    effective = dossier.supplement_requested_at or max(at, dossier.received_at)
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


def _require(dossier: Dossier, allowed: frozenset[DossierStatus], action: str) -> None:
    if dossier.status not in allowed:
        names = ", ".join(sorted(s.name.lower() for s in allowed))
        raise Rejected(
            f"cannot {action} a dossier that is {dossier.status.name.lower()} (allowed: {names})"
        )


def _create(event: DossierEvent) -> Change:
    if isinstance(event, DossierReceived):
        return Change(receive(event), None, "received at the counter")
    if isinstance(event, DossierRefusedAtReception):
        return Change(
            refused_at_reception(event), None, f"refused at reception: {event.payload.reason}"
        )
    raise Rejected(f"unknown dossier: {event.type} before DossierReceived")


def apply(dossier: Dossier | None, event: DossierEvent, calendar: WorkingCalendar) -> Change:  # noqa: PLR0911, PLR0912
    """Apply one event to a dossier (None before its first event); raises Rejected."""
    if dossier is None:
        return _create(event)
    if isinstance(event, DossierReceived | DossierRefusedAtReception):
        raise Rejected("dossier already received")
    at = event.occurred_at
    before = dossier.status
    d = dossier
    if isinstance(event, ProcessingStarted):
        _require(d, frozenset({S.RECEIVED}), "start processing")
        return Change(replace(d, status=S.PROCESSING), before, "processing started")
    if isinstance(event, SupplementRequested):
        _require(d, ACTIVE, "request a supplement for")
        after = replace(
            d,
            status=S.SUPPLEMENT_REQUESTED,
            supplement_requests=d.supplement_requests + 1,
            supplement_requested_at=max(at, d.received_at),
        )
        return Change(after, before, f"supplementation requested: {event.payload.reason}")
    if isinstance(event, SupplementReceived):
        _require(d, frozenset({S.SUPPLEMENT_REQUESTED}), "receive a supplement for")
        assert d.supplement_requested_at is not None
        pause = calendar.working_time(d.supplement_requested_at, at)
        after = replace(
            d,
            status=S.PROCESSING,
            paused=d.paused + pause,
            supplement_requested_at=None,
            appointment_at=calendar.advance(d.appointment_at, pause),
        )
        return Change(after, before, "supplement received")
    if isinstance(event, DossierResolved):
        _require(d, ACTIVE, "resolve")
        p = event.payload
        if not p.approved and not p.reason:
            raise Rejected("a refusal needs a reason")
        electronic = p.approved and (p.result_electronic or not d.result_is_paper)
        ended = end(d, S.RESOLVED, at, calendar)
        note = "resolved: approved" if p.approved else f"resolved: refused ({p.reason})"
        return Change(
            replace(ended, approved=p.approved, result_electronic=electronic), before, note
        )
    if isinstance(event, ResultDigitized):
        _require(d, frozenset({S.RESOLVED, S.RESULT_RETURNED}), "digitize the result of")
        if not d.approved:
            raise Rejected("a refused dossier has no result to digitize")
        if d.result_electronic:
            raise Rejected("the result is already electronic")
        return Change(replace(d, result_electronic=True), before, "result digitized")
    if isinstance(event, ResultReturned):
        _require(d, frozenset({S.RESOLVED}), "return the result of")
        return Change(
            end(d, S.RESULT_RETURNED, at, calendar), before, "result returned to the applicant"
        )
    if isinstance(event, DossierStopped):
        _require(d, OPEN_STATUSES, "stop")
        return Change(end(d, S.STOPPED, at, calendar), before, f"stopped: {event.payload.reason}")
    if isinstance(event, DossierWithdrawn):
        _require(d, OPEN_STATUSES, "withdraw")
        return Change(
            end(d, S.WITHDRAWN, at, calendar), before, f"withdrawn: {event.payload.reason}"
        )
    if isinstance(event, ApologyIssued):
        if not d.overdue_at(at):
            raise Rejected("an apology is issued only for an open dossier past its appointment")
        if event.payload.new_appointment_at <= at:
            raise Rejected("the new appointment must be in the future")
        after = replace(d, apology_issued_at=at, promised_at=event.payload.new_appointment_at)
        return Change(after, before, f"apology issued, new appointment {after.promised_at}")
    assert isinstance(event, DossierRated)
    if d.status is S.REFUSED_AT_RECEPTION:
        raise Rejected("a dossier refused at reception cannot be rated")
    if d.satisfied is not None:
        raise Rejected("dossier already rated")
    verdict = "satisfied" if event.payload.satisfied else "unsatisfied"
    return Change(replace(d, satisfied=event.payload.satisfied), before, f"rated: {verdict}")


def mark_overdue(dossier: Dossier, now: datetime) -> Change:
    """The overdue watch noticed the appointment passed while open: emitted once."""
    if dossier.overdue_notified or not dossier.overdue_at(now):
        raise Rejected("not newly overdue")
    return Change(replace(dossier, overdue_notified=True), dossier.status, "overdue")


def status_payload(change: Change, at: datetime) -> dict[str, object]:
    """The fields of StatusChangedPayload (the contract), as plain values for the encoder."""
    d = change.dossier
    return {
        "dossier_code": d.code,
        "procedure_code": d.procedure_code,
        "channel": d.channel,
        "status": d.status,
        "previous_status": change.previous_status,
        "received_at": d.received_at,
        "appointment_at": d.appointment_at,
        "ended_at": d.ended_at,
        "timeliness": d.timeliness,
        "elapsed_working_days": d.elapsed_working_days,
        "supplement_requests": d.supplement_requests,
        "components_total": d.components_total,
        "components_digitized": d.components_digitized,
        "components_reused": d.components_reused,
        "result_electronic": d.result_electronic,
        "approved": d.approved,
        "digitized": d.digitized,
        "overdue": d.overdue_at(at),
        "apology_issued": d.apology_issued_at is not None,
        "satisfied": d.satisfied,
    }
