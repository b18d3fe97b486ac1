"""Elapsed working time counts from the working clock's start (DOMAIN.md): hand-computed values.

Every figure below is worked out by hand from the rules: start = the reception, or 08:00 of the next
working day for a reception on a non-working day or after the 15:00 cut-off; elapsed = (working-
clock time from the start to the end − paused working-clock time) / 24 h. November 2026 has no
holiday before the 24th; 30 April and 1 May 2026 (Thursday, Friday) are public holidays.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.metrics import domain as metrics
from services.processing import domain
from shared.calendar import DAY, LOCAL_TZ, Timeliness, WorkingCalendar
from shared.contract import (
    DossierReceived,
    DossierResolved,
    DossierStatusChanged,
    DossierWithdrawn,
    SupplementReceived,
    SupplementRequested,
    new_event_fields,
)
from tests import factories
from tests.factories import run

CAL = WorkingCalendar.vietnam(range(2025, 2028))
ID = uuid.UUID(int=7)


def at(m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(2026, m, d, h, mi, tzinfo=LOCAL_TZ)


def fields(when: datetime) -> dict[str, object]:
    return new_event_fields(when, ID, "T01.X00004", "T01.X00004", actor="officer-1")


def received(when: datetime, days: int, *, cutoff: bool) -> DossierReceived:
    return factories.received("T01.X00004", when, days=days, cutoff=cutoff, dossier_id=ID)


def resolved(when: datetime) -> DossierResolved:
    return DossierResolved(**fields(when), payload={"approved": True})


def test_received_on_a_sunday_counts_from_monday_eight() -> None:
    # Sunday 10:00, 3 working days: start Monday 08:00, appointment Thursday 08:00. Resolved
    # Tuesday 12:00: 16 h of Monday + 12 h of Tuesday = 28 h (not 36 h from Sunday's midnight).
    d = run(received(at(11, 1, 10), 3, cutoff=False), resolved(at(11, 3, 12)))
    assert d.clock_started_at == at(11, 2, 8)
    assert d.appointment_at == at(11, 5, 8)
    assert d.elapsed_working_days == round(28 / 24, 4) == 1.1667
    assert d.timeliness is Timeliness.EARLY


def test_received_after_the_cutoff_counts_from_the_next_working_day() -> None:
    # Tuesday 15:30, cut-off procedure, 1 working day: start Wednesday 08:00, appointment
    # Thursday 08:00 (DOMAIN.md's example). Resolved Wednesday 17:00: 9 h (not 25.5 h).
    d = run(received(at(11, 3, 15, 30), 1, cutoff=True), resolved(at(11, 4, 17)))
    assert d.clock_started_at == at(11, 4, 8)
    assert d.appointment_at == at(11, 5, 8)
    assert d.elapsed_working_days == 0.375


def test_received_before_a_holiday_counts_from_after_it() -> None:
    # Wednesday 29 April 16:00, cut-off procedure: 30/4 and 1/5 are holidays, then a weekend, so
    # the clock starts Monday 4 May 08:00. Resolved that Monday at 10:00: 2 h (not 18 h).
    d = run(received(at(4, 29, 16), 1, cutoff=True), resolved(at(5, 4, 10)))
    assert d.clock_started_at == at(5, 4, 8)
    assert d.appointment_at == at(5, 5, 8)
    assert d.elapsed_working_days == 0.0833


def test_a_pause_spanning_a_weekend_counts_only_from_the_start() -> None:
    # Friday 6 Nov 16:00, cut-off, 2 working days: start Monday 9 Nov 08:00, appointment
    # Wednesday 11 Nov 08:00. Supplement asked Friday 17:00 (before the clock starts), back
    # Tuesday 08:00: the clock stood still from Monday 08:00 to Tuesday 08:00 = 24 h, so the
    # appointment moves to Thursday 08:00. Resolved Thursday 07:00: Monday 08:00 → Thursday
    # 07:00 is 16 + 24 + 24 + 7 = 71 h, minus 24 h paused = 47 h.
    d = run(
        received(at(11, 6, 16), 2, cutoff=True),
        SupplementRequested(**fields(at(11, 6, 17)), payload={"reason": "thiếu"}),
        SupplementReceived(**fields(at(11, 10, 8))),
        resolved(at(11, 12, 7)),
    )
    assert d.paused == DAY
    assert d.appointment_at == at(11, 12, 8)
    assert d.elapsed_working_days == round(47 / 24, 4) == 1.9583
    assert d.timeliness is Timeliness.ON_TIME


def test_a_pause_within_working_days_spanning_a_weekend() -> None:
    # Monday 2 Nov 10:00, 3 working days: appointment Thursday 10:00. Asked Wednesday 16:00,
    # back Monday 9 Nov 09:00: 8 + 24 + 24 + 9 = 65 h paused (the weekend does not count);
    # the appointment moves 65 h of clock from Thursday 10:00 to Tuesday 10 Nov 03:00. Resolved
    # Tuesday 01:00: 14 + 24 × 5 + 1 = 135 h since the start, minus 65 h = 70 h.
    d = run(
        received(at(11, 2, 10), 3, cutoff=False),
        SupplementRequested(**fields(at(11, 4, 16)), payload={"reason": "thiếu"}),
        SupplementReceived(**fields(at(11, 9, 9))),
        resolved(at(11, 10, 1)),
    )
    assert d.paused == timedelta(hours=65)
    assert d.appointment_at == at(11, 10, 3)
    assert d.elapsed_working_days == round(70 / 24, 4)
    assert d.timeliness is Timeliness.ON_TIME


def test_a_pause_before_the_start_never_makes_it_negative() -> None:
    # Sunday 10:00, 1 working day: start Monday 08:00. Asked Sunday 11:00, back Monday 10:00:
    # only Monday 08:00 → 10:00 was paused (2 h, not 10 h). Resolved Monday 11:00: 3 h − 2 h.
    d = run(
        received(at(11, 1, 10), 1, cutoff=False),
        SupplementRequested(**fields(at(11, 1, 11)), payload={"reason": "thiếu"}),
        SupplementReceived(**fields(at(11, 2, 10))),
        resolved(at(11, 2, 11)),
    )
    assert d.paused == timedelta(hours=2)
    assert d.appointment_at == at(11, 3, 10)
    assert d.elapsed_working_days == round(1 / 24, 4)


def test_ended_before_the_clock_started_is_zero() -> None:
    d = run(
        received(at(11, 1, 10), 1, cutoff=False),
        DossierWithdrawn(**fields(at(11, 1, 12)), payload={"reason": "rút"}),
    )
    assert d.elapsed_working_days == 0.0


def test_the_histogram_sum_follows_the_elapsed_time() -> None:
    # Metrics counts what processing reports: the Sunday dossier adds 1.1667 working days.
    d = run(received(at(11, 1, 10), 3, cutoff=False), resolved(at(11, 3, 12)))
    change = domain.Change(d, None, "resolved")
    event = DossierStatusChanged(
        **fields(at(11, 3, 12)), payload=domain.status_payload(change, at(11, 3, 12))
    )
    opened = DossierStatusChanged(
        **fields(at(11, 1, 10)),
        payload=domain.status_payload(
            domain.Change(run(received(at(11, 1, 10), 3, cutoff=False)), None, "r"), at(11, 1, 10)
        ),
    )
    _, deltas = metrics.fold(None, [opened, event])
    assert deltas[metrics.CounterKey(metrics.RESOLUTION_SUM, "T01.X00004", "")] == 1167
    assert metrics.CounterKey(metrics.RESOLUTION_BUCKET, "T01.X00004", "1") not in deltas
    assert deltas[metrics.CounterKey(metrics.RESOLUTION_BUCKET, "T01.X00004", "2")] == 1


def test_a_state_saved_before_the_start_was_kept_still_counts_from_a_working_day() -> None:
    d = run(received(at(11, 1, 10), 3, cutoff=False))
    older = dataclasses.replace(d, clock_started_at=None)
    assert domain.apply(older, resolved(at(11, 3, 12)), CAL).dossier.elapsed_working_days == 1.1667


@given(
    received_at=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 20)).map(
        lambda t: t.replace(tzinfo=LOCAL_TZ)
    ),
    days=st.integers(min_value=0, max_value=20),
    cutoff=st.booleans(),
)
def test_the_start_is_recovered_from_the_appointment(
    received_at: datetime, days: int, cutoff: bool
) -> None:
    # Processing does not know the procedure's cut-off: it rewinds the appointment by the
    # procedure's working time, which lands on the start intake used.
    start = CAL.start_of_clock(received_at, has_cutoff=cutoff)
    appointment = CAL.appointment(received_at, days, has_cutoff=cutoff)
    assert CAL.rewind(appointment, days * DAY) == start
    assert run(received(received_at, days, cutoff=cutoff)).clock_started_at == start


@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 1)).map(
        lambda t: t.replace(tzinfo=LOCAL_TZ)
    ),
    hours=st.integers(min_value=0, max_value=24 * 30),
)
def test_rewind_undoes_advance(start: datetime, hours: int) -> None:
    start = CAL.start_of_clock(start, has_cutoff=False)  # a clock start is on a working day
    working = timedelta(hours=hours)
    assert CAL.rewind(CAL.advance(start, working), working) == start


@pytest.mark.parametrize("paused_hours", [0, 5, 100])
def test_elapsed_is_never_negative(paused_hours: int) -> None:
    assert CAL.elapsed_working_days(at(11, 2, 8), at(11, 2, 9), timedelta(hours=paused_hours)) >= 0
