"""The worked examples of DOMAIN.md, Vietnamese holidays, and properties of the working clock."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import example, given
from hypothesis import strategies as st

from shared.calendar import DAY, LOCAL_TZ, Timeliness, WorkingCalendar, announced_days, classify

CAL = WorkingCalendar.vietnam(range(2024, 2028))


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=LOCAL_TZ)


def test_monday_plus_three_days_is_thursday_same_time() -> None:
    # 2026-11-02 is a Monday without holidays that week.
    appointment = CAL.appointment(at(2026, 11, 2, 10), 3, has_cutoff=False)
    assert appointment == at(2026, 11, 5, 10)
    assert classify(at(2026, 11, 4, 16), appointment) is Timeliness.EARLY
    assert classify(at(2026, 11, 5, 9), appointment) is Timeliness.ON_TIME
    assert classify(at(2026, 11, 5, 11), appointment) is Timeliness.LATE


def test_friday_plus_one_day_is_monday() -> None:
    assert CAL.appointment(at(2026, 11, 6, 10), 1, has_cutoff=False) == at(2026, 11, 9, 10)


def test_after_cutoff_counts_from_next_working_day_at_eight() -> None:
    # Tuesday 15:30, procedure with the 15:00 cut-off, 1 working day.
    assert CAL.appointment(at(2026, 11, 3, 15, 30), 1, has_cutoff=True) == at(2026, 11, 5, 8)
    # Without the cut-off the clock starts at reception.
    assert CAL.appointment(at(2026, 11, 3, 15, 30), 1, has_cutoff=False) == at(2026, 11, 4, 15, 30)


def test_tet_and_swap_days() -> None:
    assert not CAL.is_working_day(date(2026, 2, 17))  # Lunar New Year
    assert CAL.is_working_day(date(2026, 8, 22))  # a Saturday worked in exchange
    assert not CAL.is_working_day(date(2026, 8, 31))  # the day off it buys
    # Received the Friday before Tết 2026 (13 Feb) with 1 working day: Tết week is skipped.
    assert CAL.appointment(at(2026, 2, 13, 10), 1, has_cutoff=False) == at(2026, 2, 23, 10)


def test_second_supplementation_request_makes_it_late() -> None:
    due = at(2026, 11, 5, 10)
    assert classify(at(2026, 11, 3, 10), due, supplement_requests=2) is Timeliness.LATE


def test_override_file_adds_days_off_and_workdays(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "override.json"
    path.write_text('{"days_off": ["2026-11-04"], "workdays": ["2026-11-07"]}')
    cal = WorkingCalendar.vietnam([2026], path)
    assert not cal.is_working_day(date(2026, 11, 4))
    assert cal.is_working_day(date(2026, 11, 7))


LABOR_CODE = "Labor Code 2019, Art. 112"
TET_2025 = "Announcement 6150/TB-BLĐTBXH (2024): Tết 2025 for officials and public employees"
# The references the `holidays` package gives for its special days of 2025 and 2026.
SWAP_2025 = "Announcement 6150/TB-BLĐTBXH (2024), as cited by holidays for 2025"
SWAP_2026 = "the 2 September 2026 days off, as cited by holidays for 2026 (thuvienphapluat.vn)"
CULTURAL_DAY = "Resolution 80-NQ/TW: 24 November, Vietnam Cultural Day, a paid day off from 2026"
# Every day of 2025–2026 on which the calendar departs from Monday–Friday (True: worked).
ANNOUNCED_2025_2026: list[tuple[date, bool, str]] = [
    (date(2025, 1, 1), False, LABOR_CODE),
    *[(date(2025, 1, d), False, TET_2025) for d in range(27, 32)],
    (date(2025, 2, 1), False, LABOR_CODE),  # a Saturday
    (date(2025, 4, 7), False, LABOR_CODE),
    (date(2025, 4, 26), True, SWAP_2025),  # the Saturday worked for Friday 2 May
    (date(2025, 4, 30), False, LABOR_CODE),
    (date(2025, 5, 1), False, LABOR_CODE),
    (date(2025, 5, 2), False, SWAP_2025),
    (date(2025, 9, 1), False, LABOR_CODE),
    (date(2025, 9, 2), False, LABOR_CODE),
    (date(2026, 1, 1), False, LABOR_CODE),
    *[(date(2026, 2, d), False, LABOR_CODE) for d in range(16, 21)],
    (date(2026, 4, 26), False, LABOR_CODE),  # Hùng Kings' day on a Sunday,
    (date(2026, 4, 27), False, LABOR_CODE),  # taken on the Monday
    (date(2026, 4, 30), False, LABOR_CODE),
    (date(2026, 5, 1), False, LABOR_CODE),
    (date(2026, 8, 22), True, SWAP_2026),  # the Saturday worked for Monday 31 August
    (date(2026, 8, 31), False, SWAP_2026),
    (date(2026, 9, 1), False, LABOR_CODE),
    (date(2026, 9, 2), False, LABOR_CODE),
    (date(2026, 11, 24), False, CULTURAL_DAY),
]


def test_the_announced_days_of_2025_and_2026() -> None:
    # The bundled calendar (the pinned `holidays` package) has exactly these days: a new version
    # of the package that changes one fails here and is checked against its announcement.
    bundled = [
        (a.day, a.working) for a in announced_days([2025, 2026]) if a.day.year in (2025, 2026)
    ]
    assert bundled == [(day, working) for day, working, _ in ANNOUNCED_2025_2026]
    for day, working, source in ANNOUNCED_2025_2026:
        assert CAL.is_working_day(day) is working, (day, source)
    assert all(a.source.startswith("holidays ") for a in announced_days([2025, 2026]))


def test_vietnam_cultural_day_is_a_day_off_from_2026() -> None:
    assert not CAL.is_working_day(date(2026, 11, 24))
    assert not CAL.is_working_day(date(2027, 11, 24))
    assert CAL.is_working_day(date(2025, 11, 24))  # a Monday, before the day was instituted


def test_override_entries_carry_their_source(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "override.json"
    path.write_text(
        '{"days_off": [{"date": "2026-11-04", "name": "Ngày nghỉ", "source": "Decision X"}],'
        ' "workdays": ["2026-11-07"]}'
    )
    announced = {a.day: a for a in announced_days([2026], path)}
    assert announced[date(2026, 11, 4)].source == "Decision X"
    assert announced[date(2026, 11, 7)].source == "override override.json"
    assert announced[date(2026, 11, 7)].working


instants = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 6, 30)).map(
    lambda d: d.replace(tzinfo=LOCAL_TZ)
)


@given(instants, st.integers(min_value=0, max_value=60), st.booleans())
def test_appointment_never_before_reception(received: datetime, days: int, cutoff: bool) -> None:
    appointment = CAL.appointment(received, days, has_cutoff=cutoff)
    assert appointment >= received
    assert (
        CAL.working_time(CAL.start_of_clock(received, has_cutoff=cutoff), appointment) == days * DAY
    )


@given(instants, st.integers(min_value=0, max_value=60), st.booleans())
@example(datetime(2026, 11, 3, 0, 0, tzinfo=LOCAL_TZ), 2, False)  # the clock starts at midnight
@example(datetime(2026, 11, 7, 10, 0, tzinfo=LOCAL_TZ), 3, True)  # a Saturday
def test_appointment_is_the_working_clock_run_from_the_start(
    received: datetime, days: int, cutoff: bool
) -> None:
    # The definition, computed day by day; `appointment` takes a shortcut (and a cache).
    start = CAL.start_of_clock(received, has_cutoff=cutoff)
    assert CAL.appointment(received, days, has_cutoff=cutoff) == CAL.advance(start, days * DAY)
    assert CAL.appointment(received, days, has_cutoff=cutoff) == CAL.advance(start, days * DAY)


@given(instants, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40)))
def test_advance_and_working_time_are_inverse(start: datetime, working: timedelta) -> None:
    assert CAL.working_time(start, CAL.advance(start, working)) == working


@given(instants, instants, instants)
def test_working_time_is_additive(a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    assert CAL.working_time(a, c) == CAL.working_time(a, b) + CAL.working_time(b, c)
