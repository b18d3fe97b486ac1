"""Reference data: Vietnam's administrative maps and their one-stop units, and the procedure
catalog, loaded from versioned files (the map: `reference_data/maps/`, its newest data version)."""

from __future__ import annotations

import asyncio
import json
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.admin_map import (
    AdminMap,
    AdminMapError,
    Division,
    Level,
    OneStopUnit,
    Structure,
    UnitNotInForce,
    UnknownUnit,
    latest_map_file,
    load_map,
)
from shared.calendar import DAY
from shared.logging import get_logger

__all__ = [
    "REFERENCE_DIR",
    "AdminMapError",
    "Component",
    "Level",
    "Procedure",
    "ReferenceData",
    "Unit",
    "UnitNotInForce",
    "UnknownUnit",
    "load_reference",
    "reload_on_sighup",
]

log = get_logger(__name__)

REFERENCE_DIR = Path(__file__).parent / "reference_data"
# A procedure's time stated in working hours (4 giờ làm việc) counts 8 of them to the working day
# (DOMAIN.md: some systems count 1 working day = 8 working hours): 4 working hours are half a day.
WORKING_HOURS_PER_DAY = 8

# A one-stop unit is one version of a unit code under one structure of the map.
Unit = OneStopUnit


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


def competent_level(procedure_level: Level, structure: Structure) -> Level:
    """The level whose counters receive a procedure under a structure. Under the two-level
    government (from 1 July 2025) there are no districts: the catalog's district-level
    procedures passed to the communes' centers (Law on the Organisation of Local Government
    2025; Decree 118/2025/NĐ-CP), so a commune center receives them."""
    if procedure_level == "district" and not structure.has_districts:
        return "commune"
    return procedure_level


@dataclass(frozen=True)
class ReferenceData:
    """The map and the catalog of one load (a SIGHUP reload builds a new one)."""

    version: str
    map: AdminMap
    procedures: dict[str, Procedure]
    # Every unit code ever in the map, with its latest version (names, provinces, labels).
    units: dict[str, Unit] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        latest = {u.code: u for u in self.map.units}
        for code in latest:
            latest[code] = self.map.versions(code)[-1]
        object.__setattr__(self, "units", latest)

    def admit(self, code: str, at: datetime | date) -> Unit:
        """The unit in force at that instant for a reception or a transfer; `UnknownUnit` if no
        unit ever had this code, `UnitNotInForce` (naming the successors) if it was not in force
        that day."""
        return self.map.admit(code, at)

    def units_at(self, at: datetime | date) -> list[Unit]:
        return self.map.units_at(at)

    def structure_at(self, at: datetime | date) -> Structure:
        return self.map.structure_at(at)

    def province_of(self, unit_code: str) -> str | None:
        """The province a unit code belongs to under its own structure (the code's `T{pp}`)."""
        unit = self.units.get(unit_code)
        return None if unit is None else unit.province

    def province_at(self, unit_code: str, at: datetime | date) -> Division | None:
        """The province of the structure in force on that day that the unit belongs to, or that
        took over its territory (its first successor's)."""
        return self.map.province_at(unit_code, at)

    def offers(self, unit: Unit, procedure: Procedure) -> bool:
        """A unit receives the procedures of its own level under its structure (the competent
        level's counters)."""
        structure = self.map.structure(unit.structure)
        return unit.level == competent_level(procedure.competent_level, structure)


def load_reference(directory: Path) -> ReferenceData:
    """The newest map data version of `directory/maps/` and `directory/procedures.json`."""
    admin_map = load_map(latest_map_file(directory / "maps"))
    procs_doc = json.loads((directory / "procedures.json").read_text(encoding="utf-8"))
    procedures = {p["code"]: _procedure(p) for p in procs_doc["procedures"]}
    return ReferenceData(f"{admin_map.version}/{procs_doc['version']}", admin_map, procedures)


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
    """Reload the versioned reference files on SIGHUP and hand them to `install` on the loop; a
    broken file keeps the data already loaded. The map takes about a second to parse: it is read
    in a thread, so requests and consumers go on meanwhile."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        try:
            reference = await loop.run_in_executor(None, load_reference, directory)
        except (OSError, ValueError, KeyError, TypeError, AdminMapError) as exc:
            log.error("reference reload failed, keeping the loaded version", error=repr(exc))
        else:
            install(reference)
            log.info("reference reloaded", version=reference.version)

    def on_signal() -> None:
        task = loop.create_task(reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, on_signal)
