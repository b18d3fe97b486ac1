"""Pure rules of reception: what a counter may accept, the dossier code and the appointment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.calendar import LOCAL_TZ, WorkingCalendar
from shared.contract import (
    OPEN_STATUSES,
    ApplicantKind,
    Channel,
    DocumentComponent,
    DossierStatus,
    RefusalPayload,
)
from shared.ids import personal_id_problem, tax_code_problem
from shared.reference import AdminMapError, Procedure, ReferenceData, Unit, UnitNotInForce
from shared.text import FreeText, NoNul, Reason, Text


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicantIn(_In):
    kind: ApplicantKind
    id_number: Text = Field(
        min_length=10,
        max_length=14,
        description="12-digit personal ID for a citizen, tax code for a business",
    )
    name: Text = Field(min_length=1, max_length=200)


class SubmissionIn(_In):
    """A dossier handed in at the counter (or online, or by post)."""

    procedure_code: Text = Field(min_length=1, max_length=32)
    applicant: ApplicantIn
    channel: Channel
    components: list[DocumentComponent] = Field(default_factory=list, max_length=100)
    competent_unit: Annotated[str, Field(max_length=64), NoNul] | None = Field(
        default=None,
        description="The competent authority when receiving across administrative boundaries",
    )


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str


class IntakeError(Exception):
    """The root of what intake refuses; the API answers each kind with its problem document."""


class Refused(IntakeError):
    """The submission (or the refusal record) breaks reception rules, field by field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))
        self.errors = errors


class UnitRefused(IntakeError):
    """A unit code named by the caller (the token's unit, a `competent_unit`, an import line's
    unit) that cannot receive or take a dossier on that day: unknown to the reference data, or
    not in force then (the error names the units that took over)."""

    def __init__(self, field: str, error: AdminMapError) -> None:
        super().__init__(f"{field}: {error}")
        self.field = field
        self.error = error

    @property
    def reason(self) -> str:
        """What the importer writes beside the field: the successors of a unit that ended, and
        never the value of an unknown one (it may be anything, even an ID)."""
        if isinstance(self.error, UnitNotInForce):
            return str(self.error)
        return "unknown administrative unit"


class IdempotencyKeyReused(IntakeError):
    """The Idempotency-Key was already used by this unit for a different request."""


class DossierNotFound(IntakeError):
    """No dossier with this id was received by the caller's unit."""


class ActionNotAllowed(IntakeError):
    """The counter action does not fit the dossier's status (the message says why)."""


@dataclass(frozen=True, slots=True)
class Admission:
    """A submission that passed every rule: what reception records."""

    procedure: Procedure
    competent_unit: Unit


def admit(reference: ReferenceData, code: str, at: datetime | date, *, field: str) -> Unit:
    """The unit in force at that instant (or on that local day) to receive or take a dossier;
    raises UnitRefused. A dictionary lookup and a date comparison: it runs at every reception."""
    try:
        return reference.admit(code, at)
    except AdminMapError as error:
        raise UnitRefused(field, error) from error


def _applicant_errors(applicant: ApplicantIn, today: date) -> list[FieldError]:
    if applicant.kind is ApplicantKind.CITIZEN:
        problem = personal_id_problem(applicant.id_number, today)
    else:
        problem = tax_code_problem(applicant.id_number)
    return [] if problem is None else [FieldError("applicant.id_number", problem)]


def check_submission(
    submission: SubmissionIn, unit: Unit, reference: ReferenceData, today: date
) -> Admission | list[FieldError]:
    """The admission of a submission at `unit` (in force on `today`, the reception's local day),
    or the rules it breaks, field by field. A competent unit that cannot take it that day raises
    UnitRefused first: its answer names the units to send it to instead."""
    errors = _applicant_errors(submission.applicant, today)

    competent = unit
    if submission.competent_unit is not None and submission.competent_unit != unit.code:
        competent = admit(reference, submission.competent_unit, today, field="competent_unit")

    procedure = reference.procedures.get(submission.procedure_code)
    if procedure is None:
        errors.append(FieldError("procedure_code", "not in the procedure catalog"))
    elif not reference.offers(competent, procedure):
        errors.append(
            FieldError(
                "procedure_code",
                f"unit {competent.code} ({competent.level}) is not competent for this "
                f"{procedure.competent_level}-level procedure",
            )
        )
    else:
        errors.extend(_component_errors(submission, procedure))
    if errors or procedure is None:
        return errors
    return Admission(procedure=procedure, competent_unit=competent)


def _component_errors(submission: SubmissionIn, procedure: Procedure) -> list[FieldError]:
    errors = []
    handed_in = [c.code for c in submission.components]
    if len(set(handed_in)) != len(handed_in):
        errors.append(FieldError("components", "a component is listed twice"))
    missing = sorted(procedure.required_components - set(handed_in))
    if missing:
        errors.append(FieldError("components", "missing required: " + ", ".join(missing)))
    unknown = sorted(set(handed_in) - {c.code for c in procedure.components})
    if unknown:
        errors.append(FieldError("components", "not part of this procedure: " + ", ".join(unknown)))
    return errors


def received_payload(
    submission: SubmissionIn,
    admission: Admission,
    *,
    code: str,
    applicant_ref: str,
    received_at: datetime,
    appointment_at: datetime,
    clock_started_at: datetime,
) -> dict[str, object]:
    """The DossierReceived payload (`shared.contract.encode_dossier_received` writes it)."""
    whole_days, exact_days = processing_time(admission.procedure)
    return {
        "dossier_code": code,
        "procedure_code": admission.procedure.code,
        "channel": submission.channel,
        "applicant_kind": submission.applicant.kind,
        "applicant_ref": applicant_ref,
        "received_at": received_at,
        "appointment_at": appointment_at,
        "clock_started_at": clock_started_at,
        "processing_days": whole_days,
        "processing_days_decimal": exact_days,
        "components": [c.model_dump() for c in submission.components],
        "result_is_paper": admission.procedure.result_is_paper,
    }


def processing_time(procedure: Procedure) -> tuple[int, float | None]:
    """The procedure's time as DossierReceived carries it: `processing_days` whole (rounded up
    for consumers that predate part-day procedures), and `processing_days_decimal`, the exact
    time when it is not whole (None otherwise)."""
    days = procedure.processing_days
    return procedure.whole_processing_days, None if days == int(days) else days


def dossier_code_prefix(unit_code: str, day: date) -> str:
    # Not strftime: this runs at every submission, and strftime costs ten times as much.
    return f"{unit_code}-{day.year % 100:02d}{day.month:02d}{day.day:02d}-"


def dossier_code(unit_code: str, day: date, sequence: int) -> str:
    """`{unit code}-{yymmdd}-{4-digit daily sequence}`, e.g. H15.50.05.13-261008-0975 (more digits
    past 9999 rather than a clash). The store numbers dossiers in SQL to this same rule."""
    return f"{dossier_code_prefix(unit_code, day)}{sequence:04d}"


def reception_day(received_at: datetime) -> date:
    return received_at.astimezone(LOCAL_TZ).date()


def clock_start_for(
    calendar: WorkingCalendar, procedure: Procedure, received_at: datetime
) -> datetime:
    """When the working clock starts (the procedure's cut-off applied): intake, which has the
    procedure, says it in DossierReceived, so processing never has to share its calendar to
    recover it."""
    return calendar.start_of_clock(received_at, has_cutoff=procedure.cutoff_next_day)


def appointment_for(
    calendar: WorkingCalendar, procedure: Procedure, received_at: datetime
) -> datetime:
    """The start of the working clock plus the procedure's time, whole days or part of one."""
    return calendar.appointment(
        received_at, procedure.processing_days, has_cutoff=procedure.cutoff_next_day
    )


class RefusalIn(SubmissionIn):
    """A dossier refused at the counter (mẫu 03), with the reason given to the applicant."""

    reason: Reason


class ReasonIn(_In):
    reason: Reason


class PaymentIn(_In):
    amount_vnd: int = Field(ge=1, le=10**12, description="in Vietnamese đồng")


class RatingIn(_In):
    satisfied: bool
    criteria: list[FreeText] = Field(default_factory=list, max_length=20)


def check_refusal(refusal: SubmissionIn, reference: ReferenceData, today: date) -> list[FieldError]:
    """A refusal still names a real procedure, a plausible applicant and, when it names the
    competent authority, a unit in force that day (UnitRefused otherwise, as for a submission):
    it is a record too, and its units reach the public index."""
    errors = _applicant_errors(refusal.applicant, today)
    if refusal.competent_unit is not None:
        admit(reference, refusal.competent_unit, today, field="competent_unit")
    if refusal.procedure_code not in reference.procedures:
        errors.append(FieldError("procedure_code", "not in the procedure catalog"))
    return errors


def refusal_payload(
    refusal: SubmissionIn, reason: str, *, code: str, applicant_ref: str, received_at: datetime
) -> RefusalPayload:
    """The DossierRefusedAtReception payload (mẫu 03): the counter's or a historical import's."""
    return RefusalPayload(
        dossier_code=code,
        procedure_code=refusal.procedure_code,
        channel=refusal.channel,
        applicant_kind=refusal.applicant.kind,
        applicant_ref=applicant_ref,
        received_at=received_at,
        reason=reason,
    )


S = DossierStatus
# What the counter may do, by the status processing last reported (processing has the last word).
COUNTER_ACTIONS: dict[str, frozenset[DossierStatus]] = {
    "SupplementReceived": frozenset({S.SUPPLEMENT_REQUESTED}),
    "ResultReturned": frozenset({S.RESOLVED}),
    "PaymentReceived": frozenset({S.PAYMENT_REQUESTED}),
    "DossierWithdrawn": OPEN_STATUSES,
    "DossierRated": frozenset(set(S) - {S.REFUSED_AT_RECEPTION}),
}


def counter_action_problem(action: str, status: DossierStatus, *, rated: bool) -> str | None:
    if action == "DossierRated" and rated:
        return "the dossier was already rated"
    allowed = COUNTER_ACTIONS[action]
    if status not in allowed:
        names = ", ".join(sorted(s.name.lower() for s in allowed))
        return f"the dossier is {status.name.lower()}; {action} needs one of: {names}"
    return None
