"""Historical import lines are judged whole, by the same rules as the running services."""

from __future__ import annotations

import json
from typing import Any

from services.processing import domain as processing
from shared.calendar import WorkingCalendar
from shared.contract import DossierRefusedAtReception, DossierStatus
from shared.reference import REFERENCE_DIR, load_reference
from tools.importer import Planned, plan

REF = load_reference(REFERENCE_DIR)
CAL = WorkingCalendar.vietnam(range(2022, 2027))
KEY = b"k"
# The old map's (until 30 June 2025) district one-stop departments: thành phố Hà Giang, quận 1
# (Hồ Chí Minh); and a commune department of thành phố Hà Giang, phường Quang Trung.
HA_GIANG_CITY = "T02.H024"
DISTRICT_1 = "T79.H760"
QUANG_TRUNG = "T02.H024.X00688"


def line(**overrides: Any) -> str:
    body: dict[str, Any] = {
        "unit": HA_GIANG_CITY,
        "received_at": "2023-07-03T09:15:00+07:00",
        "procedure_code": "2.000720",
        "channel": "online",
        "applicant": {"kind": "citizen", "id_number": "002085001234", "name": "Lò Văn Páo"},
        "components": [
            {"code": "giay_de_nghi", "digitized": True},
            {"code": "ban_sao_giay_to_phap_ly", "digitized": True, "reused": True},
        ],
        "timeline": [
            {"type": "processing_started", "at": "2023-07-03T10:00:00+07:00"},
            {
                "type": "resolved",
                "at": "2023-07-05T16:00:00+07:00",
                "approved": True,
                "result_electronic": True,
            },
            {"type": "returned", "at": "2023-07-06T09:00:00+07:00"},
            {"type": "rated", "at": "2023-07-06T09:05:00+07:00", "satisfied": True},
        ],
    }
    body.update(overrides)
    return json.dumps(body, ensure_ascii=False)


def test_a_complete_history_is_planned_with_its_original_times() -> None:
    planned = plan(1, line(), REF, CAL, KEY)
    assert isinstance(planned, Planned)
    assert planned.received.occurred_at.isoformat() == "2023-07-03T09:15:00+07:00"
    # 3 working days from Monday 09:15: Thursday 09:15.
    assert planned.appointment_at is not None
    assert planned.appointment_at.isoformat() == "2023-07-06T09:15:00+07:00"
    assert [e.type for e in planned.events] == [
        "ProcessingStarted",
        "DossierResolved",
        "ResultReturned",
        "DossierRated",
    ]
    assert "002085001234" not in planned.received.model_dump_json()


def test_the_same_line_always_plans_the_same_dossier() -> None:
    first, second = plan(1, line(), REF, CAL, KEY), plan(9, line(), REF, CAL, KEY)
    assert isinstance(first, Planned) and isinstance(second, Planned)
    assert first.dossier_id == second.dossier_id


def test_an_impossible_timeline_rejects_the_whole_line() -> None:
    bad = line(timeline=[{"type": "returned", "at": "2023-07-04T09:00:00+07:00"}])
    assert plan(1, bad, REF, CAL, KEY) == [
        "timeline.1: returned: cannot return the result of a dossier that is received "
        "(allowed: resolved)"
    ]


def test_steps_out_of_order_and_reception_rules() -> None:
    backwards = line(
        timeline=[
            {"type": "processing_started", "at": "2023-07-04T10:00:00+07:00"},
            {"type": "resolved", "at": "2023-07-04T09:00:00+07:00", "approved": True},
        ]
    )
    reasons = plan(1, backwards, REF, CAL, KEY)
    assert isinstance(reasons, list) and "before the step it follows" in reasons[0]
    wrong_id = line(applicant={"kind": "citizen", "id_number": "003085001234", "name": "X"})
    assert plan(1, wrong_id, REF, CAL, KEY) == [
        "applicant.id_number: the first three digits are not one of the 63 province codes"
    ]
    assert plan(1, "{not json", REF, CAL, KEY) != []


def test_a_nul_character_refuses_the_line_with_the_field() -> None:
    refused = plan(
        1,
        line(applicant={"kind": "citizen", "id_number": "002085001234", "name": "Lò\u0000Páo"}),
        REF,
        CAL,
        KEY,
    )
    assert refused == ["applicant.name: must not contain the NUL character"]
    nul_code = [{"code": "giay_de_nghi\u0000"}, {"code": "ban_sao_giay_to_phap_ly"}]
    assert plan(1, line(components=nul_code), REF, CAL, KEY) == [
        "components.0.code: must not contain the NUL character"
    ]
    nul_reason = [{"type": "stopped", "at": "2023-07-03T10:00:00+07:00", "reason": "\u0000"}]
    assert plan(1, line(timeline=nul_reason), REF, CAL, KEY) == [
        "timeline.0.reason: must not contain the NUL character"
    ]


def test_payments_transfers_apologies_and_digitization_are_imported() -> None:
    timeline = [
        {"type": "processing_started", "at": "2023-07-03T10:00:00+07:00"},
        {"type": "payment_requested", "at": "2023-07-03T11:00:00+07:00", "amount_vnd": 50000},
        {"type": "payment_received", "at": "2023-07-04T08:00:00+07:00", "amount_vnd": 50000},
        {"type": "transferred", "at": "2023-07-04T09:00:00+07:00", "to_unit": DISTRICT_1},
        {
            "type": "apology_issued",
            "at": "2023-07-07T09:00:00+07:00",
            "new_appointment_at": "2023-07-10T09:00:00+07:00",
            "reason": "cần xác minh",
        },
        {"type": "resolved", "at": "2023-07-10T08:00:00+07:00", "approved": True},
        {"type": "result_digitized", "at": "2023-07-10T09:00:00+07:00"},
    ]
    planned = plan(1, line(timeline=timeline), REF, CAL, KEY)
    assert isinstance(planned, Planned), planned
    assert [e.type for e in planned.events] == [
        "ProcessingStarted",
        "PaymentRequested",
        "PaymentReceived",
        "DossierTransferred",
        "ApologyIssued",
        "DossierResolved",
        "ResultDigitized",
    ]


def test_a_step_missing_its_payload_or_naming_an_unknown_unit_is_refused() -> None:
    no_amount = [{"type": "payment_requested", "at": "2023-07-03T11:00:00+07:00"}]
    assert plan(1, line(timeline=no_amount), REF, CAL, KEY) == [
        "timeline.1: payment_requested: amount_vnd: Input should be a valid integer"
    ]
    nowhere = [{"type": "transferred", "at": "2023-07-03T11:00:00+07:00", "to_unit": "X"}]
    assert plan(1, line(timeline=nowhere), REF, CAL, KEY) == [
        "timeline.1: transferred: to_unit: unknown administrative unit"
    ]
    # A transfer follows the reception's rule: to a unit in force at the transfer's instant.
    ahead = [{"type": "transferred", "at": "2023-07-03T11:00:00+07:00", "to_unit": "T79.X26737"}]
    assert plan(1, line(timeline=ahead), REF, CAL, KEY) == [
        "timeline.1: transferred: to_unit: unit T79.X26737 is not in force on 2023-07-03; "
        "successors: none"
    ]


def refusal(**overrides: Any) -> str:
    """A dossier the counter refused (mẫu 03): its required form was missing."""
    body: dict[str, Any] = json.loads(line())
    del body["timeline"]
    body["components"] = [{"code": "ban_sao_giay_to_phap_ly"}]
    body["refused_at_reception"] = {"reason": "Thiếu giấy đề nghị đăng ký hộ kinh doanh"}
    body.update(overrides)
    return json.dumps(body, ensure_ascii=False)


def test_a_refusal_at_reception_is_planned_as_the_counter_records_it() -> None:
    planned = plan(1, refusal(code="T02.H024-230703-0002"), REF, CAL, KEY)
    assert isinstance(planned, Planned), planned
    event = planned.received
    assert isinstance(event, DossierRefusedAtReception)
    # The original instant, the refusing unit, the reason: what `POST /v1/refusals` publishes.
    assert event.occurred_at.isoformat() == "2023-07-03T09:15:00+07:00"
    assert event.payload.received_at == event.occurred_at
    assert (event.receiving_unit, event.competent_unit) == (HA_GIANG_CITY, HA_GIANG_CITY)
    assert event.payload.reason == "Thiếu giấy đề nghị đăng ký hộ kinh doanh"
    assert event.payload.procedure_code == "2.000720"
    assert planned.refusal_reason == event.payload.reason
    assert planned.appointment_at is None and planned.events == []
    assert "002085001234" not in event.model_dump_json()
    # Processing's state machine takes it as the live one: refused at reception, ended at once.
    dossier = processing.apply(None, event, CAL).dossier
    assert dossier.status is DossierStatus.REFUSED_AT_RECEPTION
    assert dossier.ended_at == event.occurred_at


def test_a_refusal_for_another_localitys_authority_keeps_both_units() -> None:
    planned = plan(1, refusal(competent_unit=DISTRICT_1), REF, CAL, KEY)
    assert isinstance(planned, Planned), planned
    assert planned.received.receiving_unit == HA_GIANG_CITY
    assert planned.received.competent_unit == DISTRICT_1


def test_a_refusal_is_checked_against_the_reference_data_as_the_api_does() -> None:
    assert plan(1, refusal(unit="T99.H999"), REF, CAL, KEY) == ["unit: unknown administrative unit"]
    for forged in ["T99.H999", 'T79.H760"', "T79.H760\n"]:
        assert plan(1, refusal(competent_unit=forged), REF, CAL, KEY) == [
            "competent_unit: unknown administrative unit"
        ]
    assert plan(1, refusal(procedure_code="9.999999"), REF, CAL, KEY) == [
        "procedure_code: not in the procedure catalog"
    ]
    wrong_id = {"kind": "citizen", "id_number": "003085001234", "name": "X"}
    assert plan(1, refusal(applicant=wrong_id), REF, CAL, KEY) == [
        "applicant.id_number: the first three digits are not one of the 63 province codes"
    ]
    assert plan(1, refusal(refused_at_reception={"reason": ""}), REF, CAL, KEY) == [
        "refused_at_reception.reason: String should have at least 1 character"
    ]


def test_a_refused_dossier_has_no_timeline() -> None:
    after = [{"type": "processing_started", "at": "2023-07-03T10:00:00+07:00"}]
    assert plan(1, refusal(timeline=after), REF, CAL, KEY) == [
        "timeline.1: processing_started: cannot start processing a dossier that is "
        "refused_at_reception (allowed: received)"
    ]
    rated = [{"type": "rated", "at": "2023-07-03T10:00:00+07:00", "satisfied": False}]
    assert plan(1, refusal(timeline=rated), REF, CAL, KEY) == [
        "timeline.1: rated: a dossier refused at reception cannot be rated"
    ]


def test_an_old_maps_commune_receives_on_30_june_2025_and_is_refused_on_1_july() -> None:
    commune_level = {
        "procedure_code": "1.001193",  # birth registration, commune level
        "components": [{"code": "to_khai"}, {"code": "giay_chung_sinh"}],
        "timeline": [],
    }
    last_day = line(unit=QUANG_TRUNG, received_at="2025-06-30T16:30:00+07:00", **commune_level)
    planned = plan(1, last_day, REF, CAL, KEY)
    assert isinstance(planned, Planned), planned
    assert planned.received.receiving_unit == QUANG_TRUNG
    first_day = line(unit=QUANG_TRUNG, received_at="2025-07-01T08:00:00+07:00", **commune_level)
    assert plan(1, first_day, REF, CAL, KEY) == [
        "unit: unit T02.H024.X00688 is not in force on 2025-07-01; successors: "
        "T08.X00691 (Trung tâm Phục vụ hành chính công phường Hà Giang 2, Tuyên Quang), "
        "T08.X00694 (Trung tâm Phục vụ hành chính công phường Hà Giang 1, Tuyên Quang)"
    ]
    # The same day at its successor's center: received (the two-level map's commune center
    # receives the commune's procedures).
    successor = line(unit="T08.X00691", received_at="2025-07-01T08:00:00+07:00", **commune_level)
    assert isinstance(plan(1, successor, REF, CAL, KEY), Planned)


def test_an_import_lines_competent_unit_must_be_in_force_that_day() -> None:
    after = {"unit": "T08.X00691", "received_at": "2025-07-02T09:00:00+07:00"}
    reasons = plan(1, refusal(competent_unit=DISTRICT_1, **after), REF, CAL, KEY)
    assert isinstance(reasons, list) and len(reasons) == 1
    assert reasons[0].startswith(
        "competent_unit: unit T79.H760 is not in force on 2025-07-02; successors: T79.X26737 "
    )
    today_center = refusal(competent_unit="T79.X26737", **after)
    assert isinstance(plan(1, today_center, REF, CAL, KEY), Planned)
