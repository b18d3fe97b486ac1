"""The working-day calendar and the working clock (DOMAIN.md, "The project's precise rules").

Pure: no I/O besides reading an optional override file at construction. The working clock runs all
24 hours of a working day and stands still on other days; appointments, pauses and elapsed time
are all measured on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from importlib.metadata import version
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = timedelta(hours=24)
OFFICE_OPENS = time(8, 0)
RECEPTION_CUTOFF = time(15, 0)


class Timeliness(StrEnum):
    EARLY = "early"
    ON_TIME = "on_time"
    LATE = "late"


@dataclass(frozen=True, slots=True)
class Announced:
    """A day the calendar departs from Monday–Friday on (a holiday, a day off given in exchange,
    a Saturday worked in exchange), and where it comes from."""

    day: date
    working: bool
    name: str
    source: str


def _override_entries(
    values: list[str | dict[str, str]], origin: str
) -> list[tuple[date, str, str]]:
    # An entry is a date, or {"date": ..., "name": ..., "source": ...} naming the decision.
    entries = []
    for value in values:
        if isinstance(value, str):
            entries.append((date.fromisoformat(value), "", origin))
        else:
            entries.append(
                (
                    date.fromisoformat(value["date"]),
                    value.get("name", ""),
                    value.get("source", origin),
                )
            )
    return entries


def announced_days(years: Iterable[int], override: Path | None = None) -> list[Announced]:
    """The holidays and swap days of those years, each with its source: the `holidays` package
    (which cites the Labor Code and the government's announcements), then the override file.

    The override is JSON: {"days_off": ["2026-01-02"], "workdays": ["2026-01-10"]}, where an entry
    may also be {"date": "2026-01-02", "name": "...", "source": "the announcement"}. A workday
    announced anywhere wins over a day off on the same date.
    """
    vn = holidays.country_holidays("VN", years=list(years))
    package = f"holidays {version('holidays')} (VN)"
    found: dict[tuple[date, bool], Announced] = {}
    for day, name in sorted(vn.items()):
        found[(day, False)] = Announced(day, False, name, package)
    for day in sorted(getattr(vn, "weekend_workdays", set())):
        found[(day, True)] = Announced(day, True, "Working day in exchange", package)
    if override is not None:
        data = json.loads(override.read_text())
        origin = f"override {override.name}"
        for working, key in ((False, "days_off"), (True, "workdays")):
            for day, name, source in _override_entries(data.get(key, []), origin):
                found[(day, working)] = Announced(day, working, name, source)
    workdays = {day for day, working in found if working}
    return sorted(
        (a for a in found.values() if a.working or a.day not in workdays),
        key=lambda a: a.day,
    )


@dataclass(frozen=True)
class WorkingCalendar:
    """Monday–Friday, minus public holidays and local days off, plus government swap workdays."""

    days_off: frozenset[date] = field(default_factory=frozenset)
    extra_workdays: frozenset[date] = field(default_factory=frozenset)
    # (day, n) -> the n-th working day after it: counters ask the same few questions all day.
    _nth_after: dict[tuple[date, int], date] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def vietnam(cls, years: Iterable[int], override: Path | None = None) -> WorkingCalendar:
        """Vietnam's holidays and swap days from the `holidays` package, plus a local override file
        (see `announced_days`)."""
        announced = announced_days(years, override)
        return cls(
            frozenset(a.day for a in announced if not a.working),
            frozenset(a.day for a in announced if a.working),
        )

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        return day.weekday() < 5 and day not in self.days_off

    def next_working_day(self, day: date) -> date:
        day += timedelta(days=1)
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    # ------------------------------------------------------------------ the working clock

    def start_of_clock(self, received_at: datetime, *, has_cutoff: bool) -> datetime:
        """When the clock starts: the reception, or 08:00 of the next working day when received on
        a non-working day or after the procedure's 15:00 cut-off."""
        local = received_at.astimezone(LOCAL_TZ)
        late = has_cutoff and local.time() >= RECEPTION_CUTOFF
        if self.is_working_day(local.date()) and not late:
            return local
        return datetime.combine(self.next_working_day(local.date()), OFFICE_OPENS, LOCAL_TZ)

    def advance(self, start: datetime, working: timedelta) -> datetime:
        """The instant when the working clock has run `working` since `start`."""
        current = start.astimezone(LOCAL_TZ)
        remaining = working
        while True:
            day = current.date()
            if self.is_working_day(day):
                midnight = datetime.combine(day + timedelta(days=1), time(0), LOCAL_TZ)
                left_today = midnight - current
                if remaining <= left_today:
                    return current + remaining
                remaining -= left_today
                current = midnight
            else:
                current = datetime.combine(self.next_working_day(day), time(0), LOCAL_TZ)

    def rewind(self, end: datetime, working: timedelta) -> datetime:
        """The instant on a working day from which the working clock runs `working` up to `end`:
        `advance` backwards, so the clock's start is recovered from an appointment."""
        current = end.astimezone(LOCAL_TZ)
        remaining = working
        while remaining > timedelta(0):
            # The day the clock last ran in before `current` (00:00 belongs to the day before).
            day = (current - timedelta(microseconds=1)).date()
            day_start = datetime.combine(day, time(0), LOCAL_TZ)
            if self.is_working_day(day):
                ran_today = current - day_start
                if remaining <= ran_today:
                    return current - remaining
                remaining -= ran_today
            current = day_start
        return current

    def paused_time(self, start: datetime, asked_at: datetime, back_at: datetime) -> timedelta:
        """The working-clock time a supplementation wait lasted once the clock had started: a
        wait that began before the start (a request on the Sunday of a Sunday reception) pauses
        only the part after it."""
        return self.working_time(max(asked_at, start), back_at)

    def elapsed_working_days(self, start: datetime, end: datetime, paused: timedelta) -> float:
        """(Working-clock time from the clock's start to the end − paused time) / 24 h, never
        negative, to 4 decimals: the one rule behind every elapsed time and the histogram."""
        worked = self.working_time(start, end) - paused
        return round(max(worked, timedelta(0)) / DAY, 4)

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """Working-clock time between two instants (zero if end is not after start)."""
        a = start.astimezone(LOCAL_TZ)
        b = end.astimezone(LOCAL_TZ)
        total = timedelta(0)
        while a < b:
            midnight = datetime.combine(a.date() + timedelta(days=1), time(0), LOCAL_TZ)
            segment_end = min(midnight, b)
            if self.is_working_day(a.date()):
                total += segment_end - a
            a = segment_end
        return total

    def nth_working_day_after(self, day: date, n: int) -> date:
        """The n-th working day after `day` (`day` itself for n = 0)."""
        key = (day, n)
        found = self._nth_after.get(key)
        if found is None:
            if len(self._nth_after) > 100_000:  # years of days × procedures' durations
                self._nth_after.clear()
            found = day
            for _ in range(n):
                found = self.next_working_day(found)
            self._nth_after[key] = found
        return found

    def appointment(
        self, received_at: datetime, working_days: float, *, has_cutoff: bool
    ) -> datetime:
        """The appointment (ngày hẹn trả): N × 24 h of working clock after the start; N may be
        part of a day (half a day: 12 h of the clock)."""
        start = self.start_of_clock(received_at, has_cutoff=has_cutoff)
        if start.time() == time(0) or working_days != int(working_days):
            return self.advance(start, working_days * DAY)
        # The clock starts on a working day, inside it: N whole working days later it reads the
        # same time of day, on the N-th working day after (what `advance` computes day by day,
        # and what a submission asks for at every request).
        return datetime.combine(
            self.nth_working_day_after(start.date(), int(working_days)), start.time(), LOCAL_TZ
        )


def classify(end: datetime, appointment: datetime, *, supplement_requests: int = 0) -> Timeliness:
    """Early if the end falls on an earlier date than the appointment, on time if on its date and
    not after it, late otherwise; a second supplementation request makes it late regardless."""
    if supplement_requests > 1:
        return Timeliness.LATE
    end_day = end.astimezone(LOCAL_TZ).date()
    due_day = appointment.astimezone(LOCAL_TZ).date()
    if end_day < due_day:
        return Timeliness.EARLY
    if end <= appointment:
        return Timeliness.ON_TIME
    return Timeliness.LATE
