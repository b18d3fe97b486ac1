"""Reference data: administrative units and the procedure catalog, loaded from versioned files."""

from __future__ import annotations

import asyncio
import json
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from shared.calendar import DAY
from shared.logging import get_logger

log = get_logger(__name__)

Level = Literal["province", "district", "commune"]
REFERENCE_DIR = Path(__file__).parent / "reference_data"
# A procedure's time stated in working hours (4 giờ làm việc) counts 8 of them to the working day
# (DOMAIN.md: some systems count 1 working day = 8 working hours): 4 working hours are half a day.
WORKING_HOURS_PER_DAY = 8


@dataclass(frozen=True, slots=True)
class Unit:
    code: str
    name: str
    level: Level
    parent: str | None
    province: str


@dataclass(frozen=True, slots=True)
class Component:
    code: str
    required: bool


@dataclass(frozen=True, slots=True)
class Procedure:
    """A procedure (thủ tục hành chính) of the catalog."""

    code: str
    name: str
    field: str
    competent_level: Level
    # The legal processing time in working days: whole (3), or a whole number of working hours
    # (0.5 for 4 working hours).
    processing_days: float
    cutoff_next_day: bool
    result_is_paper: bool
    fee_bearing: bool
    online_level: int
    components: tuple[Component, ...]

    @property
    def required_components(self) -> frozenset[str]:
        return frozenset(c.code for c in self.components if c.required)

    @property
    def processing_time(self) -> timedelta:
        """The working-clock time from the clock's start to the appointment: N × 24 h (half a
        working day is 12 h of the clock, which runs all 24 hours of a working day)."""
        return self.processing_days * DAY

    @property
    def whole_processing_days(self) -> int:
        """The processing time rounded up to whole working days (what events carried before a
        procedure could take part of a day)."""
        return math.ceil(self.processing_days)


@dataclass(frozen=True, slots=True)
class Province:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class ReferenceData:
    version: str
    units: dict[str, Unit]
    procedures: dict[str, Procedure]
    provinces: dict[str, Province]

    def province_of(self, unit_code: str) -> str | None:
        unit = self.units.get(unit_code)
        return None if unit is None else unit.province

    def offers(self, unit: Unit, procedure: Procedure) -> bool:
        """A unit receives the procedures of its own level (the competent level's counters)."""
        return unit.level == procedure.competent_level


def load_reference(directory: Path) -> ReferenceData:
    units_doc = json.loads((directory / "units.json").read_text(encoding="utf-8"))
    procs_doc = json.loads((directory / "procedures.json").read_text(encoding="utf-8"))
    units = {u["code"]: Unit(**u) for u in units_doc["units"]}
    procedures = {p["code"]: _procedure(p) for p in procs_doc["procedures"]}
    for unit in units.values():
        if unit.parent is not None and unit.parent not in units:
            raise ValueError(f"unit {unit.code} has unknown parent {unit.parent}")
    provinces = {p["code"]: Province(**p) for p in units_doc["provinces"]}
    return ReferenceData(
        f"{units_doc['version']}/{procs_doc['version']}", units, procedures, provinces
    )


def processing_days(entry: dict[str, Any]) -> float:
    """A catalog entry's processing time in working days, from `processing_days` (whole, or a
    decimal such as 0.5) or `processing_hours` (working hours, 8 to the day): exactly one of them,
    a whole number of working hours, more than zero."""
    code = entry.get("code")
    if ("processing_days" in entry) == ("processing_hours" in entry):
        raise ValueError(f"procedure {code}: give one of processing_days or processing_hours")
    if "processing_hours" in entry:
        hours = entry["processing_hours"]
        if not isinstance(hours, int) or isinstance(hours, bool):
            raise ValueError(f"procedure {code}: processing_hours must be a whole number")
        days: float = hours / WORKING_HOURS_PER_DAY
    else:
        days = entry["processing_days"]
        if not isinstance(days, int | float) or isinstance(days, bool):
            raise ValueError(f"procedure {code}: processing_days must be a number")
    hours_exact = days * WORKING_HOURS_PER_DAY
    if days <= 0 or hours_exact != round(hours_exact):
        raise ValueError(
            f"procedure {code}: processing time {days} working days is not a positive whole "
            f"number of working hours ({WORKING_HOURS_PER_DAY} to the day)"
        )
    # Whole days stay integers: they are what every event carried so far.
    return int(days) if days == int(days) else days


def _procedure(entry: dict[str, Any]) -> Procedure:
    others = {
        k: v
        for k, v in entry.items()
        if k not in {"components", "processing_days", "processing_hours"}
    }
    return Procedure(
        **others,
        processing_days=processing_days(entry),
        components=tuple(Component(**c) for c in entry["components"]),
    )


def reload_on_sighup(directory: Path, install: Callable[[ReferenceData], None]) -> None:
    """Reload the versioned reference files on SIGHUP (in the running loop) and hand them to
    `install`; a broken file keeps the data already loaded."""

    def reload() -> None:
        try:
            reference = load_reference(directory)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("reference reload failed, keeping the loaded version", error=repr(exc))
        else:
            install(reference)
            log.info("reference reloaded", version=reference.version)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
