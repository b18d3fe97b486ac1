"""Reception and the counter's actions, the unit of work: the counters' API and the importer's."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from pydantic import BaseModel

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
from shared.calendar import WorkingCalendar
from shared.contract import (
    DossierRated,
    DossierRefusedAtReception,
    DossierStatus,
    DossierWithdrawn,
    PaymentReceived,
    ResultReturned,
    SupplementReceived,
    dossier_key,
    encode,
    encode_dossier_received,
    new_event_fields,
)
from shared.ids import keyed_hash, uuid7
from shared.logging import get_logger
from shared.outbox import OutboxMessage
from shared.reference import ReferenceData, Unit

log = get_logger(__name__)

# The records below are built at every submission: plain slotted dataclasses, as a frozen one's
# `__init__` (a setattr per field through object) cost ~5 µs a submission.


@dataclass(slots=True)
class Arrival:
    """A dossier reaching a counter: which unit, when, the id it gets, who records it."""

    unit: Unit
    received_at: datetime
    dossier_id: UUID
    actor: str | None


@dataclass(slots=True)
class Admitted:
    """What admission adds: the procedure and competent unit, the clock's start, the appointment."""

    admission: domain.Admission
    clock_started_at: datetime
    appointment_at: datetime


@dataclass(slots=True)
class Decision:
    """Reception's verdict on one dossier, before its code is issued: what is stored and announced.

    Either `admitted` (DossierReceived) or `refusal_reason` (DossierRefusedAtReception, mẫu 03: the
    dossier never enters processing).
    """

    arrival: Arrival
    submission: domain.SubmissionIn
    competent_unit: str
    applicant_ref: str
    admitted: Admitted | None = None
    refusal_reason: str | None = None

    @property
    def status(self) -> DossierStatus:
        if self.admitted is None:
            return DossierStatus.REFUSED_AT_RECEPTION
        return DossierStatus.RECEIVED

    @property
    def appointment_at(self) -> datetime | None:
        return None if self.admitted is None else self.admitted.appointment_at


def decide(
    submission: domain.SubmissionIn,
    arrival: Arrival,
    *,
    reference: ReferenceData,
    calendar: WorkingCalendar,
    id_hash_key: bytes,
    refusal_reason: str | None = None,
) -> Decision:
    """Admit the submission, or record its refusal at the counter when `refusal_reason` is given;
    raises domain.Refused when the rules say no (a refusal is a record too: it is checked), and
    domain.UnitRefused when its competent unit is not in force that day. `arrival.unit` is the
    receiving unit as admitted at the arrival's instant (`domain.admit`)."""
    day = domain.reception_day(arrival.received_at)
    if refusal_reason is not None:
        errors = domain.check_refusal(submission, reference, day)
        if errors:
            raise domain.Refused(errors)
        competent = submission.competent_unit or arrival.unit.code
        applicant_ref = keyed_hash(submission.applicant.id_number, id_hash_key)
        return Decision(
            arrival, submission, competent, applicant_ref, refusal_reason=refusal_reason
        )
    verdict = domain.check_submission(submission, arrival.unit, reference, day)
    if isinstance(verdict, list):
        raise domain.Refused(verdict)
    applicant_ref = keyed_hash(submission.applicant.id_number, id_hash_key)
    at, procedure = arrival.received_at, verdict.procedure
    admitted = Admitted(
        verdict,
        clock_started_at=domain.clock_start_for(calendar, procedure, at),
        appointment_at=domain.appointment_for(calendar, procedure, at),
    )
    return Decision(arrival, submission, verdict.competent_unit.code, applicant_ref, admitted)


def announcement(decision: Decision, code: str) -> bytes:
    """The event announcing the decision (DossierReceived or DossierRefusedAtReception), carrying
    the dossier code."""
    arrival, submission = decision.arrival, decision.submission
    at = arrival.received_at
    if decision.admitted is None:
        assert decision.refusal_reason is not None
        return encode(
            DossierRefusedAtReception(
                **new_event_fields(
                    at,
                    arrival.dossier_id,
                    arrival.unit.code,
                    decision.competent_unit,
                    actor=arrival.actor,
                ),
                payload=domain.refusal_payload(
                    submission,
                    decision.refusal_reason,
                    code=code,
                    applicant_ref=decision.applicant_ref,
                    received_at=at,
                ),
            )
        )
    admitted = decision.admitted
    return encode_dossier_received(
        occurred_at=at,
        dossier_id=arrival.dossier_id,
        receiving_unit=arrival.unit.code,
        competent_unit=decision.competent_unit,
        actor=arrival.actor,
        payload=domain.received_payload(
            submission,
            admitted.admission,
            code=code,
            applicant_ref=decision.applicant_ref,
            received_at=at,
            appointment_at=admitted.appointment_at,
            clock_started_at=admitted.clock_started_at,
        ),
    )


def reception(
    decision: Decision,
    topic: str,
    *,
    idempotency_key: str | None,
    request_hash: str | None,
    given_code: str | None = None,
    then: Sequence[bytes] = (),
) -> Reception:
    """The dossier and its events as the store writes them in one statement. The code is the
    store's to issue (the unit's next of the day), unless the dossier brings its own (an import):
    the announcement is encoded once, around the placeholder the store replaces with the code.
    `then`: later events of the dossier (an import's timeline), written after it as they are."""
    arrival, submission = decision.arrival, decision.submission
    day = domain.reception_day(arrival.received_at)
    key = dossier_key(arrival.dossier_id)
    announced = announcement(decision, given_code or CODE_PLACEHOLDER)
    return Reception(
        dossier_id=arrival.dossier_id,
        receiving_unit=arrival.unit.code,
        competent_unit=decision.competent_unit,
        procedure_code=submission.procedure_code,
        channel=submission.channel.value,
        applicant_kind=submission.applicant.kind.value,
        applicant_ref=decision.applicant_ref,
        applicant_name=submission.applicant.name,
        received_at=arrival.received_at,
        appointment_at=decision.appointment_at,
        status=int(decision.status),
        refusal_reason=decision.refusal_reason,
        components=[c.model_dump() for c in submission.components],
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        received_by=arrival.actor or "",
        day=day,
        code_prefix=domain.dossier_code_prefix(arrival.unit.code, day),
        given_code=given_code,
        events=[
            CodedEvent.of(OutboxMessage(topic, key, announced)),
            *(CodedEvent.plain(OutboxMessage(topic, key, value)) for value in then),
        ],
    )


@dataclass(slots=True)
class Issued:
    """The stored dossier; `replayed` when it answers an earlier request with the same key."""

    dossier: StoredDossier
    replayed: bool = False


def request_hash(body: BaseModel) -> str:
    """The fingerprint telling a retry (same key, same request) from a reused key."""
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


async def submit(
    intake: Intake,
    caller: Caller,
    submission: domain.SubmissionIn,
    idempotency_key: str | None,
) -> Issued:
    """Receive a dossier at the caller's unit: its rules, code and appointment, the dossier and
    DossierReceived stored together (the receipt, mẫu 01)."""
    return await _issue(intake, caller, submission, idempotency_key, refusal_reason=None)


async def refuse(
    intake: Intake,
    caller: Caller,
    refusal: domain.RefusalIn,
    idempotency_key: str | None,
) -> Issued:
    """Record a dossier refused at the caller's unit with its reason (the refusal note, mẫu 03)."""
    return await _issue(intake, caller, refusal, idempotency_key, refusal_reason=refusal.reason)


async def _issue(
    intake: Intake,
    caller: Caller,
    body: domain.SubmissionIn,
    idempotency_key: str | None,
    *,
    refusal_reason: str | None,
) -> Issued:
    # Only a keyed request can be replayed, so only a keyed one needs its fingerprint. A retry
    # answers the receipt already issued, even once its unit has ended since. A key is the
    # counter's own (the token's subject) within its unit: two counters picking the same key
    # never get each other's receipt.
    fingerprint: str | None = None
    if idempotency_key is not None:
        fingerprint = request_hash(body)
        earlier = await intake.store.find_by_idempotency_key(
            caller.unit, caller.subject, idempotency_key
        )
        if earlier is not None:
            return _replay(earlier, fingerprint)
    reference = intake.reference  # one data version for the whole request (a reload swaps it)
    now = datetime.now(UTC)
    # The token's unit receives only while it is in force (the map of 30 June 2025 ended).
    unit = domain.admit(reference, caller.unit, now, field="unit")
    arrival = Arrival(unit, now, uuid7(), caller.subject)
    decision = decide(
        body,
        arrival,
        reference=reference,
        calendar=intake.calendar,
        id_hash_key=intake.id_hash_key,
        refusal_reason=refusal_reason,
    )
    stored = await intake.writer.receive(
        reception(
            decision,
            intake.topics.dossier_events,
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
        )
    )
    if stored is None:
        # A concurrent request with the same Idempotency-Key stored its dossier first.
        assert idempotency_key is not None
        earlier = await intake.store.find_by_idempotency_key(
            unit.code, caller.subject, idempotency_key
        )
        assert earlier is not None
        return _replay(earlier, fingerprint)
    log.info(
        "dossier received" if refusal_reason is None else "dossier refused at reception",
        dossier_code=stored.code,
        unit=unit.code,
        procedure=stored.procedure_code,
    )
    return Issued(stored)


def _replay(earlier: StoredDossier, fingerprint: str | None) -> Issued:
    if earlier.request_hash != fingerprint:
        raise domain.IdempotencyKeyReused
    return Issued(earlier, replayed=True)


async def dossier(intake: Intake, caller: Caller, dossier_id: UUID) -> StoredDossier:
    """A dossier the caller's unit received; any other unit's is not found."""
    stored = await intake.store.get(caller.unit, dossier_id)
    if stored is None:
        raise domain.DossierNotFound
    return stored


CounterAction = (
    SupplementReceived | ResultReturned | PaymentReceived | DossierWithdrawn | DossierRated
)


async def record_action(
    intake: Intake,
    caller: Caller,
    dossier_id: UUID,
    action: type[CounterAction],
    payload: BaseModel | None = None,
) -> CounterAction:
    """Publish what happened at the counter, if the dossier's status allows it (processing has
    the last word on the status); a dossier is rated once."""
    stored = await dossier(intake, caller, dossier_id)
    fields = new_event_fields(
        datetime.now(UTC),
        stored.id,
        stored.receiving_unit,
        stored.competent_unit,
        actor=caller.subject,
    )
    event = action.model_validate(fields if payload is None else {**fields, "payload": payload})
    problem = domain.counter_action_problem(
        event.type, DossierStatus(stored.status), rated=stored.rated
    )
    if problem is not None:
        raise domain.ActionNotAllowed(problem)
    rated = isinstance(event, DossierRated)
    message = OutboxMessage(intake.topics.dossier_events, dossier_key(stored.id), encode(event))
    try:
        await intake.store.record_action(caller.unit, stored.id, message, rated=rated)
    except AlreadyRated as exc:
        raise domain.ActionNotAllowed("the dossier was already rated") from exc
    log.info("counter action", action=event.type, dossier_code=stored.code, unit=caller.unit)
    return event
