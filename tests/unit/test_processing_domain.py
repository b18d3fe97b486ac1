"""The state machine: worked scenarios, and random action sequences that keep every invariant."""

from __future__ import annotations

import typing
import uuid
from datetime import datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.processing import domain
from shared.calendar import DAY, LOCAL_TZ, Timeliness, WorkingCalendar
from shared.contract import (
    END_STATUSES,
    ApologyIssued,
    ApplicantKind,
    Channel,
    DocumentComponent,
    DossierEvent,
    DossierRated,
    DossierReceived,
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
    StatusChangedPayload,
    SupplementReceived,
    SupplementRequested,
    decode_status_event,
    encode_status_event,
    new_event_fields,
)
from shared.contract import DossierEvent as DossierEventUnion
from tests.factories import run

CAL = WorkingCalendar.vietnam(range(2025, 2028))
S = DossierStatus
MONDAY = datetime(2026, 11, 2, 10, tzinfo=LOCAL_TZ)
ID = uuid.UUID(int=1)


def fields(at: datetime) -> dict[str, object]:
    return new_event_fields(at, ID, "T01.X00004", "T01.X00004", actor="officer-1")


def received(at: datetime = MONDAY, days: int = 3, digitized: bool = True) -> DossierReceived:
    return DossierReceived(
        **fields(at),
        payload={
            "dossier_code": "T01.X00004-261102-0001",
            "procedure_code": "2.000720",
            "channel": Channel.ONLINE,
            "applicant_kind": ApplicantKind.CITIZEN,
            "applicant_ref": "ab" * 32,
            "received_at": at,
            "appointment_at": CAL.appointment(at, days, has_cutoff=False),
            "processing_days": days,
            "components": (DocumentComponent(code="a", digitized=digitized),),
            "result_is_paper": True,
        },
    )


def test_resolved_early_then_returned_keeps_the_first_end() -> None:
    d = run(
        received(),
        ProcessingStarted(**fields(MONDAY + timedelta(hours=1))),
        DossierResolved(
            **fields(MONDAY + timedelta(days=2)),
            payload={"approved": True, "result_electronic": True},
        ),
        ResultReturned(**fields(MONDAY + timedelta(days=5))),
    )
    assert d.status is S.RESULT_RETURNED
    assert d.ended_at == MONDAY + timedelta(days=2)
    assert d.timeliness is Timeliness.EARLY
    assert d.elapsed_working_days == 2.0
    assert d.digitized


def test_supplementation_wait_is_excluded_and_pushes_the_appointment() -> None:
    # Requested Tuesday 10:00, supplement back Thursday 10:00: 2 working days paused.
    d = run(
        received(),
        SupplementRequested(**fields(MONDAY + timedelta(days=1)), payload={"reason": "thiếu"}),
        SupplementReceived(**fields(MONDAY + timedelta(days=3))),
        DossierResolved(**fields(MONDAY + timedelta(days=4, hours=-1)), payload={"approved": True}),
    )
    assert d.paused == 2 * DAY
    assert d.appointment_at == datetime(2026, 11, 9, 10, tzinfo=LOCAL_TZ)  # Thursday + 2 wd
    assert d.elapsed_working_days == pytest.approx(4 - 2 - 1 / 24, abs=1e-4)
    assert d.timeliness is Timeliness.EARLY


def test_second_supplementation_request_is_late() -> None:
    d = run(
        received(),
        SupplementRequested(**fields(MONDAY + timedelta(hours=2)), payload={"reason": "1"}),
        SupplementReceived(**fields(MONDAY + timedelta(hours=3))),
        SupplementRequested(**fields(MONDAY + timedelta(hours=4)), payload={"reason": "2"}),
        SupplementReceived(**fields(MONDAY + timedelta(hours=5))),
        DossierResolved(**fields(MONDAY + timedelta(hours=6)), payload={"approved": True}),
    )
    assert d.timeliness is Timeliness.LATE


def test_stopped_while_waiting_ends_at_the_request() -> None:
    asked = MONDAY + timedelta(days=1)
    d = run(
        received(),
        SupplementRequested(**fields(asked), payload={"reason": "thiếu"}),
        DossierStopped(
            **fields(MONDAY + timedelta(days=20)), payload={"reason": "quá hạn bổ sung"}
        ),
    )
    assert d.ended_at == asked
    assert d.timeliness is Timeliness.EARLY


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ((ResultReturned(**fields(MONDAY)),), "return the result of a dossier that is received"),
        ((SupplementReceived(**fields(MONDAY)),), "receive a supplement"),
        ((DossierResolved(**fields(MONDAY), payload={"approved": False}),), "needs a reason"),
        (
            (
                DossierWithdrawn(**fields(MONDAY), payload={"reason": "x"}),
                DossierStopped(**fields(MONDAY), payload={"reason": "x"}),
            ),
            "withdrawn",
        ),
        (
            (
                DossierRated(**fields(MONDAY), payload={"satisfied": True}),
                DossierRated(**fields(MONDAY), payload={"satisfied": False}),
            ),
            "already rated",
        ),
        (
            (
                ApologyIssued(
                    **fields(MONDAY + timedelta(hours=1)),
                    payload={"new_appointment_at": MONDAY + timedelta(days=9), "reason": "r"},
                ),
            ),
            "only for an overdue open dossier",
        ),
    ],
)
def test_illegal_transitions_are_refused_with_a_reason(
    events: tuple[DossierEvent, ...], message: str
) -> None:
    dossier = run(received(), *events[:-1])
    with pytest.raises(domain.Rejected, match=message):
        domain.apply(dossier, events[-1], CAL)


def test_result_digitized_after_a_paper_resolution_makes_the_dossier_digitized() -> None:
    d = run(
        received(),
        DossierResolved(**fields(MONDAY + timedelta(days=1)), payload={"approved": True}),
    )
    assert not d.digitized
    assert run(
        received(),
        DossierResolved(**fields(MONDAY + timedelta(days=1)), payload={"approved": True}),
        ResultDigitized(**fields(MONDAY + timedelta(days=1, hours=1))),
    ).digitized


def test_overdue_is_noticed_once_and_an_apology_follows() -> None:
    d = run(received())
    late = d.appointment_at + timedelta(minutes=1)
    assert not d.overdue_at(d.appointment_at)
    notified = domain.mark_overdue(d, late).dossier
    with pytest.raises(domain.Rejected):
        domain.mark_overdue(notified, late)
    sorry = ApologyIssued(
        **fields(late),
        payload={"new_appointment_at": late + timedelta(days=3), "reason": "cần xác minh thêm"},
    )
    after = domain.apply(notified, sorry, CAL).dossier
    assert after.promised_at == late + timedelta(days=3)
    assert after.appointment_at == d.appointment_at  # the index still measures the original date


def test_every_event_type_of_the_contract_has_a_rule() -> None:
    types = {
        t.model_fields["type"].default
        for t in typing.get_args(typing.get_args(DossierEventUnion)[0])
    }
    assert types == set(domain._RULES) | {"DossierReceived", "DossierRefusedAtReception"}


def test_second_supplementation_request_makes_an_open_dossier_overdue_at_once() -> None:
    d = run(
        received(days=5),
        SupplementRequested(**fields(MONDAY + timedelta(hours=2)), payload={"reason": "1"}),
        SupplementReceived(**fields(MONDAY + timedelta(hours=3))),
    )
    assert not d.overdue_at(MONDAY + timedelta(hours=4))
    d = domain.apply(
        d, SupplementRequested(**fields(MONDAY + timedelta(hours=4)), payload={"reason": "2"}), CAL
    ).dossier
    # Days before the appointment, and while waiting: still overdue (index rule).
    assert d.overdue_at(MONDAY + timedelta(hours=5))
    change = domain.Change(d, S.PROCESSING, "")
    assert domain.status_payload(change, MONDAY + timedelta(hours=5))["overdue"] is True


def test_payment_request_holds_approval_until_paid_in_full() -> None:
    asked = PaymentRequested(
        **fields(MONDAY + timedelta(hours=1)), payload={"amount_vnd": 50_000, "reason": "lệ phí"}
    )
    d = run(received(), ProcessingStarted(**fields(MONDAY + timedelta(minutes=30))), asked)
    assert d.status is S.PAYMENT_REQUESTED
    approve = DossierResolved(**fields(MONDAY + timedelta(hours=2)), payload={"approved": True})
    with pytest.raises(domain.Rejected, match="50000 VND requested for this dossier is not paid"):
        domain.apply(d, approve, CAL)
    part = domain.apply(
        d,
        PaymentReceived(**fields(MONDAY + timedelta(hours=2)), payload={"amount_vnd": 20_000}),
        CAL,
    )
    assert part.dossier.status is S.PAYMENT_REQUESTED
    assert part.note == "partial payment: 20000 of 50000 VND"
    rest = domain.apply(
        part.dossier,
        PaymentReceived(**fields(MONDAY + timedelta(hours=3)), payload={"amount_vnd": 30_000}),
        CAL,
    ).dossier
    assert rest.status is S.PROCESSING
    # The clock ran while the applicant paid: only supplementation waits are excluded.
    assert rest.appointment_at == d.appointment_at
    assert rest.paused == timedelta(0)
    resolved = domain.apply(rest, approve, CAL).dossier
    assert resolved.status is S.RESOLVED
    assert resolved.approved


def test_refusal_needs_no_payment_and_a_payment_is_never_refused() -> None:
    refused = run(
        received(),
        PaymentRequested(**fields(MONDAY), payload={"amount_vnd": 1, "reason": "phí"}),
        DossierResolved(
            **fields(MONDAY + timedelta(hours=1)), payload={"approved": False, "reason": "sai"}
        ),
    )
    assert refused.status is S.RESOLVED
    # Money handed over is recorded whatever the status (the counter's view lags processing's).
    unasked = run(received(), PaymentReceived(**fields(MONDAY), payload={"amount_vnd": 1}))
    assert (unasked.status, unasked.payment_paid_vnd) == (S.RECEIVED, 1)


def test_a_fee_still_owed_after_a_supplement_is_waited_for_again() -> None:
    d = run(
        received(),
        PaymentRequested(**fields(MONDAY), payload={"amount_vnd": 50_000, "reason": "phí"}),
        SupplementRequested(**fields(MONDAY + timedelta(hours=1)), payload={"reason": "thiếu"}),
        SupplementReceived(**fields(MONDAY + timedelta(hours=2))),
    )
    assert d.status is S.PAYMENT_REQUESTED
    paid = domain.apply(
        d,
        PaymentReceived(**fields(MONDAY + timedelta(hours=3)), payload={"amount_vnd": 50_000}),
        CAL,
    ).dossier
    assert paid.status is S.PROCESSING


def test_a_supplement_asked_after_the_appointment_leaves_the_dossier_overdue() -> None:
    d = run(received(days=1))
    asked_late = d.appointment_at + timedelta(hours=1)
    waiting = domain.apply(
        d, SupplementRequested(**fields(asked_late), payload={"reason": "muộn"}), CAL
    ).dossier
    assert waiting.overdue_at(asked_late + timedelta(hours=1))
    assert waiting.watched
    asked_early = run(
        received(days=1),
        SupplementRequested(**fields(MONDAY + timedelta(hours=1)), payload={"reason": "sớm"}),
    )
    # Asked in time: the clock is paused, the watch leaves it alone.
    assert not asked_early.overdue_at(MONDAY + timedelta(days=10))
    assert not asked_early.watched


def test_transfer_changes_the_competent_unit_and_never_restarts_the_deadline() -> None:
    before = run(
        received(),
        ProcessingStarted(**fields(MONDAY + timedelta(hours=1))),
        SupplementRequested(**fields(MONDAY + timedelta(days=1)), payload={"reason": "thiếu"}),
        SupplementReceived(**fields(MONDAY + timedelta(days=2))),
    )
    moved = domain.apply(
        before,
        DossierTransferred(
            **fields(MONDAY + timedelta(days=2, hours=1)),
            payload={"to_unit": "T08.X00691", "reason": "liên thông"},
        ),
        CAL,
    )
    after = moved.dossier
    assert after.competent_unit == "T08.X00691"
    assert after.receiving_unit == "T01.X00004"
    assert (after.received_at, after.appointment_at, after.paused, after.status) == (
        before.received_at,
        before.appointment_at,
        before.paused,
        S.PROCESSING,
    )
    assert moved.note == "transferred from T01.X00004 to T08.X00691: liên thông"
    ended = domain.apply(
        after,
        DossierResolved(**fields(MONDAY + timedelta(days=3)), payload={"approved": True}),
        CAL,
    ).dossier
    # Measured from the first reception, less the supplement wait: 3 - 1 working days.
    assert ended.elapsed_working_days == pytest.approx(2.0)
    with pytest.raises(domain.Rejected, match=r"already handled by T08\.X00691"):
        domain.apply(
            after,
            DossierTransferred(**fields(MONDAY), payload={"to_unit": "T08.X00691", "reason": "x"}),
            CAL,
        )


# --------------------------------------------------------------------------- stateful


class DossierLife(RuleBasedStateMachine):
    """Random sequences of counter and officer actions keep the invariants of DOMAIN.md."""

    def __init__(self) -> None:
        super().__init__()
        self.now = MONDAY
        self.dossier = domain.apply(None, received(), CAL).dossier
        self.first_end: datetime | None = None
        self.waits = timedelta(0)
        self.asked_at: datetime | None = None
        self.original_appointment = self.dossier.appointment_at
        self.notices = 0

    def _try(self, event: DossierEvent) -> None:
        before = self.dossier
        try:
            self.dossier = domain.apply(self.dossier, event, CAL).dossier
        except domain.Rejected:
            assert self.dossier == before
            return
        if isinstance(event, SupplementRequested):
            self.asked_at = event.occurred_at
        if isinstance(event, SupplementReceived) and self.asked_at is not None:
            self.waits += CAL.working_time(self.asked_at, event.occurred_at)
            self.asked_at = None

    @rule(hours=st.integers(min_value=0, max_value=72))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule()
    def start(self) -> None:
        self._try(ProcessingStarted(**fields(self.now)))

    @rule()
    def ask_supplement(self) -> None:
        self._try(SupplementRequested(**fields(self.now), payload={"reason": "r"}))

    @rule()
    def supplement_back(self) -> None:
        self._try(SupplementReceived(**fields(self.now)))

    @rule(approved=st.booleans(), electronic=st.booleans())
    def resolve(self, approved: bool, electronic: bool) -> None:
        self._try(
            DossierResolved(
                **fields(self.now),
                payload={"approved": approved, "result_electronic": electronic, "reason": "lý do"},
            )
        )

    @rule()
    def return_result(self) -> None:
        self._try(ResultReturned(**fields(self.now)))

    @rule()
    def stop(self) -> None:
        self._try(DossierStopped(**fields(self.now), payload={"reason": "r"}))

    @rule()
    def withdraw(self) -> None:
        self._try(DossierWithdrawn(**fields(self.now), payload={"reason": "r"}))

    @rule(amount=st.integers(min_value=1, max_value=3))
    def request_payment(self, amount: int) -> None:
        self._try(
            PaymentRequested(**fields(self.now), payload={"amount_vnd": amount, "reason": "phí"})
        )

    @rule(amount=st.integers(min_value=1, max_value=3))
    def pay(self, amount: int) -> None:
        self._try(PaymentReceived(**fields(self.now), payload={"amount_vnd": amount}))

    @rule(unit=st.sampled_from(["T01.X00004", "T08.X00691", "T48"]))
    def transfer(self, unit: str) -> None:
        self._try(DossierTransferred(**fields(self.now), payload={"to_unit": unit, "reason": "lt"}))

    @rule(days=st.integers(min_value=-1, max_value=5))
    def apologize(self, days: int) -> None:
        self._try(
            ApologyIssued(
                **fields(self.now),
                payload={"new_appointment_at": self.now + timedelta(days=days), "reason": "r"},
            )
        )

    @rule()
    def overdue_watch(self) -> None:
        try:
            self.dossier = domain.mark_overdue(self.dossier, self.now).dossier
        except domain.Rejected:
            return
        self.notices += 1

    @rule(satisfied=st.booleans())
    def rate(self, satisfied: bool) -> None:
        self._try(DossierRated(**fields(self.now), payload={"satisfied": satisfied}))

    @rule()
    def digitize(self) -> None:
        self._try(ResultDigitized(**fields(self.now)))

    @invariant()
    def one_end_of_processing(self) -> None:
        d = self.dossier
        if d.ended_at is not None:
            if self.first_end is None:
                self.first_end = d.ended_at
            assert d.ended_at == self.first_end
            assert d.status in END_STATUSES
            assert d.timeliness is not None
        else:
            assert self.first_end is None
            assert d.is_open

    @invariant()
    def deadline_never_before_reception(self) -> None:
        assert self.dossier.appointment_at >= self.dossier.received_at

    @invariant()
    def the_deadline_moves_only_by_the_supplement_waits(self) -> None:
        # Not by a transfer, a payment, an apology (its promise is kept apart) or the watch.
        assert self.dossier.appointment_at == CAL.advance(self.original_appointment, self.waits)

    @invariant()
    def overdue_is_noticed_at_most_once_and_only_when_overdue(self) -> None:
        assert self.notices <= 1
        d = self.dossier
        if d.is_open and d.supplement_requests > 1:
            assert d.overdue_at(self.now)
        if d.ended_at is not None and d.supplement_requests > 1:
            assert d.timeliness is Timeliness.LATE

    @invariant()
    def the_watch_looks_exactly_at_what_can_become_overdue(self) -> None:
        d = self.dossier
        if d.watched:
            assert d.due_at is not None
            assert d.overdue_at(d.due_at + timedelta(microseconds=1))
        elif d.is_open and not d.overdue_notified:
            # Not watched while open: its clock is paused, so it is not overdue, however late.
            assert not d.overdue_at(self.now + timedelta(days=3650))

    @invariant()
    def approval_only_when_paid(self) -> None:
        d = self.dossier
        if d.approved:
            assert d.payment_outstanding_vnd == 0
        if d.status is S.PAYMENT_REQUESTED:
            assert d.payment_outstanding_vnd > 0

    @invariant()
    def paused_time_is_never_counted(self) -> None:
        d = self.dossier
        assert d.paused == self.waits
        if d.ended_at is not None and d.elapsed_working_days is not None:
            assert d.clock_started_at is not None
            worked = CAL.working_time(d.clock_started_at, d.ended_at) - d.paused
            assert d.elapsed_working_days == pytest.approx(
                max(worked, timedelta(0)) / DAY, abs=1e-4
            )

    @invariant()
    def the_status_event_is_the_contracts(self) -> None:
        # Processing writes status events without the models (its hot path): whatever the
        # dossier's state, the bytes must decode to the event the models would have built.
        change = domain.Change(self.dossier, S.RECEIVED, "note")
        payload = domain.status_payload(change, self.now)
        assert set(payload) == set(StatusChangedPayload.model_fields)
        for kind in ("DossierStatusChanged", "DossierOverdue"):
            raw = encode_status_event(
                kind,
                occurred_at=self.now,
                dossier_id=ID,
                receiving_unit="T01.X00004",
                competent_unit="T01.X00008",
                payload=payload,
            )
            event = decode_status_event(raw)
            assert event.type == kind
            assert event.occurred_at == self.now
            assert (event.dossier_id, event.receiving_unit, event.competent_unit) == (
                ID,
                "T01.X00004",
                "T01.X00008",
            )
            assert event.payload == StatusChangedPayload(**payload)

    @precondition(lambda self: self.dossier.status is S.SUPPLEMENT_REQUESTED)
    @invariant()
    def waiting_means_asked(self) -> None:
        assert self.dossier.supplement_requested_at is not None


DossierLife.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
test_dossier_life = DossierLife.TestCase
