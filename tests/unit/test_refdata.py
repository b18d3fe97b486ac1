"""The map generator: a total map builds and parses; a gap in the package's rows stops it."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from shared.admin_map import parse_map
from tools.refdata.build import BuildError, build
from tools.refdata.generate import cross_check, render

# Made-up rows in the package's shape: two old provinces that merge, one old commune split in two.
LEGACY: list[dict[str, Any]] = [
    {
        "provinceCode": "91",
        "province": "Tỉnh Một",
        "provinceShort": "Một",
        "provinceKey": "tinhmot",
        "districtCode": "901",
        "district": "Huyện Ba",
        "districtShort": "Ba",
        "districtType": "Huyện",
        "districtKey": "huyenba",
        "wardCode": "90010",
        "ward": "Xã Bốn",
        "wardShort": "Bốn",
        "wardType": "Xã",
        "wardKey": "xabon",
    },
    {
        "provinceCode": "93",
        "province": "Tỉnh Bảy",
        "provinceShort": "Bảy",
        "provinceKey": "tinhbay",
        "districtCode": "902",
        "district": "Huyện Đảo",
        "districtShort": "Đảo",
        "districtType": "Huyện",
        "districtKey": "huyendao",
        "wardCode": None,
        "ward": None,
        "wardShort": None,
        "wardType": None,
        "wardKey": None,
    },
]
CURRENT: list[dict[str, Any]] = [
    {
        "provinceCode": "91",
        "province": "Tỉnh Một",
        "provinceShort": "Một",
        "provinceKey": "tinhmot",
        "wardCode": code,
        "ward": name,
        "wardShort": name.split(" ", 1)[1],
        "wardType": name.split(" ", 1)[0],
        "wardKey": key,
    }
    for code, name, key in (
        ("90001", "Xã Năm", "xanam"),
        ("90002", "Xã Sáu", "xasau"),
        ("90003", "Đặc khu Đảo", "dackhudao"),
    )
]
CONVERTER: dict[str, Any] = {
    "DICT_PROVINCE": {"tinhmot": ["tinhmot", "tinhbay"]},
    "DICT_PROVINCE_WARD_NO_DIVIDED": {"tinhmot": {"dackhudao": ["tinhbay_huyendao_"]}},
    "DICT_PROVINCE_WARD_DIVIDED": {
        "tinhmot": {
            "tinhmot_huyenba_xabon": [
                {"newWardKey": "xasau", "isDefaultNewWard": False},
                {"newWardKey": "xanam", "isDefaultNewWard": True},
            ]
        }
    },
}


def _build(converter: dict[str, Any] = CONVERTER) -> dict[str, Any]:
    return build(LEGACY, CURRENT, converter, version="1", provenance={"sources": []})


def test_a_total_map_builds_and_parses() -> None:
    document = _build()
    assert json.loads(render(document)) == document
    admin_map = parse_map(document)
    assert [u.code for u in admin_map.successors("T91.H901.X90010", date(2025, 7, 1))] == [
        "T91.X90001",  # the default part first
        "T91.X90002",
    ]
    assert [u.code for u in admin_map.successors("T93.H902", date(2025, 7, 1))] == ["T91.X90003"]
    assert [u.code for u in admin_map.successors("T93", date(2025, 7, 1))] == ["T91"]


def test_an_old_commune_without_successor_stops_the_generator() -> None:
    converter = copy.deepcopy(CONVERTER)
    del converter["DICT_PROVINCE_WARD_DIVIDED"]["tinhmot"]["tinhmot_huyenba_xabon"]
    with pytest.raises(BuildError, match="no successor"):
        _build(converter)


def test_a_new_commune_nothing_goes_to_stops_the_generator() -> None:
    converter = copy.deepcopy(CONVERTER)
    converter["DICT_PROVINCE_WARD_DIVIDED"]["tinhmot"]["tinhmot_huyenba_xabon"].pop(0)
    with pytest.raises(BuildError, match="no old unit goes to"):
        _build(converter)


def test_the_cross_check_tolerates_tone_mark_placement_only(tmp_path: Path) -> None:
    other = tmp_path / "nested-divisions.json"
    wards = [
        {"code": 90001, "name": "Xã Năm"},
        {"code": 90002, "name": "Xã Sáu"},
        {"code": 90003, "name": "Đặc khu Đảo"},
    ]
    other.write_text(json.dumps([{"code": 91, "wards": wards}]), encoding="utf-8")
    assert cross_check(_build(), other) == []
    wards[1]["name"] = "Xã Bảy"
    other.write_text(json.dumps([{"code": 91, "wards": wards}]), encoding="utf-8")
    assert cross_check(_build(), other) == ["90002: Xã Sáu (91) vs Xã Bảy (91)"]
