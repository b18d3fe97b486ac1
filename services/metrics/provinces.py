"""Which provinces an index period ranks among, and to which of them each unit's dossiers count.

A period is ranked among the provinces of the structure in force on its last day (issue 13): a
period ending before 1 July 2025 among the 63 of the old map, a later one among the 34. A unit
counts to the province of that structure that it belongs to or whose territory took over its own,
so a period that straddles the change counts the old units' dossiers to their successors'
province. Pure: the reference data is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from services.metrics.index import Period, Population
from shared.admin_map import Division, Structure
from shared.reference import ReferenceData

_LAST_INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Ranking:
    """The structure a period is ranked on, with its provinces by code."""

    structure: Structure
    provinces: dict[str, Division]
    # The instant whose calendar day places each unit (the period's last day).
    last_instant: datetime

    def province_of(self, reference: ReferenceData, unit: str) -> Division | None:
        """The province of this structure that counts a unit's dossiers: its own, or the one that
        took its territory over; None for a unit the map does not know or that had not begun."""
        province = reference.province_at(unit, self.last_instant)
        if province is None or province.structure != self.structure.id:
            return None
        return province


def ranking(reference: ReferenceData, period: Period) -> Ranking:
    """The structure in force on the period's last day, and its provinces."""
    last = period.end - _LAST_INSTANT
    structure = reference.structure_at(last)
    provinces = {p.code: p for p in reference.map.provinces(structure.id)}
    return Ranking(structure, provinces, last)


def by_province(
    units: dict[str, Population], reference: ReferenceData, on: Ranking
) -> dict[str, Population]:
    """The units' populations summed into the provinces of the ranking's structure (every count
    of a population is a number of dossiers, so a province's is the sum of its units'). A unit
    the map cannot place counts in no province."""
    out: dict[str, Population] = {}
    for unit, population in units.items():
        province = on.province_of(reference, unit)
        if province is None:
            continue
        total = out.setdefault(province.code, Population())
        for f in fields(Population):
            setattr(total, f.name, getattr(total, f.name) + getattr(population, f.name))
    return out
