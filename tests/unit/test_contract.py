from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.contract import (
    ApplicantKind,
    Channel,
    DossierReceived,
    DossierReceivedPayload,
    DossierWithdrawn,
    Topics,
    decode_dossier_event,
    encode,
    new_event_fields,
)

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def received() -> DossierReceived:
    return DossierReceived(
        **new_event_fields(NOW, uuid.uuid4(), "T01", "T01"),
        payload=DossierReceivedPayload(
            dossier_code="T01-261123-0001",
            procedure_code="1.001612",
            channel=Channel.ONLINE,
            applicant_kind=ApplicantKind.CITIZEN,
            applicant_ref="ab" * 32,
            received_at=NOW,
            appointment_at=NOW,
            processing_days=3,
        ),
    )


def test_event_round_trips_through_bytes() -> None:
    event = received()
    assert decode_dossier_event(encode(event)) == event


def test_event_id_is_uuid7_and_envelope_carries_version() -> None:
    event = received()
    assert event.event_id.version == 7
    assert event.schema_version == 1


def test_type_selects_the_payload() -> None:
    event = received()
    raw = encode(event).replace(b'"DossierReceived"', b'"DossierWithdrawn"')
    with pytest.raises(ValidationError):
        decode_dossier_event(raw)  # a withdrawal needs a reason, not a reception payload
    withdrawn = DossierWithdrawn(
        **new_event_fields(NOW, event.dossier_id, "T01", "T01"),
        payload={"reason": "applicant asked"},
    )
    assert isinstance(decode_dossier_event(encode(withdrawn)), DossierWithdrawn)


def test_unknown_fields_are_refused() -> None:
    raw = encode(received()).replace(b'"schema_version":1', b'"schema_version":1,"extra":1')
    with pytest.raises(ValidationError, match="extra"):
        decode_dossier_event(raw)


def test_naive_times_are_refused() -> None:
    raw = encode(received()).replace(b"+00:00", b"").replace(b"Z", b"")
    with pytest.raises(ValidationError):
        decode_dossier_event(raw)


def test_topics_are_named_once_with_an_optional_prefix() -> None:
    assert Topics().dossier_events == "motcua.dossier-events.v1"
    assert Topics("t1.").all() == (
        "t1.motcua.dossier-events.v1",
        "t1.motcua.status-events.v1",
        "t1.motcua.dead-letter.v1",
    )
