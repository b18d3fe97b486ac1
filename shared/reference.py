"""Reference data: administrative units and the procedure catalog, loaded from versioned files."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shared.logging import get_logger

log = get_logger(__name__)

Level = Literal["province", "district", "commune"]
REFERENCE_DIR = Path(__file__).parent / "reference_data"


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
    processing_days: int
    cutoff_next_day: bool
    result_is_paper: bool
    fee_bearing: bool
    online_level: int
    components: tuple[Component, ...]

    @property
    def required_components(self) -> frozenset[str]:
        return frozenset(c.code for c in self.components if c.required)


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
    procedures = {
        p["code"]: Procedure(
            **{k: v for k, v in p.items() if k != "components"},
            components=tuple(Component(**c) for c in p["components"]),
        )
        for p in procs_doc["procedures"]
    }
    for unit in units.values():
        if unit.parent is not None and unit.parent not in units:
            raise ValueError(f"unit {unit.code} has unknown parent {unit.parent}")
    provinces = {p["code"]: Province(**p) for p in units_doc["provinces"]}
    return ReferenceData(
        f"{units_doc['version']}/{procs_doc['version']}", units, procedures, provinces
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
