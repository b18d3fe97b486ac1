from __future__ import annotations

import random
from datetime import date

import pytest

from services.intake import domain
from services.intake.samples import sample_submission
from shared.reference import REFERENCE_DIR, load_reference

REF = load_reference(REFERENCE_DIR)
TODAY = date(2026, 11, 27)


def submission(**overrides: object) -> domain.SubmissionIn:
    body: dict[str, object] = {
        "procedure_code": "1.001193",  # birth registration, commune level
        "channel": "in_person",
        "applicant": {"kind": "citizen", "id_number": "001099012345", "name": "Nguyễn Văn An"},
        "components": [{"code": "to_khai", "digitized": True}, {"code": "giay_chung_sinh"}],
    }
    body.update(overrides)
    return domain.SubmissionIn.model_validate(body)


def test_reference_covers_63_provinces_and_30_procedures() -> None:
    assert len({u.province for u in REF.units.values()}) == 63
    assert len(REF.procedures) >= 30


def test_valid_submission_is_admitted() -> None:
    verdict = domain.check_submission(submission(), REF.units["T001.H01.X01"], REF, TODAY)
    assert isinstance(verdict, domain.Admission)
    assert verdict.procedure.processing_days == 1


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        (
            {"applicant": {"kind": "citizen", "id_number": "003099012345", "name": "A"}},
            "applicant.id_number",
            "province code",
        ),
        (
            {"applicant": {"kind": "business", "id_number": "0100109107", "name": "B"}},
            "applicant.id_number",
            "check digit",
        ),
        ({"procedure_code": "9.999999"}, "procedure_code", "catalog"),
        ({"procedure_code": "1.001612"}, "procedure_code", "not competent"),
        ({"components": [{"code": "to_khai"}]}, "components", "missing required: giay_chung_sinh"),
        ({"competent_unit": "NOPE"}, "competent_unit", "unknown"),
    ],
)
def test_refusals_name_the_field_and_reason(
    overrides: dict[str, object], field: str, reason: str
) -> None:
    verdict = domain.check_submission(
        submission(**overrides), REF.units["T001.H01.X01"], REF, TODAY
    )
    assert isinstance(verdict, list)
    assert any(e.field == field and reason in e.reason for e in verdict), verdict


def test_cross_boundary_reception_uses_the_competent_unit() -> None:
    verdict = domain.check_submission(
        submission(competent_unit="T079.H02.X01"), REF.units["T001.H01.X01"], REF, TODAY
    )
    assert isinstance(verdict, domain.Admission)
    assert verdict.competent_unit.code == "T079.H02.X01"


def test_dossier_code_format() -> None:
    assert domain.dossier_code("T001.H01", date(2026, 10, 8), 975) == "T001.H01-261008-0975"


def test_samples_are_always_admitted() -> None:
    rng = random.Random(7)
    for _ in range(200):
        unit, body = sample_submission(rng)
        verdict = domain.check_submission(
            domain.SubmissionIn.model_validate(body), REF.units[unit], REF, TODAY
        )
        assert isinstance(verdict, domain.Admission), verdict
