"""The administrative maps: both structures whole, the 63 → 34 mapping total, units by day."""

from __future__ import annotations

import copy
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.admin_map import (
    LOCAL_TZ,
    MAPS_DIR,
    AdminMap,
    MapFileError,
    UnitNotInForce,
    UnknownUnit,
    latest_map_file,
    load_map,
    parse_map,
)

LAST_OLD_DAY = date(2025, 6, 30)
FIRST_NEW_DAY = date(2025, 7, 1)
UNIT_CODE = re.compile(r"^T\d{2}(\.H\d{3})?(\.X\d{5})?$")


@pytest.fixture(scope="module")
def admin_map() -> AdminMap:
    return load_map()


def test_the_two_structures_and_their_sizes(admin_map: AdminMap) -> None:
    assert admin_map.structure_at(LAST_OLD_DAY).id == "vn63"
    assert admin_map.structure_at(FIRST_NEW_DAY).id == "vn34"
    assert admin_map.structure_at(date(2023, 9, 30)).id == "vn63"
    assert len(admin_map.provinces("vn63")) == 63
    assert len(admin_map.provinces("vn34")) == 34
    communes = [d for d in admin_map.divisions if d.level == "commune"]
    assert sum(d.structure == "vn34" for d in communes) == 3321
    assert sum(d.structure == "vn63" for d in communes) > 10_000
    assert not any(d.structure == "vn34" for d in admin_map.divisions if d.level == "district")


def test_every_unit_has_a_valid_code_name_and_province(admin_map: AdminMap) -> None:
    seen: set[tuple[str, str]] = set()
    for unit in admin_map.units:
        assert UNIT_CODE.match(unit.code), unit.code
        assert unit.code.startswith(f"T{unit.province}")
        assert unit.name.strip() and unit.division.name.strip()
        assert admin_map.province(unit.structure, unit.province).structure == unit.structure
        assert (unit.code, unit.structure) not in seen
        seen.add((unit.code, unit.structure))
        if unit.parent is not None:
            assert admin_map.unit_at(unit.parent, unit.validity.valid_to or FIRST_NEW_DAY)


def test_the_old_map_maps_totally_onto_the_new_one(admin_map: AdminMap) -> None:
    old = [u for u in admin_map.units if u.structure == "vn63"]
    reached: set[str] = set()
    for unit in old:
        assert unit.successors, f"{unit.code} {unit.name} has no successor"
        after = admin_map.successors(unit.code, FIRST_NEW_DAY)
        assert [u.code for u in after] == list(unit.successors)
        assert all(u.structure == "vn34" for u in after)
        # Provinces merged whole: every part of an old unit lies in one new province.
        assert len({u.province for u in after}) == 1
        reached.update(u.code for u in after)
    new = {u.code for u in admin_map.units if u.structure == "vn34"}
    assert new <= reached


def test_a_commune_of_the_old_map_is_in_force_until_30_june_2025(admin_map: AdminMap) -> None:
    code = "T01.H001.X00013"  # Phường Quán Thánh, Quận Ba Đình: Phường Ba Đình since July 2025
    last_minute = datetime(2025, 6, 30, 23, 59, tzinfo=LOCAL_TZ)
    assert admin_map.admit(code, last_minute).name.startswith("Bộ phận Một cửa phường Quán Thánh")
    with pytest.raises(UnitNotInForce) as refused:
        admin_map.admit(code, last_minute + timedelta(minutes=1))
    assert [u.code for u in refused.value.successors] == ["T01.X00004"]
    assert "Trung tâm Phục vụ hành chính công phường Ba Đình" in str(refused.value)
    # The day is Vietnam's: 17:00 UTC on 30 June is already 1 July in Hà Nội.
    with pytest.raises(UnitNotInForce):
        admin_map.admit(code, datetime(2025, 6, 30, 17, 0, tzinfo=UTC))


def test_a_province_that_merged_names_its_successor(admin_map: AdminMap) -> None:
    assert admin_map.unit_at("T02", date(2023, 9, 30)) is not None  # Hà Giang, 2023
    assert [u.name for u in admin_map.successors("T02", FIRST_NEW_DAY)] == [
        "Trung tâm Phục vụ hành chính công tỉnh Tuyên Quang"
    ]
    ha_giang_2023 = admin_map.province_at("T02", date(2023, 9, 30))
    assert ha_giang_2023 is not None and ha_giang_2023.short_name == "Hà Giang"
    today = admin_map.province_at("T02", date(2026, 1, 15))
    assert today is not None and (today.structure, today.code) == ("vn34", "08")


def test_a_provincial_center_whose_province_kept_its_code_goes_on(admin_map: AdminMap) -> None:
    assert admin_map.admit("T01", LAST_OLD_DAY).structure == "vn63"
    assert admin_map.admit("T01", FIRST_NEW_DAY).structure == "vn34"


def test_a_commune_split_in_parts_lists_the_default_part_first(admin_map: AdminMap) -> None:
    split = [u for u in admin_map.units if u.structure == "vn63" and len(u.successors) > 1]
    assert split
    for unit in split:
        assert len(set(unit.successors)) == len(unit.successors)
        parts = admin_map.successors(unit.code, FIRST_NEW_DAY)
        assert [u.code for u in parts] == list(unit.successors)
        province = admin_map.province_at(unit.code, FIRST_NEW_DAY)
        assert province is not None and province.code == parts[0].province


def test_the_province_of_a_unit_follows_the_structure_in_force(admin_map: AdminMap) -> None:
    code = "T01.H001.X00013"
    old = admin_map.province_at(code, date(2024, 5, 1))
    new = admin_map.province_at(code, date(2025, 12, 31))
    assert old is not None and (old.structure, old.code) == ("vn63", "01")
    assert new is not None and (new.structure, new.code) == ("vn34", "01")


def test_a_new_unit_did_not_exist_before_july_2025(admin_map: AdminMap) -> None:
    assert admin_map.unit_at("T01.X00004", LAST_OLD_DAY) is None
    assert admin_map.province_at("T01.X00004", LAST_OLD_DAY) is None
    with pytest.raises(UnitNotInForce) as refused:
        admin_map.admit("T01.X00004", LAST_OLD_DAY)
    assert refused.value.successors == ()
    with pytest.raises(UnknownUnit):
        admin_map.admit("T99", FIRST_NEW_DAY)
    with pytest.raises(ValueError, match="time zone"):
        admin_map.unit_at("T01", datetime(2025, 7, 1, 10))  # a naive instant


def test_the_units_in_force_on_a_day(admin_map: AdminMap) -> None:
    new = admin_map.units_at(FIRST_NEW_DAY)
    assert sum(u.level == "province" for u in new) == 34
    assert sum(u.level == "commune" for u in new) == 3321
    assert not any(u.level == "district" for u in new)
    old = admin_map.units_at(LAST_OLD_DAY)
    assert sum(u.level == "province" for u in old) == 63


def test_the_file_records_its_source_package_version_and_licence(admin_map: AdminMap) -> None:
    (source,) = admin_map.provenance["sources"]
    assert source["package"] == "vietnamadminunits"
    assert re.match(r"^\d+\.\d+\.\d+$", source["version"])
    assert source["licence"] == "MIT"
    assert latest_map_file().name == f"vietnam-{admin_map.version}.json"


def test_the_bundled_file_is_what_the_generator_writes() -> None:
    from tools.refdata.generate import main

    assert main(["--check", "--out", str(MAPS_DIR)]) == 0


# ---------------------------------------------------------------------- refused files


def _tiny() -> dict[str, Any]:
    """A made-up two-structure map: one province, one district, one commune, then a merger."""
    return {
        "format": 1,
        "version": "1",
        "structures": [
            {"id": "a", "name": "A", "levels": ["province", "district", "commune"]}
            | {"valid_from": None, "valid_to": "2030-12-31"},
            {"id": "b", "name": "B", "levels": ["province", "commune"]}
            | {"valid_from": "2031-01-01", "valid_to": None},
        ],
        "provinces": [
            {"structure": "a", "code": "91", "name": "Tỉnh Một", "successors": ["92"]},
            {"structure": "b", "code": "92", "name": "Tỉnh Hai", "successors": []},
        ],
        "districts": [
            {"structure": "a", "code": "901", "name": "Huyện Ba", "province": "91"}
            | {"successors": ["90001"]},
        ],
        "communes": [
            {"structure": "a", "code": "90010", "name": "Xã Bốn", "province": "91"}
            | {"district": "901", "successors": ["90001"]},
            {"structure": "b", "code": "90001", "name": "Xã Năm", "province": "92"},
        ],
    }


def test_a_tiny_map_parses() -> None:
    tiny = parse_map(_tiny())
    assert [u.code for u in tiny.successors("T91.H901.X90010", date(2031, 1, 1))] == ["T92.X90001"]
    assert tiny.admit("T91.H901", date(2030, 12, 31)).name == "Bộ phận Một cửa huyện Ba, Tỉnh Một"


@pytest.mark.parametrize(
    ("section", "index", "change"),
    [
        ("communes", 0, {"code": "9001"}),  # not five digits
        ("communes", 1, {"name": " "}),
        ("communes", 0, {"successors": ["99999"]}),  # a successor that is not in the map
        ("communes", 0, {"successors": []}),  # an ended unit that nothing takes over
        ("communes", 1, {"province": "91"}),  # a province of another structure
        ("districts", 0, {"structure": "c"}),
    ],
)
def test_an_inconsistent_map_is_refused(section: str, index: int, change: dict[str, Any]) -> None:
    document = copy.deepcopy(_tiny())
    document[section][index].update(change)
    with pytest.raises(MapFileError):
        parse_map(document)


def test_a_change_inside_a_structure_is_a_dated_unit() -> None:
    document = _tiny()
    document["communes"][1] |= {"valid_to": "2032-12-31", "successors": ["90002"]}
    document["communes"].append(
        {"structure": "b", "code": "90002", "name": "Xã Sáu", "province": "92"}
        | {"valid_from": "2033-01-01"}
    )
    tiny = parse_map(document)
    assert tiny.unit_at("T92.X90001", date(2032, 12, 31)) is not None
    assert [u.code for u in tiny.successors("T91.H901.X90010", date(2033, 1, 1))] == ["T92.X90002"]
    assert [u.code for u in tiny.successors("T91.H901.X90010", date(2032, 1, 1))] == ["T92.X90001"]


def test_overlapping_structures_are_refused() -> None:
    document = _tiny()
    document["structures"][1]["valid_from"] = "2030-12-31"
    with pytest.raises(MapFileError, match="overlap"):
        parse_map(document)


def test_the_newest_data_version_is_loaded(tmp_path: Path) -> None:
    for name in ("vietnam-2025.07.1.json", "vietnam-2026.01.2.json", "vietnam-2026.01.10.json"):
        (tmp_path / name).write_text("{}")
    assert latest_map_file(tmp_path).name == "vietnam-2026.01.10.json"
    with pytest.raises(MapFileError):
        load_map(tmp_path / "vietnam-2025.07.1.json")  # not a map
