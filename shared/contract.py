"""The event contract v1: the only thing the services share about each other.

Add-only: new optional fields and new event types may appear in v1; renaming or removing needs v2.
Every event is one envelope (`event_id`, `type`, `schema_version`, `occurred_at`, `dossier_id`, the
receiving and competent unit codes) with a typed payload. Events never carry a national ID in
clear: applicants appear as a keyed hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Literal
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from shared.calendar import Timeliness
from shared.ids import uuid7
from shared.text import Masked, Text, nul_fields

# Free text in a payload: ID-like numbers masked wherever an event is built or decoded (by the
# importer, a replay, an older producer), so no consumer stores one in clear (Decree 13/2023).
MaskedStr = Annotated[str, Masked]

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names, defined once. Every record's key is the dossier id (per-dossier order).

    The prefix lets several deployments (or test runs) share one cluster without seeing each other.
    """

    prefix: str = ""

    @property
    def dossier_events(self) -> str:
        return f"{self.prefix}motcua.dossier-events.v1"

    @property
    def status_events(self) -> str:
        return f"{self.prefix}motcua.status-events.v1"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}motcua.dead-letter.v1"

    def all(self) -> tuple[str, str, str]:
        return (self.dossier_events, self.status_events, self.dead_letter)


def dossier_key(dossier_id: UUID) -> bytes:
    return str(dossier_id).encode()


class Channel(StrEnum):
    """KenhThucHien: 1 in person at the counter, 2 online, 3 public postal service."""

    IN_PERSON = "in_person"
    ONLINE = "online"
    POSTAL = "postal"


class DossierStatus(IntEnum):
    """The status codes of provincial one-stop systems, kept for interoperability."""

    REGISTERED = 1
    RECEIVED = 2
    REFUSED_AT_RECEPTION = 3
    PROCESSING = 4
    SUPPLEMENT_REQUESTED = 5
    PAYMENT_REQUESTED = 6
    WITHDRAWN = 7
    STOPPED = 8
    RESOLVED = 9
    RESULT_RETURNED = 10


# End of processing (DOMAIN.md): the first of these ends a dossier's processing time.
END_STATUSES = frozenset(
    {
        DossierStatus.REFUSED_AT_RECEPTION,
        DossierStatus.WITHDRAWN,
        DossierStatus.STOPPED,
        DossierStatus.RESOLVED,
        DossierStatus.RESULT_RETURNED,
    }
)
OPEN_STATUSES = frozenset(set(DossierStatus) - END_STATUSES)


class ApplicantKind(StrEnum):
    CITIZEN = "citizen"
    BUSINESS = "business"


class _Model(BaseModel):
    # Input models refuse unknown fields: a typo in a producer must fail loudly, not vanish.
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- payloads


class DocumentComponent(_Model):
    """A component (thành phần hồ sơ) of the dossier as handed in."""

    code: Text = Field(min_length=1, max_length=64)
    digitized: bool = False
    reused: bool = False


class DossierReceivedPayload(_Model):
    dossier_code: str
    procedure_code: str
    channel: Channel
    applicant_kind: ApplicantKind
    applicant_ref: str = Field(description="HMAC of the applicant's ID, never the ID itself")
    received_at: AwareDatetime
    appointment_at: AwareDatetime
    processing_days: int = Field(ge=0)
    components: tuple[DocumentComponent, ...] = ()
    result_is_paper: bool = True
    processing_days_decimal: float | None = Field(
        default=None,
        gt=0,
        description="the procedure's time in working days when it is not whole (0.5: 4 working "
        "hours, 12 h of the working clock); processing_days then holds it rounded up",
    )
    clock_started_at: AwareDatetime | None = Field(
        default=None,
        description="when the working clock started (DOMAIN.md): the reception, or 08:00 of the "
        "next working day for a reception on a non-working day or after the procedure's cut-off; "
        "null in events written before it was carried",
    )

    @property
    def processing_time_days(self) -> float:
        """The procedure's exact time in working days, whichever field carries it."""
        return self.processing_days_decimal or self.processing_days


class RefusalPayload(_Model):
    """A dossier refused at reception (mẫu 03): it never enters processing."""

    dossier_code: str
    procedure_code: str
    channel: Channel
    applicant_kind: ApplicantKind
    applicant_ref: str
    received_at: AwareDatetime
    reason: MaskedStr = Field(min_length=1, max_length=2000)


class ReasonPayload(_Model):
    reason: MaskedStr = Field(min_length=1, max_length=2000)


class EmptyPayload(_Model):
    pass


class RatingPayload(_Model):
    satisfied: bool
    criteria: tuple[MaskedStr, ...] = Field(default=(), max_length=20)


class ResolutionPayload(_Model):
    """Approve with a result (electronic or paper), or refuse with a reason."""

    approved: bool
    result_electronic: bool = False
    reason: MaskedStr | None = Field(default=None, max_length=2000)


class PaymentRequestPayload(_Model):
    """A fee or charge the applicant must pay before processing goes on (status 6)."""

    amount_vnd: int = Field(ge=1, le=10**12, description="in Vietnamese đồng")
    reason: MaskedStr = Field(min_length=1, max_length=2000, description="what the payment is for")


class PaymentPayload(_Model):
    """A payment the counter (or the online payment gateway) received for the dossier."""

    amount_vnd: int = Field(ge=1, le=10**12, description="in Vietnamese đồng")


class TransferPayload(_Model):
    """A hand-over to another agency (liên thông / cross-boundary routing)."""

    to_unit: str = Field(min_length=1, max_length=64, description="the new competent unit")
    reason: MaskedStr = Field(min_length=1, max_length=2000)


class ApologyPayload(_Model):
    """The apology letter (mẫu 04) for an overdue dossier, with the new appointment."""

    new_appointment_at: AwareDatetime
    reason: MaskedStr = Field(min_length=1, max_length=2000)


class StatusChangedPayload(_Model):
    """What metrics needs about a dossier after each change, so it never queries processing."""

    dossier_code: str
    procedure_code: str
    channel: Channel
    status: DossierStatus
    previous_status: DossierStatus | None
    received_at: AwareDatetime
    appointment_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    timeliness: Timeliness | None = None
    elapsed_working_days: float | None = None
    supplement_requests: int = 0
    supplement_requested_at: AwareDatetime | None = Field(
        default=None, description="while a supplementation request is outstanding: its instant"
    )
    components_total: int = 0
    components_digitized: int = 0
    components_reused: int = 0
    result_electronic: bool | None = None
    approved: bool | None = None
    digitized: bool = False
    overdue: bool = False
    apology_issued: bool = False
    satisfied: bool | None = None


# --------------------------------------------------------------------------- envelopes


class _Envelope(_Model):
    event_id: UUID
    schema_version: Literal[1] = 1
    occurred_at: AwareDatetime
    dossier_id: UUID
    receiving_unit: str = Field(min_length=1, max_length=64)
    competent_unit: str = Field(min_length=1, max_length=64)
    actor: str | None = Field(
        default=None, max_length=200, description="who acted (not a person's ID)"
    )


class DossierReceived(_Envelope):
    type: Literal["DossierReceived"] = "DossierReceived"
    payload: DossierReceivedPayload


class DossierRefusedAtReception(_Envelope):
    type: Literal["DossierRefusedAtReception"] = "DossierRefusedAtReception"
    payload: RefusalPayload


class SupplementReceived(_Envelope):
    type: Literal["SupplementReceived"] = "SupplementReceived"
    payload: EmptyPayload = EmptyPayload()


class ResultReturned(_Envelope):
    type: Literal["ResultReturned"] = "ResultReturned"
    payload: EmptyPayload = EmptyPayload()


class DossierWithdrawn(_Envelope):
    type: Literal["DossierWithdrawn"] = "DossierWithdrawn"
    payload: ReasonPayload


class DossierRated(_Envelope):
    type: Literal["DossierRated"] = "DossierRated"
    payload: RatingPayload


class PaymentReceived(_Envelope):
    type: Literal["PaymentReceived"] = "PaymentReceived"
    payload: PaymentPayload


# Officers' actions. Processing applies them from its own API; on the dossier-events topic they
# only come from a historical import, which replays a dossier's whole timeline.


class ProcessingStarted(_Envelope):
    type: Literal["ProcessingStarted"] = "ProcessingStarted"
    payload: EmptyPayload = EmptyPayload()


class SupplementRequested(_Envelope):
    type: Literal["SupplementRequested"] = "SupplementRequested"
    payload: ReasonPayload


class DossierResolved(_Envelope):
    type: Literal["DossierResolved"] = "DossierResolved"
    payload: ResolutionPayload


class DossierStopped(_Envelope):
    type: Literal["DossierStopped"] = "DossierStopped"
    payload: ReasonPayload


class ResultDigitized(_Envelope):
    type: Literal["ResultDigitized"] = "ResultDigitized"
    payload: EmptyPayload = EmptyPayload()


class ApologyIssued(_Envelope):
    type: Literal["ApologyIssued"] = "ApologyIssued"
    payload: ApologyPayload


class PaymentRequested(_Envelope):
    type: Literal["PaymentRequested"] = "PaymentRequested"
    payload: PaymentRequestPayload


class DossierTransferred(_Envelope):
    """The competent unit changes; the deadline does not restart (DOMAIN.md, Transfer)."""

    type: Literal["DossierTransferred"] = "DossierTransferred"
    payload: TransferPayload


class DossierStatusChanged(_Envelope):
    type: Literal["DossierStatusChanged"] = "DossierStatusChanged"
    payload: StatusChangedPayload


class DossierOverdue(_Envelope):
    """An open dossier passed its appointment: emitted once per dossier by the overdue watch."""

    type: Literal["DossierOverdue"] = "DossierOverdue"
    payload: StatusChangedPayload


CounterEvent = (
    DossierReceived
    | DossierRefusedAtReception
    | SupplementReceived
    | ResultReturned
    | DossierWithdrawn
    | DossierRated
    | PaymentReceived
)
OfficerEvent = (
    ProcessingStarted
    | SupplementRequested
    | DossierResolved
    | DossierStopped
    | ResultDigitized
    | ApologyIssued
    | PaymentRequested
    | DossierTransferred
)
DossierEvent = Annotated[CounterEvent | OfficerEvent, Field(discriminator="type")]
StatusEvent = Annotated[DossierStatusChanged | DossierOverdue, Field(discriminator="type")]

_dossier_events: TypeAdapter[DossierEvent] = TypeAdapter(DossierEvent)


def decode_dossier_event(raw: bytes) -> DossierEvent:
    """Parse one record of the dossier-events topic; raises pydantic.ValidationError if invalid."""
    event = _dossier_events.validate_json(raw)
    # JSON allows U+0000 and so do the models, but PostgreSQL's text cannot hold it: refused here,
    # where it is a clear validation error, instead of failing the whole batch's transaction.
    # The bytes test keeps the walk off the usual path (NUL can only arrive escaped).
    if b"\\u0000" in raw and (fields := nul_fields(event.model_dump())):
        raise ValidationError.from_exception_data(
            "DossierEvent",
            [
                {
                    "type": PydanticCustomError("nul_character", "U+0000 in a string"),
                    "loc": tuple(f.split(".")),
                    "input": None,
                }
                for f in fields
            ],
        )
    return event


_status_events: TypeAdapter[StatusEvent] = TypeAdapter(StatusEvent)


def decode_status_event(raw: bytes) -> DossierStatusChanged | DossierOverdue:
    """Parse one record of the status topic; raises pydantic.ValidationError if invalid."""
    # Nearly every record is a DossierStatusChanged, and validating against that model directly
    # is a third cheaper than through the union; anything else takes the union's path, which
    # also gives the precise error.
    try:
        return DossierStatusChanged.model_validate_json(raw)
    except ValidationError:
        return _status_events.validate_json(raw)


def encode(event: _Envelope) -> bytes:
    return event.model_dump_json().encode()


def _encode_envelope(
    event_type: str,
    *,
    occurred_at: datetime,
    dossier_id: UUID,
    receiving_unit: str,
    competent_unit: str,
    actor: str | None,
    payload: Mapping[str, object],
) -> bytes:
    """An event's JSON written directly, for the hot paths below. The bytes are the models' own
    encoding up to the datetime spelling ("+00:00" for "Z"); their tests check that the bytes
    decode to the event the models would build and that `payload` has exactly the model's fields.
    """
    return orjson.dumps(
        {
            "event_id": uuid7(),
            "schema_version": SCHEMA_VERSION,
            "occurred_at": occurred_at,
            "dossier_id": dossier_id,
            "receiving_unit": receiving_unit,
            "competent_unit": competent_unit,
            "actor": actor,
            "type": event_type,
            "payload": payload,
        }
    )


def encode_status_event(
    event_type: Literal["DossierStatusChanged", "DossierOverdue"],
    *,
    occurred_at: datetime,
    dossier_id: UUID,
    receiving_unit: str,
    competent_unit: str,
    payload: Mapping[str, object],
) -> bytes:
    """A status event's JSON: processing's hot path (one per applied event), where building and
    serialising the pydantic models cost a fifth of the CPU. `payload`: StatusChangedPayload's."""
    return _encode_envelope(
        event_type,
        occurred_at=occurred_at,
        dossier_id=dossier_id,
        receiving_unit=receiving_unit,
        competent_unit=competent_unit,
        actor=None,
        payload=payload,
    )


def encode_dossier_received(
    *,
    occurred_at: datetime,
    dossier_id: UUID,
    receiving_unit: str,
    competent_unit: str,
    actor: str | None,
    payload: Mapping[str, object],
) -> bytes:
    """A DossierReceived event's JSON: intake's hot path (one per submission), where the models
    were a tenth of the CPU. `payload`: DossierReceivedPayload's, from validated values."""
    return _encode_envelope(
        "DossierReceived",
        occurred_at=occurred_at,
        dossier_id=dossier_id,
        receiving_unit=receiving_unit,
        competent_unit=competent_unit,
        actor=actor,
        payload=payload,
    )


def new_event_fields(
    occurred_at: datetime,
    dossier_id: UUID,
    receiving_unit: str,
    competent_unit: str,
    actor: str | None = None,
) -> dict[str, object]:
    """The envelope fields of a new event, with a fresh UUIDv7 id."""
    return {
        "event_id": uuid7(),
        "occurred_at": occurred_at,
        "dossier_id": dossier_id,
        "receiving_unit": receiving_unit,
        "competent_unit": competent_unit,
        "actor": actor,
    }


__all__ = ["Timeliness"]  # re-exported: the contract's timeliness is the calendar's classification
