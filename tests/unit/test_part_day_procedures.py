"""Procedures whose legal time is part of a working day (4 working hours, 1.5 days): the catalog
format, the appointment, the event, the clock's start that processing rewinds, the import.

The shipped catalog has no such procedure (neither DOMAIN.md nor a source the repository uses names
one), so these tests use a test-only catalog: the shipped one plus three made-up `9.*` procedures.
Hand-computed from DOMAIN.md: 4 working hours are half a working day (8 working hours to the day),
half a day is 12 h of the working clock (which runs all 24 hours of a working day); the appointment
is the start plus that much working clock. November 2026 has no holiday before the 24th; 30 April
and 1 May 2026 (Thursday, Friday) are public holidays.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.intake import domain as intake
from shared.calendar import DAY, LOCAL_TZ, Timeliness, WorkingCalendar
from shared.contract import (
    DossierReceived,
    DossierResolved,
    decode_dossier_event,
    encode_dossier_received,
    new_event_fields,
)
from shared.reference import REFERENCE_DIR, ReferenceData, load_reference
from tests.factories import run
from tests.unit.test_importer import line
from tools.importer import Planned, plan

CAL = WorkingCalendar.vietnam(range(2022, 2028))
HALF_DAY_CUTOFF = "9.000001"  # 4 working hours, with the 15:00 cut-off
DAY_AND_HALF = "9.000002"  # 1.5 working days
HALF_DAY = "9.000003"  # 0.5 working day
UNIT = "T08.X00691"  # phường Hà Giang 2's center (Tuyên Quang), from 1 July 2025


def _test_procedure(code: str, **duration: object) -> dict[str, object]:
    return {
        "code": code,
        "name": f"Thủ tục thử nghiệm {code} (chỉ dùng trong kiểm thử)",
        "field": "Kiểm thử",
        "competent_level": "district",
        "cutoff_next_day": code == HALF_DAY_CUTOFF,
        "result_is_paper": True,
        "fee_bearing": False,
        "online_level": 4,
        "components": [{"code": "to_khai", "required": True}],
        **duration,
    }


def write_test_catalog(directory: Path) -> Path:
    """The shipped reference data plus the three test-only part-day procedures."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REFERENCE_DIR / "maps", directory / "maps", dirs_exist_ok=True)
    doc = json.loads((REFERENCE_DIR / "procedures.json").read_text(encoding="utf-8"))
    doc["procedures"] += [
        _test_procedure(HALF_DAY_CUTOFF, processing_hours=4),
        _test_procedure(DAY_AND_HALF, processing_days=1.5),
        _test_procedure(HALF_DAY, processing_days=0.5),
    ]
    (directory / "procedures.json").write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    return directory


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> ReferenceData:
    return load_reference(write_test_catalog(tmp_path_factory.mktemp("catalog")))


def at(m: int, d: int, h: int = 0, mi: int = 0, y: int = 2026) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=LOCAL_TZ)


# ------------------------------------------------------------------ the catalog


def test_the_catalog_takes_working_hours_or_decimal_days(ref: ReferenceData) -> None:
    half = ref.procedures[HALF_DAY_CUTOFF]
    assert half.processing_days == 0.5
    assert half.processing_time == timedelta(hours=12)
    assert half.whole_processing_days == 1
    assert ref.procedures[HALF_DAY].processing_time == timedelta(hours=12)
    assert ref.procedures[DAY_AND_HALF].processing_time == timedelta(hours=36)
    assert ref.procedures[DAY_AND_HALF].whole_processing_days == 2


def test_the_shipped_catalog_keeps_its_whole_days() -> None:
    shipped = load_reference(REFERENCE_DIR)
    for procedure in shipped.procedures.values():
        assert isinstance(procedure.processing_days, int), procedure.code
        assert procedure.processing_time == procedure.processing_days * DAY
    assert shipped.procedures["1.000894"].processing_days == 3


@pytest.mark.parametrize(
    ("duration", "problem"),
    [
        ({"processing_days": 0.3}, "not a positive whole number of working hours"),
        ({"processing_hours": 2.5}, "processing_hours must be a whole number"),
        ({"processing_days": 0}, "not a positive whole number of working hours"),
        ({"processing_days": "1"}, "processing_days must be a number"),
        ({"processing_days": 1, "processing_hours": 8}, "give one of"),
        ({}, "give one of"),
    ],
)
def test_a_catalog_with_an_impossible_time_fails_loudly(
    tmp_path: Path, duration: dict[str, object], problem: str
) -> None:
    shutil.copytree(REFERENCE_DIR / "maps", tmp_path / "maps")
    doc = {"version": "t", "procedures": [_test_procedure("9.000009", **duration)]}
    (tmp_path / "procedures.json").write_text(json.dumps(doc), "utf-8")
    with pytest.raises(ValueError, match=problem):
        load_reference(tmp_path)


# ------------------------------------------------------------------ the appointment


def test_half_a_day_is_twelve_hours_of_the_working_clock(ref: ReferenceData) -> None:
    half = ref.procedures[HALF_DAY]
    # Monday 10:00 + 12 h: Monday 22:00.
    assert intake.appointment_for(CAL, half, at(11, 2, 10)) == at(11, 2, 22)
    # Friday 16:00: 8 h of Friday, then 4 h of Monday: Monday 04:00.
    assert intake.appointment_for(CAL, half, at(11, 6, 16)) == at(11, 9, 4)
    # Sunday 10:00: the clock starts Monday 08:00, appointment Monday 20:00.
    assert intake.appointment_for(CAL, half, at(11, 1, 10)) == at(11, 2, 20)
    # Wednesday 29 April 16:00, before the 30 April and 1 May holidays and the weekend:
    # 8 h of Wednesday, then 4 h of Monday 4 May.
    assert intake.appointment_for(CAL, half, at(4, 29, 16)) == at(5, 4, 4)
    # 1.5 days from Monday 10:00: 36 h, Tuesday 22:00.
    assert intake.appointment_for(CAL, ref.procedures[DAY_AND_HALF], at(11, 2, 10)) == at(11, 3, 22)


def test_four_working_hours_after_the_cutoff_start_the_next_morning(ref: ReferenceData) -> None:
    # Tuesday 15:30, cut-off procedure: the clock starts Wednesday 08:00, + 12 h: Wednesday 20:00.
    cutoff = ref.procedures[HALF_DAY_CUTOFF]
    assert intake.appointment_for(CAL, cutoff, at(11, 3, 15, 30)) == at(11, 4, 20)
    # Before the cut-off it starts at once: Tuesday 14:00 + 12 h = Wednesday 02:00.
    assert intake.appointment_for(CAL, cutoff, at(11, 3, 14)) == at(11, 4, 2)


def test_rewind_undoes_a_half_day_across_the_weekend() -> None:
    assert CAL.rewind(at(11, 9, 4), timedelta(hours=12)) == at(11, 6, 16)
    assert CAL.rewind(at(5, 4, 4), timedelta(hours=12)) == at(4, 29, 16)


# ------------------------------------------------------------------ the event


def test_the_event_carries_the_exact_time_and_whole_days_for_older_readers(
    ref: ReferenceData,
) -> None:
    # A commune center of today's map receives the former district-level procedures.
    unit = intake.admit(ref, UNIT, at(11, 3, 15, 30), field="unit")
    sub = intake.SubmissionIn.model_validate(
        {
            "procedure_code": HALF_DAY_CUTOFF,
            "channel": "in_person",
            "applicant": {"kind": "citizen", "id_number": "002085001234", "name": "Lò Văn Páo"},
            "components": [{"code": "to_khai"}],
        }
    )
    verdict = intake.check_submission(sub, unit, ref, at(11, 3).date())
    assert isinstance(verdict, intake.Admission)
    payload = intake.received_payload(
        sub,
        verdict,
        code="T08.X00691-261103-0001",
        applicant_ref="ab" * 32,
        received_at=at(11, 3, 15, 30),
        appointment_at=at(11, 4, 20),
        clock_started_at=intake.clock_start_for(CAL, verdict.procedure, at(11, 3, 15, 30)),
    )
    assert payload["clock_started_at"] == at(11, 4, 8)
    assert payload["processing_days"] == 1
    assert payload["processing_days_decimal"] == 0.5
    event = decode_dossier_event(
        encode_dossier_received(
            occurred_at=at(11, 3, 15, 30),
            dossier_id=uuid.uuid4(),
            receiving_unit=unit.code,
            competent_unit=unit.code,
            actor="counter",
            payload=payload,
        )
    )
    assert isinstance(event, DossierReceived)
    assert event.payload.processing_time_days == 0.5
    assert event.payload.clock_started_at == at(11, 4, 8)
    # A whole-day procedure's event says nothing more than before.
    whole = intake.processing_time(ref.procedures["2.000720"])
    assert whole == (3, None)


# ------------------------------------------------------------------ processing's clock start

ID = uuid.UUID(int=12)


def _received(when: datetime, procedure_days: float, appointment: datetime) -> DossierReceived:
    whole = -int(-procedure_days // 1)
    return DossierReceived(
        **new_event_fields(when, ID, UNIT, UNIT, actor="counter"),
        payload={
            "dossier_code": "T08.X00691-261101-0001",
            "procedure_code": HALF_DAY,
            "channel": "in_person",
            "applicant_kind": "citizen",
            "applicant_ref": "ab" * 32,
            "received_at": when,
            "appointment_at": appointment,
            "processing_days": whole,
            "processing_days_decimal": None if whole == procedure_days else procedure_days,
            "components": [{"code": "to_khai"}],
        },
    )


def _resolved(when: datetime) -> DossierResolved:
    return DossierResolved(
        **new_event_fields(when, ID, UNIT, UNIT, actor="officer"),
        payload={"approved": True},
    )


def test_a_half_day_received_on_a_sunday_starts_monday_at_eight() -> None:
    # Sunday 10:00, half a day: start Monday 08:00, appointment Monday 20:00. Resolved Monday
    # 18:00: 10 h = 0.4167 working days, on time (rewinding a whole day from 20:00 would have
    # put the start back on Sunday's reception: 18 h, 0.75).
    d = run(_received(at(11, 1, 10), 0.5, at(11, 2, 20)), _resolved(at(11, 2, 18)))
    assert d.clock_started_at == at(11, 2, 8)
    assert d.elapsed_working_days == round(10 / 24, 4) == 0.4167
    assert d.timeliness is Timeliness.ON_TIME


def test_four_working_hours_after_the_cutoff_count_from_wednesday_morning() -> None:
    # Tuesday 15:30, cut-off: start Wednesday 08:00, appointment Wednesday 20:00. Resolved
    # Wednesday 17:00: 9 h = 0.375, on time (from Tuesday 20:00, a whole day back: 21 h).
    d = run(_received(at(11, 3, 15, 30), 0.5, at(11, 4, 20)), _resolved(at(11, 4, 17)))
    assert d.clock_started_at == at(11, 4, 8)
    assert d.elapsed_working_days == 0.375
    assert d.timeliness is Timeliness.ON_TIME


def test_a_half_day_over_the_weekend_is_late_on_monday_morning() -> None:
    # Friday 16:00, half a day: appointment Monday 04:00. Resolved Monday 09:00: 8 h of
    # Friday + 9 h of Monday = 17 h = 0.7083, late.
    d = run(_received(at(11, 6, 16), 0.5, at(11, 9, 4)), _resolved(at(11, 9, 9)))
    assert d.clock_started_at == at(11, 6, 16)
    assert d.elapsed_working_days == round(17 / 24, 4) == 0.7083
    assert d.timeliness is Timeliness.LATE


def test_a_day_and_a_half_after_the_cutoff() -> None:
    # Friday 15:30 with a cut-off, 1.5 days: start Monday 08:00, appointment Tuesday 20:00.
    # Resolved Tuesday 10:00: 16 h + 10 h = 26 h = 1.0833, on time.
    d = run(_received(at(11, 6, 15, 30), 1.5, at(11, 10, 20)), _resolved(at(11, 10, 10)))
    assert d.clock_started_at == at(11, 9, 8)
    assert d.elapsed_working_days == round(26 / 24, 4) == 1.0833
    assert d.timeliness is Timeliness.ON_TIME


def test_the_clock_starts_when_intake_says_whatever_processings_calendar() -> None:
    # Intake's calendar has Wednesday 4 November off (a local day off processing's calendar does
    # not know). Tuesday 3 November 10:00, 3 working days: the clock starts at once, the
    # appointment is Monday 9 November 10:00 (Thursday, Friday, Monday). Rewound by 72 h on
    # processing's calendar it would start Wednesday 10:00. Resolved Thursday 10:00: Tuesday
    # 14 h + Wednesday 24 h + Thursday 10 h = 48 h of processing's clock = 2.0 working days.
    intake_cal = dataclasses.replace(CAL, days_off=CAL.days_off | {at(11, 4).date()})
    when = at(11, 3, 10)
    appointment = intake_cal.appointment(when, 3, has_cutoff=False)
    assert appointment == at(11, 9, 10)
    received = DossierReceived(
        **new_event_fields(when, ID, UNIT, UNIT, actor="counter"),
        payload={
            "dossier_code": "T08.X00691-261103-0001",
            "procedure_code": "2.000720",
            "channel": "in_person",
            "applicant_kind": "citizen",
            "applicant_ref": "ab" * 32,
            "received_at": when,
            "appointment_at": appointment,
            "clock_started_at": intake_cal.start_of_clock(when, has_cutoff=False),
            "processing_days": 3,
            "components": [{"code": "to_khai"}],
        },
    )
    d = run(received, _resolved(at(11, 5, 10)))
    assert d.clock_started_at == when
    assert d.elapsed_working_days == 2.0
    # The same event without the start (written before it was carried): rewound as before.
    older = received.model_copy(
        update={"payload": received.payload.model_copy(update={"clock_started_at": None})}
    )
    assert run(older).clock_started_at == at(11, 4, 10)


# ------------------------------------------------------------------ the import


def _half_day_line(**overrides: Any) -> str:
    return line(
        procedure_code=HALF_DAY_CUTOFF,
        components=[{"code": "to_khai", "digitized": True}],
        **overrides,
    )


def test_a_half_day_procedure_is_imported_with_its_appointment(ref: ReferenceData) -> None:
    # Tuesday 4 July 2023 15:30, cut-off, 4 working hours: start Wednesday 08:00, appointment
    # Wednesday 20:00. Resolved Wednesday 17:00: on time, 9 h = 0.375 working days.
    raw = _half_day_line(
        received_at="2023-07-04T15:30:00+07:00",
        timeline=[{"type": "resolved", "at": "2023-07-05T17:00:00+07:00", "approved": True}],
    )
    planned = plan(1, raw, ref, CAL, b"k")
    assert isinstance(planned, Planned), planned
    assert planned.appointment_at == at(7, 5, 20, y=2023)
    assert isinstance(planned.received, DossierReceived)
    assert planned.received.payload.processing_days == 1
    assert planned.received.payload.processing_days_decimal == 0.5
    assert planned.received.payload.clock_started_at == at(7, 5, 8, y=2023)
    d = run(planned.received, *planned.events)
    assert d.clock_started_at == at(7, 5, 8, y=2023)
    assert d.elapsed_working_days == 0.375
    assert d.timeliness is Timeliness.ON_TIME
