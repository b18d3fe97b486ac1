"""Reception's unit of work: its verdicts, the event it announces, what it stores and replays."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

import pytest

from services.intake import domain, workflow
from services.intake.context import Intake
from services.intake.store import (
    CODE_PLACEHOLDER,
    AlreadyRated,
    IntakeStore,
    Reception,
    StoredDossier,
)
from services.intake.writer import ReceptionWriter
from shared.auth import Caller
from shared.calendar import WorkingCalendar
from shared.contract import (
    DossierRated,
    DossierReceived,
    DossierRefusedAtReception,
    DossierStatus,
    DossierWithdrawn,
    PaymentPayload,
    PaymentReceived,
    RatingPayload,
    ReasonPayload,
    SupplementReceived,
    Topics,
    decode_dossier_event,
)
from shared.outbox import OutboxMessage
from shared.reference import REFERENCE_DIR, load_reference
from tools.samples import sample_submission

REF = load_reference(REFERENCE_DIR)
CAL = WorkingCalendar.vietnam(range(2025, 2028))
KEY = b"k"
TOPICS = Topics()
AT = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)  # a Friday, 09:30 in Hà Nội


def submission(seed: int = 1) -> tuple[str, domain.SubmissionIn]:
    unit, body = sample_submission(random.Random(seed))
    return unit, domain.SubmissionIn.model_validate(body)


def arrival(unit: str, n: int = 1) -> workflow.Arrival:
    return workflow.Arrival(
        domain.admit(REF, unit, AT, field="unit"), AT, UUID(int=n), actor="counter-1"
    )


def admitted(seed: int = 1) -> workflow.Decision:
    unit, body = submission(seed)
    return workflow.decide(body, arrival(unit), reference=REF, calendar=CAL, id_hash_key=KEY)


def refused(reason: str = "Thiếu tờ khai") -> workflow.Decision:
    unit, body = submission()
    return workflow.decide(
        body, arrival(unit), reference=REF, calendar=CAL, id_hash_key=KEY, refusal_reason=reason
    )


def test_an_admitted_dossier_is_announced_as_the_counter_received_it() -> None:
    decision = admitted()
    assert decision.status is DossierStatus.RECEIVED
    assert decision.admitted is not None
    procedure = decision.admitted.admission.procedure
    assert decision.appointment_at == domain.appointment_for(CAL, procedure, AT)
    event = decode_dossier_event(workflow.announcement(decision, "T-261127-0001"))
    assert isinstance(event, DossierReceived)
    assert (event.dossier_id, event.occurred_at, event.actor) == (UUID(int=1), AT, "counter-1")
    assert event.receiving_unit == decision.arrival.unit.code
    assert event.competent_unit == decision.competent_unit
    assert event.payload.dossier_code == "T-261127-0001"
    assert event.payload.appointment_at == decision.appointment_at
    assert event.payload.clock_started_at == domain.clock_start_for(CAL, procedure, AT)
    # The applicant is named by a keyed hash, never by the ID itself.
    assert (
        decision.submission.applicant.id_number not in workflow.announcement(decision, "c").decode()
    )


def test_a_submission_breaking_the_rules_is_refused_field_by_field() -> None:
    unit, body = submission()
    wrong = body.model_copy(update={"procedure_code": "9.999999"})
    with pytest.raises(domain.Refused) as refused_:
        workflow.decide(wrong, arrival(unit), reference=REF, calendar=CAL, id_hash_key=KEY)
    assert refused_.value.errors == [
        domain.FieldError("procedure_code", "not in the procedure catalog")
    ]


def test_a_refusal_at_the_counter_is_a_checked_record_that_never_enters_processing() -> None:
    decision = refused()
    assert decision.status is DossierStatus.REFUSED_AT_RECEPTION
    assert decision.appointment_at is None
    assert decision.competent_unit == decision.arrival.unit.code
    event = decode_dossier_event(workflow.announcement(decision, "T-261127-0002"))
    assert isinstance(event, DossierRefusedAtReception)
    assert event.payload.reason == "Thiếu tờ khai"
    assert event.payload.dossier_code == "T-261127-0002"
    unit, body = submission()
    nowhere = body.model_copy(update={"competent_unit": "T99.X99999"})
    with pytest.raises(domain.UnitRefused) as refused_:
        workflow.decide(
            nowhere, arrival(unit), reference=REF, calendar=CAL, id_hash_key=KEY, refusal_reason="x"
        )
    assert (refused_.value.field, refused_.value.reason) == (
        "competent_unit",
        "unknown administrative unit",
    )


def spliced(reception: Reception, code: str) -> list[bytes]:
    """The events' bytes as the store writes them once it has issued `code`."""
    return [
        e.before if e.after is None else e.before + code.encode() + e.after
        for e in reception.events
    ]


def test_the_store_splices_the_code_it_issues_into_the_announcement_only() -> None:
    decision = admitted()
    later = b'{"a later event": true}'
    reception = workflow.reception(
        decision, TOPICS.dossier_events, idempotency_key="k1", request_hash="h", then=[later]
    )
    assert reception.given_code is None
    assert reception.status == int(DossierStatus.RECEIVED)
    assert reception.code_prefix.startswith(f"{decision.arrival.unit.code}-261127-")
    first, after = spliced(reception, "T-261127-0042")
    event = decode_dossier_event(first)
    assert isinstance(event, DossierReceived)
    assert event.payload.dossier_code == "T-261127-0042"
    assert after == later
    assert CODE_PLACEHOLDER.encode() not in reception.events[1].before


def test_a_dossier_bringing_its_own_code_keeps_it() -> None:
    reception = workflow.reception(
        refused(),
        TOPICS.dossier_events,
        idempotency_key=None,
        request_hash=None,
        given_code="OLD-1",
    )
    assert reception.given_code == "OLD-1"
    assert reception.refusal_reason == "Thiếu tờ khai"
    assert reception.appointment_at is None
    (event,) = reception.events
    assert event.after is None
    decoded = decode_dossier_event(event.before)
    assert isinstance(decoded, DossierRefusedAtReception)
    assert decoded.payload.dossier_code == "OLD-1"


def stored(
    reception: Reception, *, status: int | None = None, rated: bool = False
) -> StoredDossier:
    return StoredDossier(
        reception.dossier_id,
        "T-261127-0001",
        reception.receiving_unit,
        reception.competent_unit,
        reception.procedure_code,
        reception.channel,
        reception.received_at,
        reception.appointment_at,
        reception.status if status is None else status,
        rated,
        reception.refusal_reason,
        reception.request_hash,
    )


@dataclass
class FakeStore:
    by_key: dict[tuple[str, str, str], StoredDossier] = field(default_factory=dict)
    by_id: dict[UUID, StoredDossier] = field(default_factory=dict)
    actions: list[tuple[OutboxMessage, bool]] = field(default_factory=list)
    already_rated: bool = False

    async def find_by_idempotency_key(
        self, unit: str, counter: str, key: str
    ) -> StoredDossier | None:
        return self.by_key.get((unit, counter, key))

    async def get(self, unit: str, dossier_id: UUID) -> StoredDossier | None:
        found = self.by_id.get(dossier_id)
        return found if found is not None and found.receiving_unit == unit else None

    async def record_action(
        self, unit: str, dossier_id: UUID, message: OutboxMessage, *, rated: bool = False
    ) -> None:
        if rated and self.already_rated:
            raise AlreadyRated
        self.actions.append((message, rated))


@dataclass
class FakeWriter:
    """Stores as the writer does; `lose` plays a concurrent request with the same key winning."""

    store: FakeStore
    lose: bool = False
    received: list[Reception] = field(default_factory=list)

    async def receive(self, reception: Reception) -> StoredDossier | None:
        self.received.append(reception)
        dossier = stored(reception)
        if reception.idempotency_key is not None:
            key = (reception.receiving_unit, reception.received_by, reception.idempotency_key)
            if self.lose:
                self.store.by_key[key] = dossier
                return None
            self.store.by_key[key] = dossier
        self.store.by_id[dossier.id] = dossier
        return dossier


def intake(store: FakeStore, writer: FakeWriter | None = None) -> Intake:
    return Intake(
        cast(IntakeStore, store),
        REF,
        CAL,
        KEY,
        ["token-key"],
        TOPICS,
        cast(ReceptionWriter, writer or FakeWriter(store)),
    )


def counter(unit: str, subject: str = "counter-1") -> Caller:
    return Caller(unit=unit, role="counter", subject=subject)


async def test_a_retry_with_the_same_key_replays_the_receipt_and_stores_nothing() -> None:
    unit, body = submission()
    store = FakeStore()
    writer = FakeWriter(store)
    ctx = intake(store, writer)
    first = await workflow.submit(ctx, counter(unit), body, "key-1")
    assert not first.replayed
    again = await workflow.submit(ctx, counter(unit), body, "key-1")
    assert again == workflow.Issued(first.dossier, replayed=True)
    assert len(writer.received) == 1
    other = body.model_copy(update={"applicant": body.applicant.model_copy(update={"name": "B"})})
    with pytest.raises(domain.IdempotencyKeyReused):
        await workflow.submit(ctx, counter(unit), other, "key-1")


async def test_an_unkeyed_submission_is_always_a_new_dossier() -> None:
    unit, body = submission()
    store = FakeStore()
    writer = FakeWriter(store)
    ctx = intake(store, writer)
    issued = [await workflow.submit(ctx, counter(unit), body, None) for _ in "ab"]
    assert not any(i.replayed for i in issued)
    assert len({r.dossier_id for r in writer.received}) == 2
    assert all(r.request_hash is None for r in writer.received)


async def test_losing_the_race_for_a_key_answers_the_winners_receipt() -> None:
    unit, body = submission()
    store = FakeStore()
    ctx = intake(store, FakeWriter(store, lose=True))
    issued = await workflow.submit(ctx, counter(unit), body, "key-2")
    assert issued.replayed
    assert issued.dossier == store.by_key[(unit, "counter-1", "key-2")]


async def test_two_counters_of_a_unit_with_the_same_key_get_their_own_receipts() -> None:
    unit, body = submission()
    store = FakeStore()
    writer = FakeWriter(store)
    ctx = intake(store, writer)
    mine = await workflow.submit(ctx, counter(unit, "counter-1"), body, "key-3")
    theirs = await workflow.submit(ctx, counter(unit, "counter-2"), body, "key-3")
    assert not mine.replayed and not theirs.replayed
    assert mine.dossier.id != theirs.dossier.id
    assert [r.received_by for r in writer.received] == ["counter-1", "counter-2"]
    again = await workflow.submit(ctx, counter(unit, "counter-2"), body, "key-3")
    assert again == workflow.Issued(theirs.dossier, replayed=True)


async def test_a_refusal_is_stored_with_its_reason_and_no_appointment() -> None:
    unit, body = submission()
    refusal = domain.RefusalIn.model_validate({**body.model_dump(), "reason": "Thiếu tờ khai"})
    store = FakeStore()
    writer = FakeWriter(store)
    issued = await workflow.refuse(intake(store, writer), counter(unit), refusal, None)
    assert issued.dossier.status == int(DossierStatus.REFUSED_AT_RECEPTION)
    (reception,) = writer.received
    assert (reception.refusal_reason, reception.appointment_at) == ("Thiếu tờ khai", None)


async def received_dossier(store: FakeStore, unit: str, body: domain.SubmissionIn) -> StoredDossier:
    return (await workflow.submit(intake(store), counter(unit), body, None)).dossier


async def test_a_counter_action_is_published_when_the_status_allows_it() -> None:
    unit, body = submission()
    store = FakeStore()
    dossier = await received_dossier(store, unit, body)
    ctx = intake(store)
    event = await workflow.record_action(
        ctx, counter(unit), dossier.id, DossierWithdrawn, ReasonPayload(reason="đổi ý")
    )
    assert isinstance(event, DossierWithdrawn)
    assert (event.dossier_id, event.actor) == (dossier.id, "counter-1")
    ((message, rated),) = store.actions
    assert not rated
    assert decode_dossier_event(message.value) == event
    with pytest.raises(domain.ActionNotAllowed, match="the dossier is received"):
        await workflow.record_action(ctx, counter(unit), dossier.id, SupplementReceived)
    with pytest.raises(domain.ActionNotAllowed, match="the dossier is received"):
        await workflow.record_action(
            ctx, counter(unit), dossier.id, PaymentReceived, PaymentPayload(amount_vnd=1)
        )


async def test_a_dossier_is_rated_once() -> None:
    unit, body = submission()
    store = FakeStore()
    dossier = await received_dossier(store, unit, body)
    ctx = intake(store)
    payload = RatingPayload(satisfied=True, criteria=())
    await workflow.record_action(ctx, counter(unit), dossier.id, DossierRated, payload)
    assert [rated for _, rated in store.actions] == [True]
    store.by_id[dossier.id] = replace(dossier, rated=True)
    with pytest.raises(domain.ActionNotAllowed, match="already rated"):
        await workflow.record_action(ctx, counter(unit), dossier.id, DossierRated, payload)
    # Rated concurrently: the store's guard says so, with the same answer.
    store.by_id[dossier.id] = dossier
    store.already_rated = True
    with pytest.raises(domain.ActionNotAllowed, match="already rated"):
        await workflow.record_action(ctx, counter(unit), dossier.id, DossierRated, payload)


async def test_another_units_dossier_is_not_found() -> None:
    unit, body = submission()
    store = FakeStore()
    dossier = await received_dossier(store, unit, body)
    other = next(code for code in sorted(REF.units) if code != unit)
    with pytest.raises(domain.DossierNotFound):
        await workflow.dossier(intake(store), counter(other), dossier.id)
    with pytest.raises(domain.DossierNotFound):
        await workflow.record_action(intake(store), counter(other), dossier.id, SupplementReceived)


async def test_a_counter_of_a_unit_that_ended_receives_nothing_and_learns_its_successors() -> None:
    _, body = submission()
    store = FakeStore()
    writer = FakeWriter(store)
    # Phường Quang Trung's department (thành phố Hà Giang), of the map that ended on 30 June 2025.
    ended = counter("T02.H024.X00688")
    refusal = domain.RefusalIn.model_validate({**body.model_dump(), "reason": "Thiếu tờ khai"})
    for receive in (
        workflow.submit(intake(store, writer), ended, body, "key-3"),
        workflow.refuse(intake(store, writer), ended, refusal, None),
    ):
        with pytest.raises(domain.UnitRefused) as refused_:
            await receive
        assert refused_.value.field == "unit"
        assert "successors: T08.X00691" in refused_.value.reason
    assert writer.received == []
