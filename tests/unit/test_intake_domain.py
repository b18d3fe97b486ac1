from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import orjson
import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from services.intake import domain
from shared.bodies import parse_json_body
from shared.contract import (
    DossierReceived,
    DossierReceivedPayload,
    decode_dossier_event,
    encode_dossier_received,
)
from shared.reference import REFERENCE_DIR, Unit, UnitNotInForce, UnknownUnit, load_reference
from tools.samples import sample_submission

REF = load_reference(REFERENCE_DIR)
TODAY = date(2026, 11, 27)
BA_DINH = "T01.X00004"  # phường Ba Đình's center (Hà Nội), from 1 July 2025
THU_DAU_MOT = "T79.X25747"  # phường Thủ Dầu Một's center (Hồ Chí Minh), from 1 July 2025
# Phường Quang Trung's one-stop department, thành phố Hà Giang: the old map's, until 30 June 2025;
# its territory went to two wards of Tuyên Quang.
QUANG_TRUNG = "T02.H024.X00688"


def submission(**overrides: object) -> domain.SubmissionIn:
    body: dict[str, object] = {
        "procedure_code": "1.001193",  # birth registration, commune level
        "channel": "in_person",
        "applicant": {"kind": "citizen", "id_number": "001099012345", "name": "Nguyễn Văn An"},
        "components": [{"code": "to_khai", "digitized": True}, {"code": "giay_chung_sinh"}],
    }
    body.update(overrides)
    return domain.SubmissionIn.model_validate(body)


def unit(code: str, day: date = TODAY) -> Unit:
    return domain.admit(REF, code, day, field="unit")


def test_today_the_counters_are_the_34_provinces_centers_and_30_procedures() -> None:
    assert len({u.province for u in REF.units_at(TODAY)}) == 34
    assert len(REF.procedures) >= 30


def test_valid_submission_is_admitted() -> None:
    verdict = domain.check_submission(submission(), unit(BA_DINH), REF, TODAY)
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
    ],
)
def test_refusals_name_the_field_and_reason(
    overrides: dict[str, object], field: str, reason: str
) -> None:
    verdict = domain.check_submission(submission(**overrides), unit(BA_DINH), REF, TODAY)
    assert isinstance(verdict, list)
    assert any(e.field == field and reason in e.reason for e in verdict), verdict


def test_cross_boundary_reception_uses_the_competent_unit() -> None:
    verdict = domain.check_submission(
        submission(competent_unit=THU_DAU_MOT), unit(BA_DINH), REF, TODAY
    )
    assert isinstance(verdict, domain.Admission)
    assert verdict.competent_unit.code == THU_DAU_MOT


def test_an_old_maps_unit_receives_until_30_june_2025_and_is_refused_from_1_july() -> None:
    last_day = datetime(2025, 6, 30, 16, 59, 59, tzinfo=UTC)  # 23:59:59 in Vietnam
    assert unit(QUANG_TRUNG, last_day).name == (
        "Bộ phận Một cửa phường Quang Trung, thành phố Hà Giang, Hà Giang"
    )
    with pytest.raises(domain.UnitRefused) as refused:
        unit(QUANG_TRUNG, last_day + timedelta(seconds=1))  # 00:00 on 1 July in Vietnam
    assert refused.value.field == "unit"
    assert isinstance(refused.value.error, UnitNotInForce)
    assert [u.code for u in refused.value.error.successors] == ["T08.X00691", "T08.X00694"]
    assert refused.value.reason == (
        "unit T02.H024.X00688 is not in force on 2025-07-01; successors: "
        "T08.X00691 (Trung tâm Phục vụ hành chính công phường Hà Giang 2, Tuyên Quang), "
        "T08.X00694 (Trung tâm Phục vụ hành chính công phường Hà Giang 1, Tuyên Quang)"
    )


@pytest.mark.parametrize("code", ["NOPE", 'T01"', "T01.X00004\n", "T99.X99999"])
def test_a_competent_unit_unknown_to_the_map_is_refused_without_echoing_it(code: str) -> None:
    with pytest.raises(domain.UnitRefused) as refused:
        domain.check_submission(submission(competent_unit=code), unit(BA_DINH), REF, TODAY)
    assert refused.value.field == "competent_unit"
    assert isinstance(refused.value.error, UnknownUnit)
    assert refused.value.reason == "unknown administrative unit"


def test_a_competent_unit_that_ended_is_refused_naming_its_successors() -> None:
    with pytest.raises(domain.UnitRefused) as refused:
        domain.check_submission(submission(competent_unit=QUANG_TRUNG), unit(BA_DINH), REF, TODAY)
    assert refused.value.field == "competent_unit"
    assert "successors: T08.X00691" in refused.value.reason


def test_a_refusal_names_real_units_procedures_and_applicants() -> None:
    def refusal(**overrides: object) -> domain.RefusalIn:
        return domain.RefusalIn.model_validate(
            {
                **submission(components=[]).model_dump(),
                "reason": "Thiếu giấy chứng sinh",
                **overrides,
            }
        )

    assert domain.check_refusal(refusal(), REF, TODAY) == []
    assert domain.check_refusal(refusal(competent_unit=THU_DAU_MOT), REF, TODAY) == []
    # Issue 14.2: what a refusal names as competent reaches the public index; nothing unknown,
    # malformed or ended enters it.
    for forged in ["NOPE", 'T01.X00004"', "T01.X00004\nT01", QUANG_TRUNG]:
        with pytest.raises(domain.UnitRefused) as refused:
            domain.check_refusal(refusal(competent_unit=forged), REF, TODAY)
        assert refused.value.field == "competent_unit"
    assert domain.check_refusal(refusal(procedure_code="9.999999"), REF, TODAY) == [
        domain.FieldError("procedure_code", "not in the procedure catalog")
    ]


def test_dossier_code_format() -> None:
    assert domain.dossier_code(BA_DINH, date(2026, 10, 8), 975) == "T01.X00004-261008-0975"


def test_samples_are_always_admitted() -> None:
    rng = random.Random(7)
    for _ in range(200):
        code, body = sample_submission(rng)
        verdict = domain.check_submission(
            domain.SubmissionIn.model_validate(body), unit(code), REF, TODAY
        )
        assert isinstance(verdict, domain.Admission), verdict


def sample_bodies() -> st.SearchStrategy[tuple[str, dict[str, object]]]:
    return st.randoms(use_true_random=False).map(sample_submission)


TEXT = st.characters(codec="utf-8", exclude_characters="\x00")


@settings(max_examples=200)
@given(
    body=sample_bodies(),
    at=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    # Any text but U+0000, which intake refuses on every client string (and consumers too).
    ref=st.text(TEXT, min_size=1, max_size=64),
    actor=st.none() | st.text(TEXT, max_size=200),
    code=st.text(TEXT, min_size=1, max_size=40),
)
def test_the_written_received_event_is_the_models_event(
    body: tuple[str, dict[str, object]], at: datetime, ref: str, actor: str | None, code: str
) -> None:
    # The intake writes DossierReceived with orjson: it must decode to exactly the event the
    # contract's models build, every payload field given (none left to a silent default).
    unit_code, raw = body
    sub = domain.SubmissionIn.model_validate(raw)
    verdict = domain.check_submission(sub, REF.units[unit_code], REF, at.date())
    assert isinstance(verdict, domain.Admission)
    appointment = at + timedelta(days=verdict.procedure.processing_days)
    payload = domain.received_payload(
        sub,
        verdict,
        code=code,
        applicant_ref=ref,
        received_at=at,
        appointment_at=appointment,
        clock_started_at=at,
    )
    assert set(payload) == set(DossierReceivedPayload.model_fields)
    dossier_id = uuid4()
    written = decode_dossier_event(
        encode_dossier_received(
            occurred_at=at,
            dossier_id=dossier_id,
            receiving_unit=unit_code,
            competent_unit=verdict.competent_unit.code,
            actor=actor,
            payload=payload,
        )
    )
    assert written == DossierReceived(
        event_id=written.event_id,
        occurred_at=at,
        dossier_id=dossier_id,
        receiving_unit=unit_code,
        competent_unit=verdict.competent_unit.code,
        actor=actor,
        payload=DossierReceivedPayload(
            dossier_code=code,
            procedure_code=verdict.procedure.code,
            channel=sub.channel,
            applicant_kind=sub.applicant.kind,
            applicant_ref=ref,
            received_at=at,
            appointment_at=appointment,
            clock_started_at=at,
            processing_days=verdict.procedure.processing_days,
            components=tuple(sub.components),
            result_is_paper=verdict.procedure.result_is_paper,
        ),
    )


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"applicant": {"kind": "citizen", "id_number": "001099012345", "name": "A\u0000"}},
            ["applicant.name"],
        ),
        (
            {"procedure_code": "1.0\u0000", "competent_unit": "T\u0000"},
            ["procedure_code", "competent_unit"],
        ),
        (
            {"components": [{"code": "to_khai\u0000"}]},
            ["components.0.code"],
        ),  # the contract's model
        ({"reason": "\u0000"}, ["reason"]),
    ],
)
def test_a_nul_anywhere_in_a_counters_body_is_a_field_error(
    body: dict[str, object], fields: list[str]
) -> None:
    """PostgreSQL cannot store U+0000: a 422 naming each field, never a 500 from the database."""
    model = domain.RefusalIn if "reason" in body else domain.SubmissionIn
    valid: dict[str, object] = {"procedure_code": "1.001193", "channel": "in_person"}
    valid |= {"applicant": {"kind": "citizen", "id_number": "001099012345", "name": "An"}}
    valid |= {"reason": "Thiếu tờ khai"} if model is domain.RefusalIn else {}
    raw = orjson.dumps({**valid, **body})
    with pytest.raises(RequestValidationError) as refused:
        parse_json_body(model, raw)
    errors = [
        {"field": ".".join(str(p) for p in e["loc"][1:]), "reason": e["msg"]}
        for e in refused.value.errors()
    ]
    assert errors == [{"field": f, "reason": "must not contain the NUL character"} for f in fields]


def test_counter_action_bodies_refuse_nul_too() -> None:
    cases: list[tuple[type[BaseModel], dict[str, object]]] = [
        (domain.ReasonIn, {"reason": "x\u0000"}),
        (domain.RatingIn, {"satisfied": True, "criteria": ["ok", "\u0000"]}),
    ]
    for model, body in cases:
        with pytest.raises(ValidationError) as refused:
            model.model_validate(body)
        assert [e["msg"] for e in refused.value.errors()] == ["must not contain the NUL character"]
