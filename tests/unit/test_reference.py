"""The services' reference data on the real map: admission by day, levels, provinces, reloads."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from shared.reference import (
    REFERENCE_DIR,
    AdminMapError,
    ReferenceData,
    UnitNotInForce,
    UnknownUnit,
    load_reference,
)

OLD_DAY = date(2025, 6, 30)
NEW_DAY = date(2025, 7, 1)


@pytest.fixture(scope="module")
def reference() -> ReferenceData:
    return load_reference(REFERENCE_DIR)


def test_an_old_commune_receives_until_30_june_2025_then_names_its_successors(
    reference: ReferenceData,
) -> None:
    # Phường Quang Trung of the city of Hà Giang, a commune department of the old map.
    old = next(
        u
        for u in reference.units_at(OLD_DAY)
        if u.code.startswith("T02.H024.X") and u.level == "commune"
    )
    assert reference.admit(old.code, OLD_DAY) == old
    # 17:00 UTC on 30 June is 00:00 on 1 July in Vietnam: already the new map.
    with pytest.raises(UnitNotInForce) as refused:
        reference.admit(old.code, datetime(2025, 6, 30, 17, 0, tzinfo=UTC))
    successors = refused.value.successors
    assert successors and all(s.code.startswith("T08.X") for s in successors)
    assert all("Tuyên Quang" in s.name for s in successors)


def test_unknown_and_synthetic_codes_are_unknown(reference: ReferenceData) -> None:
    for code in ("T001.H01.X01", "T99", "T01.X99999", "'; DROP", ""):
        with pytest.raises(UnknownUnit):
            reference.admit(code, NEW_DAY)


def test_district_procedures_go_to_commune_centers_under_the_two_level_map(
    reference: ReferenceData,
) -> None:
    district_level = next(
        p for p in reference.procedures.values() if p.competent_level == "district"
    )
    province_level = next(
        p for p in reference.procedures.values() if p.competent_level == "province"
    )
    old_district = reference.admit("T02.H024", OLD_DAY)
    new_commune = reference.admit("T08.X00691", NEW_DAY)
    new_center = reference.admit("T08", NEW_DAY)
    assert reference.offers(old_district, district_level)
    assert reference.offers(new_commune, district_level)
    assert not reference.offers(new_center, district_level)
    assert reference.offers(new_center, province_level)
    assert not reference.offers(new_commune, province_level)


def test_every_unit_has_a_code_a_name_and_a_province_of_its_structure(
    reference: ReferenceData,
) -> None:
    assert len(reference.units) > 14_000
    for unit in reference.units.values():
        assert unit.name and unit.code.startswith(f"T{unit.province}")
        assert reference.map.province(unit.structure, unit.province).name


def test_provinces_of_a_unit_follow_the_day(reference: ReferenceData) -> None:
    # Hà Giang's center: its own province on the old map, Tuyên Quang's after.
    assert reference.province_of("T02") == "02"
    before = reference.province_at("T02", OLD_DAY)
    after = reference.province_at("T02", NEW_DAY)
    assert before is not None and before.short_name == "Hà Giang"
    assert after is not None and after.short_name == "Tuyên Quang"
    assert reference.province_of("T001") is None


def test_the_newest_map_file_wins_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "reference"
    shutil.copytree(REFERENCE_DIR, directory)
    shipped = next((directory / "maps").glob("vietnam-*.json"))
    document = json.loads(shipped.read_text(encoding="utf-8"))
    document["version"] = "2099.01.1"
    (directory / "maps" / "vietnam-2099.01.1.json").write_text(json.dumps(document), "utf-8")
    assert load_reference(directory).version.startswith("2099.01.1/")
    (directory / "maps" / "vietnam-2099.02.1.json").write_text('{"format": 1}', "utf-8")
    with pytest.raises(AdminMapError):
        load_reference(directory)
