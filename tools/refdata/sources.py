"""Reads the administrative maps out of the `vietnamadminunits` package, with their provenance."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "vietnamadminunits"
# Licences under which the country's data may be copied into this repository's data files.
ACCEPTED_LICENCES = frozenset({"MIT", "BSD", "Apache-2.0", "ISC", "CC0-1.0", "CC-BY-4.0"})
_CLASSIFIER_LICENCES = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: BSD License": "BSD",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
}
_LEGACY_COLUMNS = (
    "provinceCode, province, provinceShort, provinceKey, "
    "districtCode, district, districtShort, districtType, districtKey, "
    "wardCode, ward, wardShort, wardType, wardKey"
)
_CURRENT_COLUMNS = (
    "provinceCode, province, provinceShort, provinceKey, "
    "wardCode, ward, wardShort, wardType, wardKey"
)


class SourceError(Exception):
    """The package is missing, or its licence or contents are not what the generator expects."""


@dataclass(frozen=True)
class Source:
    """The rows of both maps and the 2025 conversion table, as the package ships them."""

    legacy: list[dict[str, Any]]
    current: list[dict[str, Any]]
    converter: dict[str, Any]
    provenance: dict[str, Any]


def licence_of(package: str) -> str:
    """The package's licence from its metadata (License-Expression, License, or a classifier)."""
    meta = importlib.metadata.metadata(package).json
    expression = meta.get("license_expression")
    if expression:
        return str(expression)
    for classifier in meta.get("classifier", []):
        if classifier in _CLASSIFIER_LICENCES:
            return _CLASSIFIER_LICENCES[classifier]
    return str(meta.get("license") or "unknown")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(db: Path, sql: str) -> list[dict[str, Any]]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(sql)]
    finally:
        connection.close()


def read_vietnamadminunits() -> Source:
    """Both maps from the installed package; refuses a package whose licence is not accepted."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise SourceError(f"{PACKAGE} is not installed: pip install {PACKAGE}")
    licence = licence_of(PACKAGE)
    if licence not in ACCEPTED_LICENCES:
        raise SourceError(
            f"{PACKAGE} is licensed {licence!r}, not one of {sorted(ACCEPTED_LICENCES)}"
        )
    data = Path(spec.origin).parent / "data"
    db = data / "dataset.db"
    converter_file = data / "converter_2025.json"
    legacy = _rows(
        db,
        f"SELECT DISTINCT {_LEGACY_COLUMNS} FROM admin_units_legacy "
        "ORDER BY provinceCode, districtCode, wardCode",
    )
    current = _rows(
        db, f"SELECT DISTINCT {_CURRENT_COLUMNS} FROM admin_units ORDER BY provinceCode, wardCode"
    )
    converter = json.loads(converter_file.read_text(encoding="utf-8"))
    meta = importlib.metadata.metadata(PACKAGE).json
    provenance = {
        "package": PACKAGE,
        "version": importlib.metadata.version(PACKAGE),
        "licence": licence,
        "homepage": str(meta.get("home_page") or ""),
        # The package's own statement of where its data comes from (its README, "Data Sources").
        "origin": "General Statistics Office of Viet Nam, danhmuchanhchinh.gso.gov.vn",
        "files": {
            "vietnamadminunits/data/dataset.db": _sha256(db),
            "vietnamadminunits/data/converter_2025.json": _sha256(converter_file),
        },
        "tables": {
            "admin_units_legacy": "the 63-province map (province, district, commune)",
            "admin_units": "the 34-province map (province, commune)",
            "converter_2025.json": "old commune -> new commune(s), old province -> new province",
        },
    }
    return Source(legacy, current, converter, provenance)
