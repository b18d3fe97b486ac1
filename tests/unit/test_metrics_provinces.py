"""The province index per structure: which provinces a period ranks among, where units count."""

from __future__ import annotations

import pytest

from services.metrics.index import IndexConfig, Population, league, parse_period
from services.metrics.provinces import by_province, ranking
from shared.reference import REFERENCE_DIR, ReferenceData, load_reference

CONFIG = IndexConfig.load()


@pytest.fixture(scope="module")
def reference() -> ReferenceData:
    return load_reference(REFERENCE_DIR)


def pop(in_period: int, on_time: int, received: int = 0, online: int = 0) -> Population:
    return Population(
        in_period=in_period, on_time=on_time, received=received, received_online=online
    )


# The same units in every period: Hà Giang's center, district and commune units (old map), Tuyên
# Quang's center (the same code on both maps) and a commune center of the new map, Hà Nội's
# center (both maps) and an old district unit of Hà Nội, and a code no map knows.
UNITS = {
    "T02": pop(10, 9, 10, 5),
    "T02.H024": pop(20, 10, 20, 0),
    "T02.H024.X00688": pop(5, 5, 5, 5),
    "T08": pop(30, 30, 30, 30),
    "T08.X00691": pop(5, 0),
    "T01": pop(40, 20, 40, 10),
    "T01.H001": pop(10, 10),
    "T999.H01": pop(100, 0),
}


@pytest.mark.parametrize(
    ("period", "structure", "count"),
    [
        ("2023-Q3", "vn63", 63),
        ("2025-Q2", "vn63", 63),  # ends on 30 June 2025, the old map's last day
        ("2025-06", "vn63", 63),
        ("2025-07", "vn34", 34),
        ("2025", "vn34", 34),  # straddles the change: the structure at its end
        ("2026-Q1", "vn34", 34),
    ],
)
def test_a_period_ranks_among_the_provinces_in_force_on_its_last_day(
    reference: ReferenceData, period: str, structure: str, count: int
) -> None:
    on = ranking(reference, parse_period(period))
    assert (on.structure.id, len(on.provinces)) == (structure, count)


def test_2023_q3_ranks_the_old_provinces_on_their_own_units(reference: ReferenceData) -> None:
    on = ranking(reference, parse_period("2023-Q3"))
    provinces = by_province(UNITS, reference, on)
    # Hà Giang and Tuyên Quang are two provinces of the old map, each the sum of its units.
    assert provinces["02"] == pop(35, 24, 35, 10)
    assert provinces["08"] == pop(30, 30, 30, 30)  # its new commune center had not begun
    assert provinces["01"] == pop(50, 30, 40, 10)
    assert set(provinces) == {"01", "02", "08"}  # the unknown code counts nowhere
    assert {on.provinces[c].short_name for c in provinces} == {"Hà Nội", "Hà Giang", "Tuyên Quang"}
    table = league(provinces, CONFIG)
    assert [(s.code, s.rank) for s in table] == [("08", 1), ("02", 2), ("01", 3)]


def test_2025_counts_the_old_units_to_their_successors_province(reference: ReferenceData) -> None:
    on = ranking(reference, parse_period("2025"))
    provinces = by_province(UNITS, reference, on)
    # Hà Giang is gone: its units' dossiers are Tuyên Quang's, with Tuyên Quang's own.
    assert provinces["08"] == pop(70, 54, 65, 40)
    assert provinces["01"] == pop(50, 30, 40, 10)
    assert set(provinces) == {"01", "08"}
    assert on.provinces["08"].short_name == "Tuyên Quang"
    assert all(p.structure == "vn34" for p in on.provinces.values())


def test_a_unit_not_yet_in_force_at_the_period_end_counts_nowhere(
    reference: ReferenceData,
) -> None:
    # A commune center of the new map in a 2023 period (a history no reception could write).
    on = ranking(reference, parse_period("2023-Q3"))
    assert by_province({"T08.X00691": pop(1, 1)}, reference, on) == {}
