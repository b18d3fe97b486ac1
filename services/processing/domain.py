"""The dossier state machine and deadline rules: pure, no I/O.

Statuses are the interoperable codes of DossierStatus. Every change, whether it comes from a counter
event, an officer's action in the API or a historical import, goes through `apply`; what it cannot
accept raises Rejected with the reason (the consumer dead-letters it, the API answers 409).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
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
    DossierTransferred,
    DossierWithdrawn,
    PaymentReceived,
    PaymentRequested,
    ProcessingStarted,
    ResultDigitized,
    ResultReturned,
    SupplementReceived,
    SupplementRequested,
)

S = DossierStatus
# Where an officer can still act on the substance of the dossier.
ACTIVE = frozenset({S.RECEIVED, S.PROCESSING, S.PAYMENT_REQUESTED})


class ProcessingError(Exception):
    """The root of the processing service's own errors."""


class NotHandledHere(ProcessingError):
    """No dossier with this id is handled by the officer's unit (or none exists)."""


class Rejected(ProcessingError):
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
    # When the working clock started (DOMAIN.md): the reception, or 08:00 of the next working day
    # for a reception on a non-working day or after the cut-off. None in states saved before it
    # was kept (see `clock_start`).
    clock_started_at: datetime | None = None
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
    payment_due_vnd: int = 0
    payment_paid_vnd: int = 0
    transfers: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def due_at(self) -> datetime | None:
        """From when the dossier counts as overdue while open; None while a supplementation wait
        pauses its clock.

        More than one supplementation request counts as overdue at once (index rule). While a
        request is outstanding its instant is the end (DOMAIN.md), so a request made after the
        appointment leaves the dossier overdue; one made before pauses the clock.
        """
        if self.supplement_requests > 1:
            return self.received_at
        if self.status is S.SUPPLEMENT_REQUESTED:
            asked = self.supplement_requested_at
            if asked is None or asked <= self.appointment_at:
                return None
        return self.appointment_at

    def overdue_at(self, now: datetime) -> bool:
        if not self.is_open:
            return False
        if self.supplement_requests > 1:  # from the second request's instant on, whatever `now`
            return True
        due = self.due_at
        return due is not None and now > due

    @property
    def watched(self) -> bool:
        """The overdue watch still has to look at it: open, not yet reported, its clock running."""
        return self.is_open and not self.overdue_notified and self.due_at is not None

    @property
    def payment_outstanding_vnd(self) -> int:
        return max(self.payment_due_vnd - self.payment_paid_vnd, 0)

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


def clock_start(dossier: Dossier, calendar: WorkingCalendar) -> datetime:
    """When the dossier's working clock started; for a state saved before it was kept, the
    reception moved to the next working day's 08:00 if it fell on a non-working day.

    Such a state's procedure cut-off is not applied: the rules get the calendar only, and the
    reference data are the API's and the consumer's context, which hand the rules nothing else
    (a reception after 15:00 of a cut-off procedure, open since before the start was kept, is
    credited with the rest of that afternoon)."""
    if dossier.clock_started_at is not None:
        return dossier.clock_started_at
    return calendar.start_of_clock(dossier.received_at, has_cutoff=False)


def receive(event: DossierReceived, calendar: WorkingCalendar) -> Dossier:
    p = event.payload
    appointment = max(p.appointment_at, p.received_at)
    # Intake, which knows the procedure's cut-off, says when the clock started. An event written
    # before it did: the appointment is the start plus the procedure's working time, so the start
    # is the appointment rewound by it (a part-day procedure's exact time rides in
    # `processing_days_decimal`), which assumes intake's calendar was this one.
    started = (
        p.clock_started_at
        if p.clock_started_at is not None
        else calendar.rewind(appointment, p.processing_time_days * DAY)
    )
    return Dossier(
        id=event.dossier_id,
        code=p.dossier_code,
        procedure_code=p.procedure_code,
        channel=p.channel,
        receiving_unit=event.receiving_unit,
        competent_unit=event.competent_unit,
        status=S.RECEIVED,
        received_at=p.received_at,
        appointment_at=appointment,
        clock_started_at=min(max(started, p.received_at), appointment),
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
    elapsed = calendar.elapsed_working_days(
        clock_start(dossier, calendar), effective, dossier.paused
    )
    return replace(
        dossier,
        status=status,
        ended_at=effective,
        timeliness=classify(
            effective, dossier.appointment_at, supplement_requests=dossier.supplement_requests
        ),
        elapsed_working_days=elapsed,
    )


def _require(dossier: Dossier, allowed: frozenset[DossierStatus], action: str) -> None:
    if dossier.status not in allowed:
        names = ", ".join(sorted(s.name.lower() for s in allowed))
        raise Rejected(
            f"cannot {action} a dossier that is {dossier.status.name.lower()} (allowed: {names})"
        )


def _create(event: DossierEvent, calendar: WorkingCalendar) -> Change:
    if isinstance(event, DossierReceived):
        return Change(receive(event, calendar), None, "received at the counter")
    if isinstance(event, DossierRefusedAtReception):
        return Change(
            refused_at_reception(event), None, f"refused at reception: {event.payload.reason}"
        )
    raise Rejected(f"unknown dossier: {event.type} before DossierReceived")


# One rule per event type: each takes the dossier, the event and the calendar, and returns the
# Change or raises Rejected. The mypy-visible event type of each rule is checked by `apply`'s
# dispatch on the type tag (an isinstance chain on pydantic classes costs an ABC check each).


def _start(d: Dossier, _event: ProcessingStarted, _cal: WorkingCalendar) -> Change:
    _require(d, frozenset({S.RECEIVED}), "start processing")
    return Change(replace(d, status=S.PROCESSING), d.status, "processing started")


def _request_supplement(d: Dossier, event: SupplementRequested, _cal: WorkingCalendar) -> Change:
    _require(d, ACTIVE, "request a supplement for")
    after = replace(
        d,
        status=S.SUPPLEMENT_REQUESTED,
        supplement_requests=d.supplement_requests + 1,
        supplement_requested_at=max(event.occurred_at, d.received_at),
    )
    return Change(after, d.status, f"supplementation requested: {event.payload.reason}")


def _receive_supplement(d: Dossier, event: SupplementReceived, cal: WorkingCalendar) -> Change:
    _require(d, frozenset({S.SUPPLEMENT_REQUESTED}), "receive a supplement for")
    assert d.supplement_requested_at is not None
    pause = cal.paused_time(clock_start(d, cal), d.supplement_requested_at, event.occurred_at)
    after = replace(
        d,
        # Back to waiting for the fee if one asked for before the supplement is still unpaid.
        status=S.PAYMENT_REQUESTED if d.payment_outstanding_vnd else S.PROCESSING,
        paused=d.paused + pause,
        supplement_requested_at=None,
        appointment_at=cal.advance(d.appointment_at, pause),
    )
    return Change(after, d.status, "supplement received")


def _resolve(d: Dossier, event: DossierResolved, cal: WorkingCalendar) -> Change:
    _require(d, ACTIVE, "resolve")
    p = event.payload
    if not p.approved and not p.reason:
        raise Rejected("a refusal needs a reason")
    if p.approved and d.payment_outstanding_vnd:
        raise Rejected(
            f"{d.payment_outstanding_vnd} VND requested for this dossier is not paid yet"
        )
    electronic = p.approved and (p.result_electronic or not d.result_is_paper)
    ended = end(d, S.RESOLVED, event.occurred_at, cal)
    note = "resolved: approved" if p.approved else f"resolved: refused ({p.reason})"
    return Change(replace(ended, approved=p.approved, result_electronic=electronic), d.status, note)


def _digitize_result(d: Dossier, _event: ResultDigitized, _cal: WorkingCalendar) -> Change:
    _require(d, frozenset({S.RESOLVED, S.RESULT_RETURNED}), "digitize the result of")
    if not d.approved:
        raise Rejected("a refused dossier has no result to digitize")
    if d.result_electronic:
        raise Rejected("the result is already electronic")
    return Change(replace(d, result_electronic=True), d.status, "result digitized")


def _return_result(d: Dossier, event: ResultReturned, cal: WorkingCalendar) -> Change:
    _require(d, frozenset({S.RESOLVED}), "return the result of")
    ended = end(d, S.RESULT_RETURNED, event.occurred_at, cal)
    return Change(ended, d.status, "result returned to the applicant")


def _stop(d: Dossier, event: DossierStopped, cal: WorkingCalendar) -> Change:
    _require(d, OPEN_STATUSES, "stop")
    ended = end(d, S.STOPPED, event.occurred_at, cal)
    return Change(ended, d.status, f"stopped: {event.payload.reason}")


def _withdraw(d: Dossier, event: DossierWithdrawn, cal: WorkingCalendar) -> Change:
    _require(d, OPEN_STATUSES, "withdraw")
    ended = end(d, S.WITHDRAWN, event.occurred_at, cal)
    return Change(ended, d.status, f"withdrawn: {event.payload.reason}")


def _apologize(d: Dossier, event: ApologyIssued, _cal: WorkingCalendar) -> Change:
    at = event.occurred_at
    if not d.overdue_at(at):
        raise Rejected("an apology is issued only for an overdue open dossier")
    if event.payload.new_appointment_at <= at:
        raise Rejected("the new appointment must be in the future")
    after = replace(d, apology_issued_at=at, promised_at=event.payload.new_appointment_at)
    return Change(after, d.status, f"apology issued, new appointment {after.promised_at}")


def _rate(d: Dossier, event: DossierRated, _cal: WorkingCalendar) -> Change:
    if d.status is S.REFUSED_AT_RECEPTION:
        raise Rejected("a dossier refused at reception cannot be rated")
    if d.satisfied is not None:
        raise Rejected("dossier already rated")
    verdict = "satisfied" if event.payload.satisfied else "unsatisfied"
    return Change(replace(d, satisfied=event.payload.satisfied), d.status, f"rated: {verdict}")


def _request_payment(d: Dossier, event: PaymentRequested, _cal: WorkingCalendar) -> Change:
    # The clock keeps running while the applicant pays: only a supplementation wait is
    # excluded from processing time (DOMAIN.md).
    _require(d, frozenset({S.RECEIVED, S.PROCESSING}), "request a payment for")
    amount = event.payload.amount_vnd
    # An earlier overpayment is not credited to a new request (refunds are settled apart), so
    # a request always leaves `amount` outstanding.
    due = max(d.payment_due_vnd, d.payment_paid_vnd) + amount
    after = replace(d, status=S.PAYMENT_REQUESTED, payment_due_vnd=due)
    return Change(after, d.status, f"payment of {amount} VND requested: {event.payload.reason}")


def _receive_payment(d: Dossier, event: PaymentReceived, _cal: WorkingCalendar) -> Change:
    # Money handed over at the counter is always recorded, whatever the status by now (the
    # counter's view of it lags processing's): only a dossier that never entered processing
    # has nothing to pay for.
    if d.status is S.REFUSED_AT_RECEPTION:
        raise Rejected("a dossier refused at reception has nothing to pay for")
    paid = d.payment_paid_vnd + event.payload.amount_vnd
    amount = event.payload.amount_vnd
    if d.status is not S.PAYMENT_REQUESTED:
        return Change(
            replace(d, payment_paid_vnd=paid), d.status, f"payment received: {amount} VND"
        )
    if paid < d.payment_due_vnd:
        after = replace(d, payment_paid_vnd=paid)
        return Change(after, d.status, f"partial payment: {paid} of {d.payment_due_vnd} VND")
    after = replace(d, status=S.PROCESSING, payment_paid_vnd=paid)
    return Change(after, d.status, f"payment received: {amount} VND")


def _transfer(d: Dossier, event: DossierTransferred, _cal: WorkingCalendar) -> Change:
    _require(d, ACTIVE | {S.SUPPLEMENT_REQUESTED}, "transfer")
    to_unit = event.payload.to_unit
    if to_unit == d.competent_unit:
        raise Rejected(f"the dossier is already handled by {to_unit}")
    # The appointment, the pauses and the reception instant stay: a transfer never restarts
    # the deadline (DOMAIN.md, Transfer).
    after = replace(d, competent_unit=to_unit, transfers=d.transfers + 1)
    note = f"transferred from {d.competent_unit} to {to_unit}: {event.payload.reason}"
    return Change(after, d.status, note)


_Rule = Callable[[Dossier, Any, WorkingCalendar], Change]
_RULES: dict[str, _Rule] = {
    "ProcessingStarted": _start,
    "SupplementRequested": _request_supplement,
    "SupplementReceived": _receive_supplement,
    "DossierResolved": _resolve,
    "ResultDigitized": _digitize_result,
    "ResultReturned": _return_result,
    "DossierStopped": _stop,
    "DossierWithdrawn": _withdraw,
    "ApologyIssued": _apologize,
    "DossierRated": _rate,
    "PaymentRequested": _request_payment,
    "PaymentReceived": _receive_payment,
    "DossierTransferred": _transfer,
}


def apply(dossier: Dossier | None, event: DossierEvent, calendar: WorkingCalendar) -> Change:
    """Apply one event to a dossier (None before its first event); raises Rejected."""
    if dossier is None:
        return _create(event, calendar)
    rule = _RULES.get(event.type)
    if rule is None:
        raise Rejected("dossier already received")
    return rule(dossier, event, calendar)


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
        "supplement_requested_at": d.supplement_requested_at,
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
