"""Builds the administrative-map document (both structures, successors) from the package's rows."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

FORMAT = 1
OLD, NEW = "vn63", "vn34"
# The two-level local government and the 34 provinces are in force from 1 July 2025 (Resolution
# 202/2025/QH15 on the provinces, and the Standing Committee's 2025 resolutions on the communes).
STRUCTURES: list[dict[str, Any]] = [
    {
        "id": OLD,
        "name": "63 tỉnh, thành phố; ba cấp: tỉnh, huyện, xã",
        "levels": ["province", "district", "commune"],
        # The package holds the map as it stood on its last day; earlier changes are not in it.
        "valid_from": None,
        "valid_to": "2025-06-30",
    },
    {
        "id": NEW,
        "name": "34 tỉnh, thành phố; hai cấp: tỉnh, xã",
        "levels": ["province", "commune"],
        "valid_from": "2025-07-01",
        "valid_to": None,
    },
]


class BuildError(Exception):
    """The package's rows do not make a total, consistent map (the generator writes nothing)."""


def _old_key(row: dict[str, Any]) -> str:
    # The package's conversion table names an old commune by its normalised names: an island
    # district without communes has an empty commune part.
    return f"{row['provinceKey']}_{row['districtKey']}_{row['wardKey'] or ''}"


def _commune_successors(converter: dict[str, Any]) -> dict[str, list[tuple[str, str, bool]]]:
    """Old commune key -> [(new province key, new commune key, is the default successor)]."""
    found: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)
    for province, communes in converter["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for commune, olds in communes.items():
            for old in olds:
                found[old].append((province, commune, True))
    for province, olds in converter["DICT_PROVINCE_WARD_DIVIDED"].items():
        for old, news in olds.items():
            for new in news:
                found[old].append((province, new["newWardKey"], bool(new["isDefaultNewWard"])))
    return found


def _province_successors(converter: dict[str, Any], codes: dict[str, str]) -> dict[str, str]:
    """Old province key -> the code of the one new province it joined."""
    found: dict[str, str] = {}
    for new, olds in converter["DICT_PROVINCE"].items():
        for old in olds:
            if old in found:
                raise BuildError(f"old province {old} goes to two new provinces")
            found[old] = codes[new]
    return found


def _successor_codes(
    row: dict[str, Any],
    parts: list[tuple[str, str, bool]],
    commune_codes: dict[tuple[str, str], str],
    province_codes: dict[str, str],
    new_province: str,
) -> list[str]:
    """The codes of an old commune's successors, the default part first."""
    where = f"{row['ward'] or row['district']} ({row['province']})"
    if not parts:
        raise BuildError(f"{where} has no successor")
    if sum(default for _, _, default in parts) != 1:
        raise BuildError(f"{where} has not one default successor")
    codes: list[str] = []
    for province_key, commune_key, _ in sorted(parts, key=lambda p: (not p[2], p[1])):
        code = commune_codes.get((province_key, commune_key))
        if code is None:
            raise BuildError(f"successor {commune_key} of {where} is not in the new map")
        if province_codes[province_key] != new_province:
            raise BuildError(f"{where} goes to a province its province did not join")
        if code not in codes:
            codes.append(code)
    return codes


def _unit(row: dict[str, Any], prefix: str, structure: str) -> dict[str, Any]:
    return {
        "structure": structure,
        "code": row[f"{prefix}Code"],
        "name": row[prefix],
        "short_name": row[f"{prefix}Short"],
    }


def build(
    legacy: list[dict[str, Any]],
    current: list[dict[str, Any]],
    converter: dict[str, Any],
    *,
    version: str,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """The map document: provinces, districts and communes of both structures, each old unit
    with its successors in the new structure (a commune split in parts: the default part first)."""
    commune_codes = {(r["provinceKey"], r["wardKey"]): r["wardCode"] for r in current}
    province_codes = {r["provinceKey"]: r["provinceCode"] for r in current}
    province_successor = _province_successors(converter, province_codes)
    commune_successors = _commune_successors(converter)

    provinces: dict[tuple[str, str], dict[str, Any]] = {}
    districts: dict[str, dict[str, Any]] = {}
    communes: list[dict[str, Any]] = []
    district_successors: dict[str, set[str]] = defaultdict(set)
    for row in legacy:
        if row["provinceKey"] not in province_successor:
            raise BuildError(f"old province {row['province']} has no successor")
        new_province = province_successor[row["provinceKey"]]
        province = _unit(row, "province", OLD) | {"successors": [new_province]}
        provinces.setdefault((OLD, row["provinceCode"]), province)
        district = _unit(row, "district", OLD) | {
            "type": row["districtType"],
            "province": row["provinceCode"],
        }
        districts.setdefault(row["districtCode"], district)
        successors = _successor_codes(
            row,
            commune_successors.get(_old_key(row), []),
            commune_codes,
            province_codes,
            new_province,
        )
        district_successors[row["districtCode"]].update(successors)
        if row["wardCode"] is None:  # an island district without communes
            continue
        communes.append(
            _unit(row, "ward", OLD)
            | {
                "type": row["wardType"],
                "province": row["provinceCode"],
                "district": row["districtCode"],
                "successors": successors,
            }
        )
    for code, district in districts.items():
        district["successors"] = sorted(district_successors[code])
    for row in current:
        provinces.setdefault((NEW, row["provinceCode"]), _unit(row, "province", NEW))
        communes.append(
            _unit(row, "ward", NEW) | {"type": row["wardType"], "province": row["provinceCode"]}
        )
    reached = {code for c in communes if c["structure"] == OLD for code in c["successors"]}
    reached |= {code for d in districts.values() for code in d["successors"]}
    unreached = set(commune_codes.values()) - reached
    if unreached:
        raise BuildError(f"new communes no old unit goes to: {sorted(unreached)[:10]}")
    return {
        "format": FORMAT,
        "version": version,
        "provenance": provenance,
        "structures": STRUCTURES,
        "provinces": sorted(provinces.values(), key=lambda p: (p["structure"] != OLD, p["code"])),
        "districts": sorted(districts.values(), key=lambda d: d["code"]),
        "communes": sorted(communes, key=lambda c: (c["structure"] != OLD, c["code"])),
    }
