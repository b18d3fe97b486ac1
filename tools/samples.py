"""Realistic sample submissions (valid personal IDs and tax codes) for the demo and the tests."""

from __future__ import annotations

import random
from typing import Any

from shared.ids import PROVINCE_CODES, tax_check_digit
from shared.reference import REFERENCE_DIR, load_reference


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


def sample_submission(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A unit code and a submission body that the unit accepts."""
    reference = load_reference(REFERENCE_DIR)
    procedure = rng.choice(sorted(reference.procedures.values(), key=lambda p: p.code))
    unit = rng.choice(
        sorted(
            (u for u in reference.units.values() if u.level == procedure.competent_level),
            key=lambda u: u.code,
        )
    )
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
