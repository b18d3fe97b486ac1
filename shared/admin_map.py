"""Vietnam's administrative maps over time and the one-stop units derived from them (issue 13).

Pure apart from `load_map` reading one versioned file of `reference_data/maps/` (written by
`python -m tools.refdata.generate`). A map file holds several structures (the 63-province map until
30 June 2025, the 34-province one from 1 July 2025), each province, district and commune under the
structure it belongs to, and every unit that ended with its successors, in force the day after.
Validity is by local calendar day (Asia/Ho_Chi_Minh), `valid_to` included. docs/reference-data.md
gives the unit code scheme.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
MAPS_DIR = Path(__file__).parent / "reference_data" / "maps"
FORMAT = 1

Level = Literal["province", "district", "commune"]
_CODE_DIGITS: dict[str, int] = {"province": 2, "district": 3, "commune": 5}
_SECTIONS: tuple[tuple[Level, str], ...] = (
    ("province", "provinces"),
    ("district", "districts"),
    ("commune", "communes"),
)
_FILE_VERSION = re.compile(r"^vietnam-(\d+(?:\.\d+)*)\.json$")


class AdminMapError(Exception):
    """Root of the administrative map's errors."""


class MapFileError(AdminMapError):
    """A map file that is not a total, consistent map (a reload keeps the map it had)."""


class UnknownUnit(AdminMapError):
    """No one-stop unit has ever had this code."""

    def __init__(self, code: str) -> None:
        super().__init__(f"unknown unit {code}")
        self.code = code


class UnitNotInForce(AdminMapError):
    """The unit exists in the map but not on that day; `successors` are the units that took over
    its territory and are in force on that day (empty if it did not exist yet)."""

    def __init__(self, code: str, day: date, successors: tuple[OneStopUnit, ...]) -> None:
        named = ", ".join(f"{u.code} ({u.name})" for u in successors) or "none"
        super().__init__(f"unit {code} is not in force on {day.isoformat()}; successors: {named}")
        self.code = code
        self.day = day
        self.successors = successors


def local_day(at: datetime | date) -> date:
    """The calendar day in Vietnam of an instant (a date stands for itself)."""
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("an instant needs a time zone")
        return at.astimezone(LOCAL_TZ).date()
    return at


@dataclass(frozen=True, slots=True)
class Validity:
    """Days in force: from `valid_from` to `valid_to`, both included; None is open."""

    valid_from: date | None
    valid_to: date | None

    def covers(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )


@dataclass(frozen=True, slots=True)
class Structure:
    """One organisation of the country: its levels and the days it is in force."""

    id: str
    name: str
    levels: tuple[Level, ...]
    validity: Validity

    @property
    def has_districts(self) -> bool:
        return "district" in self.levels


@dataclass(frozen=True, slots=True)
class Division:
    """A province, district or commune (xã, phường, thị trấn, đặc khu) of one structure, with its
    official code (General Statistics Office) and its successors' codes in the next structure."""

    level: Level
    structure: str
    code: str
    name: str
    short_name: str
    type: str
    province: str
    district: str | None
    successors: tuple[str, ...]
    validity: Validity


@dataclass(frozen=True, slots=True)
class OneStopUnit:
    """A one-stop unit (bộ phận một cửa, trung tâm phục vụ hành chính công) of one structure."""

    code: str
    name: str
    level: Level
    structure: str
    province: str
    parent: str | None
    division: Division
    validity: Validity
    # The codes of the units that take over in the next structure (the default part first).
    successors: tuple[str, ...]


def unit_code(division: Division, *, with_district: bool) -> str:
    """T{province}, T{province}.H{district}, T{province}.H{district}.X{commune} (maps with
    districts) or T{province}.X{commune} (maps without): the official codes, joinable with
    national data, and never the same code for two communes of different maps."""
    province = f"T{division.province}"
    if division.level == "province":
        return province
    if division.level == "district":
        return f"{province}.H{division.code}"
    if with_district:
        return f"{province}.H{division.district}.X{division.code}"
    return f"{province}.X{division.code}"


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


@dataclass(frozen=True)
class AdminMap:
    """The structures of one map file, their divisions and one-stop units, looked up by day."""

    version: str
    provenance: Mapping[str, Any]
    structures: tuple[Structure, ...]
    divisions: tuple[Division, ...]
    units: tuple[OneStopUnit, ...]
    _by_code: dict[str, tuple[OneStopUnit, ...]] = field(init=False, repr=False, compare=False)
    _provinces: dict[tuple[str, str], Division] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_code: dict[str, list[OneStopUnit]] = {}
        for unit in sorted(self.units, key=lambda u: u.validity.valid_from or date.min):
            by_code.setdefault(unit.code, []).append(unit)
        object.__setattr__(self, "_by_code", {c: tuple(v) for c, v in by_code.items()})
        provinces = {(d.structure, d.code): d for d in self.divisions if d.level == "province"}
        object.__setattr__(self, "_provinces", provinces)

    # ------------------------------------------------------------------ structures

    def structure(self, structure_id: str) -> Structure:
        for structure in self.structures:
            if structure.id == structure_id:
                return structure
        raise KeyError(structure_id)

    def structure_at(self, at: datetime | date) -> Structure:
        """The structure in force on that day."""
        day = local_day(at)
        for structure in self.structures:
            if structure.validity.covers(day):
                return structure
        raise AdminMapError(f"no structure in force on {day.isoformat()}")

    def provinces(self, structure_id: str) -> list[Division]:
        """The provinces of a structure, by code (what an index period ranks among)."""
        found = [d for (s, _), d in self._provinces.items() if s == structure_id]
        return sorted(found, key=lambda d: d.code)

    def province(self, structure_id: str, code: str) -> Division:
        return self._provinces[(structure_id, code)]

    # ------------------------------------------------------------------ units by day

    def versions(self, code: str) -> tuple[OneStopUnit, ...]:
        """Every version of a unit code, oldest first (a provincial center keeps its code across
        structures when its province keeps its code)."""
        return self._by_code.get(code, ())

    def unit_at(self, code: str, at: datetime | date) -> OneStopUnit | None:
        """The unit with that code in force on that day, if any."""
        day = local_day(at)
        for unit in self._by_code.get(code, ()):
            if unit.validity.covers(day):
                return unit
        return None

    def units_at(self, at: datetime | date) -> list[OneStopUnit]:
        """Every unit in force on that day."""
        day = local_day(at)
        return [u for u in self.units if u.validity.covers(day)]

    def successors(self, code: str, at: datetime | date) -> tuple[OneStopUnit, ...]:
        """The units in force on that day that took over a unit's territory: the unit itself if
        it is in force, its successors (through every reorganisation since) if it ended before,
        none if it had not begun."""
        day = local_day(at)
        current = self.unit_at(code, day)
        if current is not None:
            return (current,)
        ended = [
            u
            for u in self._by_code.get(code, ())
            if u.validity.valid_to is not None and u.validity.valid_to < day
        ]
        if not ended:
            return ()
        frontier = [ended[-1]]
        found: list[OneStopUnit] = []
        seen: set[tuple[str, str]] = set()
        while frontier:
            unit = frontier.pop(0)
            if (unit.code, unit.structure) in seen:
                continue
            seen.add((unit.code, unit.structure))
            if unit.validity.covers(day):
                found.append(unit)
                continue
            if unit.validity.valid_to is None:
                continue
            # A successor is the version of its code in force the day after the unit ended.
            handover = unit.validity.valid_to + timedelta(days=1)
            frontier.extend(
                v for c in unit.successors if (v := self.unit_at(c, handover)) is not None
            )
        return tuple(found)

    def admit(self, code: str, at: datetime | date) -> OneStopUnit:
        """The unit in force for a reception or a transfer on that day, or the refusal that names
        its successors."""
        unit = self.unit_at(code, at)
        if unit is not None:
            return unit
        if code not in self._by_code:
            raise UnknownUnit(code)
        raise UnitNotInForce(code, local_day(at), self.successors(code, at))

    def province_at(self, code: str, at: datetime | date) -> Division | None:
        """The province, under the structure in force on that day, that a unit belongs to or
        whose territory took over the unit's (a unit not yet begun on that day: None)."""
        successors = self.successors(code, at)
        if not successors:
            return None
        first = successors[0]
        return self._provinces[(first.structure, first.province)]


# ---------------------------------------------------------------------- parsing and loading


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


def _structure(record: Mapping[str, Any]) -> Structure:
    levels = tuple(record["levels"])
    if "province" not in levels or "commune" not in levels:
        raise MapFileError(f"structure {record['id']}: needs provinces and communes")
    return Structure(
        id=str(record["id"]),
        name=str(record["name"]),
        levels=levels,
        validity=Validity(_day(record["valid_from"]), _day(record["valid_to"])),
    )


def _division(
    level: Level, record: Mapping[str, Any], structures: dict[str, Structure]
) -> Division:
    structure = structures.get(str(record.get("structure")))
    code = str(record.get("code", ""))
    if structure is None:
        raise MapFileError(f"{level} {code}: unknown structure")
    if len(code) != _CODE_DIGITS[level] or not code.isdigit():
        raise MapFileError(f"{level} {code!r}: not a {_CODE_DIGITS[level]}-digit official code")
    name = str(record.get("name") or "").strip()
    if not name:
        raise MapFileError(f"{level} {code}: no name")
    district = record.get("district") if level == "commune" else None
    # A unit is in force with its structure unless its record says otherwise (a change inside a
    # structure, such as a later commune merger, comes as a new data version with unit dates).
    validity = Validity(
        _day(record["valid_from"]) if "valid_from" in record else structure.validity.valid_from,
        _day(record["valid_to"]) if "valid_to" in record else structure.validity.valid_to,
    )
    return Division(
        level=level,
        structure=structure.id,
        code=code,
        name=name,
        short_name=str(record.get("short_name") or name),
        type=str(record.get("type") or ""),
        province=code if level == "province" else str(record.get("province", "")),
        district=None if district is None else str(district),
        successors=tuple(str(s) for s in record.get("successors", ())),
        validity=validity,
    )


def _unit_name(division: Division, structure: Structure, index: _Index) -> str:
    """Names by the decree of the structure's time: under a map with districts, the one-stop
    departments of district and commune (Decree 61/2018); under the two-level map, the
    communes' Public Administration Service Centers (Decree 118/2025)."""
    if division.level == "province":
        return f"Trung tâm Phục vụ hành chính công {_lower_first(division.name)}"
    province = index.divisions[(division.structure, "province", division.province)].short_name
    if division.level == "district":
        return f"Bộ phận Một cửa {_lower_first(division.name)}, {province}"
    if structure.has_districts:
        district = index.divisions[(division.structure, "district", str(division.district))]
        return (
            f"Bộ phận Một cửa {_lower_first(division.name)}, "
            f"{_lower_first(district.name)}, {province}"
        )
    return f"Trung tâm Phục vụ hành chính công {_lower_first(division.name)}, {province}"


@dataclass(frozen=True)
class _Index:
    structures: dict[str, Structure]
    divisions: dict[tuple[str, Level, str], Division]

    def structure_on(self, day: date) -> Structure | None:
        return next((s for s in self.structures.values() if s.validity.covers(day)), None)

    def division(self, structure: str, level: Level, code: str, *, of: str) -> Division:
        found = self.divisions.get((structure, level, code))
        if found is None:
            raise MapFileError(f"{of}: no {level} {code} in structure {structure}")
        return found

    def code_of(self, division: Division) -> str:
        return unit_code(division, with_district=self.structures[division.structure].has_districts)


def _unit(division: Division, index: _Index) -> OneStopUnit:
    structure = index.structures[division.structure]
    code = index.code_of(division)
    province = index.division(division.structure, "province", division.province, of=code)
    parent: str | None = None
    if division.level != "province":
        parent = index.code_of(province)
    if division.level == "commune" and structure.has_districts:
        district = index.division(division.structure, "district", str(division.district), of=code)
        parent = index.code_of(district)
    ended = division.validity.valid_to
    after = None if ended is None else index.structure_on(ended + timedelta(days=1))
    if after is None and division.successors:
        raise MapFileError(f"{code}: successors but nothing in force after it ends")
    # A province is taken over by a province; a district or a commune by communes, of the
    # structure in force the day after it ends.
    level: Level = "province" if division.level == "province" else "commune"
    successors = tuple(
        index.code_of(index.division(after.id, level, s, of=code))
        for s in division.successors
        if after is not None
    )
    if after is not None and not successors:
        raise MapFileError(f"{code} ends on {ended} but nothing takes over")
    return OneStopUnit(
        code=code,
        name=_unit_name(division, structure, index),
        level=division.level,
        structure=division.structure,
        province=division.province,
        parent=parent,
        division=division,
        validity=division.validity,
        successors=successors,
    )


def parse_map(document: Mapping[str, Any]) -> AdminMap:
    """A map document checked whole: structures one after the other, official codes and names,
    every unit in a province of its structure, every unit that ends with successors that exist
    the day after."""
    if document.get("format") != FORMAT:
        raise MapFileError(f"map format {document.get('format')!r}, expected {FORMAT}")
    try:
        structures = {s.id: s for s in map(_structure, document["structures"])}
        divisions = [
            _division(level, record, structures)
            for level, key in _SECTIONS
            for record in document.get(key, ())
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise MapFileError(f"malformed map: {error!r}") from error
    ordered = sorted(structures.values(), key=lambda s: s.validity.valid_from or date.min)
    for before, after in pairwise(ordered):
        ended = before.validity.valid_to
        if ended is None or after.validity.valid_from is None or after.validity.valid_from <= ended:
            raise MapFileError(f"structures {before.id} and {after.id} overlap")
    keyed = {(d.structure, d.level, d.code): d for d in divisions}
    if len(keyed) != len(divisions):
        raise MapFileError("a code appears twice at one level of one structure")
    index = _Index(structures, keyed)
    units = tuple(_unit(d, index) for d in divisions)
    return AdminMap(
        version=str(document["version"]),
        provenance=document.get("provenance", {}),
        structures=tuple(ordered),
        divisions=tuple(divisions),
        units=units,
    )


def _version_key(path: Path) -> tuple[int, ...]:
    match = _FILE_VERSION.match(path.name)
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def latest_map_file(directory: Path = MAPS_DIR) -> Path:
    """The newest data version in a directory (vietnam-2025.07.1.json < vietnam-2026.01.1.json)."""
    files = [p for p in directory.glob("vietnam-*.json") if _FILE_VERSION.match(p.name)]
    if not files:
        raise MapFileError(f"no map file in {directory}")
    return max(files, key=_version_key)


def load_map(path: Path | None = None) -> AdminMap:
    """The map of a file (the newest bundled version by default)."""
    source = path if path is not None else latest_map_file()
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise MapFileError(f"{source}: {error}") from error
    return parse_map(document)
