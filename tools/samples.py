"""Realistic sample submissions (valid personal IDs and tax codes) for the demo and the tests."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from shared.admin_map import local_day
from shared.ids import PROVINCE_CODES, tax_check_digit
from shared.reference import REFERENCE_DIR, Procedure, ReferenceData, Unit, load_reference


def personal_id(rng: random.Random) -> str:
    province = rng.choice(sorted(PROVINCE_CODES))
    century, year = rng.choice(
        [
            (0, rng.randint(40, 99)),
            (2, rng.randint(0, 6)),
            (1, rng.randint(50, 99)),
            (3, rng.randint(0, 6)),
        ]
    )
    return f"{province}{century}{year:02d}{rng.randint(0, 999999):06d}"


def tax_code(rng: random.Random) -> str:
    while True:
        digits = f"{rng.randint(100000000, 999999999):09d}"
        check = tax_check_digit(digits)
        if check is not None:
            return f"{digits}{check}"


@cache
def _reference() -> ReferenceData:
    # Loading the maps takes a few hundred milliseconds: once per process.
    return load_reference(REFERENCE_DIR)


@cache
def _receivers(day: date) -> dict[str, tuple[Unit, ...]]:
    """By procedure code: the units in force that day whose counters receive it, by code."""
    reference = _reference()
    units = sorted(reference.units_at(day), key=lambda u: u.code)
    return {
        code: tuple(u for u in units if reference.offers(u, procedure))
        for code, procedure in reference.procedures.items()
    }


def sample_submission(rng: random.Random, at: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """A unit code and a submission body that the unit accepts at `at` (now by default): a unit
    of the map in force then (since 1 July 2025 a provincial or a commune center)."""
    procedures: list[Procedure] = sorted(_reference().procedures.values(), key=lambda p: p.code)
    procedure = rng.choice(procedures)
    unit = rng.choice(_receivers(local_day(at or datetime.now(UTC)))[procedure.code])
    business = procedure.field.startswith("Thành lập") and rng.random() < 0.7
    digitized = rng.random() < 0.7
    body: dict[str, Any] = {
        "procedure_code": procedure.code,
        "channel": rng.choices(["in_person", "online", "postal"], weights=[5, 4, 1])[0],
        "applicant": {
            "kind": "business" if business else "citizen",
            "id_number": tax_code(rng) if business else personal_id(rng),
            "name": "Công ty TNHH Minh Phát" if business else "Nguyễn Văn An",
        },
        "components": [
            {"code": c.code, "digitized": digitized, "reused": rng.random() < 0.3}
            for c in procedure.components
        ],
    }
    return unit.code, body
