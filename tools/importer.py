"""`motcua import FILE`: load historical dossiers (JSONL) through the same rules and contract.

One dossier per line: what the counter received (as `POST /v1/dossiers` takes it) plus the unit,
the original reception time, optionally the original code, and the timeline of what happened; or,
for a dossier refused at the counter (as `POST /v1/refusals` takes it), the refusal's reason.
Each line is checked whole, reception rules and the processing state machine alike, before any of
it is written: a line is imported entirely or rejected with its reasons, never in part. Accepted
lines go into intake's tables and outbox in one transaction per chunk, and the outbox relay
publishes them as ordinary events with their original times. Importing the same file again skips
the lines already imported.

This is a tool, not a service: it uses intake's reception rules and processing's state machine
(both pure) to judge a line exactly as the running services would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from services.intake import domain as reception
from services.intake.config import IntakeSettings
from services.intake.store import (
    CODE_PLACEHOLDER,
    MIGRATIONS,
    SCHEMA,
    CodedEvent,
    IntakeStore,
    LostRace,
    Reception,
)
from services.processing import domain as processing
from shared.calendar import WorkingCalendar
from shared.contract import (
    ApologyIssued,
    DossierEvent,
    DossierRated,
    DossierReceived,
    DossierReceivedPayload,
    DossierRefusedAtReception,
    DossierResolved,
    DossierStatus,
    DossierStopped,
    DossierTransferred,
    DossierWithdrawn,
    PaymentReceived,
    PaymentRequested,
    ProcessingStarted,
    ResultDigitized,
    ResultReturned,
    SupplementReceived,
    SupplementRequested,
    Topics,
    dossier_key,
    encode,
    new_event_fields,
)
from shared.db import prepare
from shared.ids import keyed_hash
from shared.logging import mask_text
from shared.outbox import OutboxMessage, OutboxRelay
from shared.progress import Progress
from shared.reference import ReferenceData, Unit, load_reference
from shared.text import nul_fields

StepType = Literal[
    "processing_started",
    "supplement_requested",
    "supplement_received",
    "resolved",
    "stopped",
    "withdrawn",
    "returned",
    "rated",
    "payment_requested",
    "payment_received",
    "transferred",
    "apology_issued",
    "result_digitized",
]
_NAMESPACE = uuid.UUID("6f1d7c1e-3a52-4e0b-9a51-7d7f0c1b2a10")


class TimelineStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: StepType
    at: AwareDatetime
    reason: str | None = Field(default=None, max_length=2000)
    approved: bool | None = None
    result_electronic: bool = False
    satisfied: bool | None = None
    criteria: list[str] = Field(default_factory=list, max_length=20)
    amount_vnd: int | None = None
    to_unit: str | None = Field(default=None, max_length=64)
    new_appointment_at: AwareDatetime | None = None


class RefusalAtReception(BaseModel):
    """The counter refused the dossier (mẫu 03): it never entered processing."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class ImportLine(reception.SubmissionIn):
    """One historical dossier: the submission, where and when it was received, what followed
    (or its refusal at the counter)."""

    unit: str = Field(min_length=1, max_length=64)
    received_at: AwareDatetime
    code: str | None = Field(default=None, max_length=80)
    timeline: list[TimelineStep] = Field(default_factory=list, max_length=50)
    refused_at_reception: RefusalAtReception | None = None


@dataclass(frozen=True)
class Planned:
    line_no: int
    line: ImportLine
    dossier_id: uuid.UUID
    competent_unit: str
    appointment_at: datetime | None  # None for a dossier refused at reception
    request_hash: str
    received: DossierReceived | DossierRefusedAtReception  # its code is issued when stored
    events: list[DossierEvent]

    @property
    def refusal_reason(self) -> str | None:
        if isinstance(self.received, DossierRefusedAtReception):
            return self.received.payload.reason
        return None


@dataclass
class Summary:
    accepted: int = 0
    rejected: int = 0
    already_imported: int = 0
    rejected_file: Path | None = None
    reasons: dict[str, int] = field(default_factory=dict)


# Each step type: the event it becomes, and its payload from the step's fields (None: no payload).
_STEPS: dict[str, tuple[Any, Callable[[TimelineStep], dict[str, Any]] | None]] = {
    "processing_started": (ProcessingStarted, None),
    "supplement_requested": (SupplementRequested, lambda s: {"reason": s.reason or "bổ sung"}),
    "supplement_received": (SupplementReceived, None),
    "resolved": (
        DossierResolved,
        lambda s: {
            "approved": bool(s.approved),
            "result_electronic": s.result_electronic,
            "reason": s.reason,
        },
    ),
    "stopped": (DossierStopped, lambda s: {"reason": s.reason or "dừng xử lý"}),
    "withdrawn": (DossierWithdrawn, lambda s: {"reason": s.reason or "rút hồ sơ"}),
    "returned": (ResultReturned, None),
    "rated": (
        DossierRated,
        lambda s: {"satisfied": bool(s.satisfied), "criteria": tuple(s.criteria)},
    ),
    "payment_requested": (
        PaymentRequested,
        lambda s: {"amount_vnd": s.amount_vnd, "reason": s.reason or "phí"},
    ),
    "payment_received": (PaymentReceived, lambda s: {"amount_vnd": s.amount_vnd}),
    "transferred": (
        DossierTransferred,
        lambda s: {"to_unit": s.to_unit, "reason": s.reason or "liên thông"},
    ),
    "apology_issued": (
        ApologyIssued,
        lambda s: {"new_appointment_at": s.new_appointment_at, "reason": s.reason or "xin lỗi"},
    ),
    "result_digitized": (ResultDigitized, None),
}


def _step_event(step: TimelineStep, fields: dict[str, object]) -> DossierEvent:
    """The step as its event; raises ValidationError when a field its payload needs is absent."""
    event_type, payload = _STEPS[step.type]
    event: DossierEvent = (
        event_type(**fields) if payload is None else event_type(**fields, payload=payload(step))
    )
    return event


def _replay(
    line: ImportLine,
    dossier: processing.Dossier,
    fields: Callable[[datetime], dict[str, object]],
    reference: ReferenceData,
    calendar: WorkingCalendar,
) -> tuple[list[DossierEvent], list[str]]:
    """The timeline's events, each checked by processing's state machine; or why it is refused
    (the second list, empty when every step holds)."""
    events: list[DossierEvent] = []
    previous = line.received_at
    for n, step in enumerate(line.timeline, start=1):
        where = f"timeline.{n}: {step.type}"
        if step.at < previous:
            return events, [f"{where} at {step.at} is before the step it follows"]
        previous = step.at
        if step.type == "transferred" and step.to_unit not in reference.units:
            return events, [f"{where}: to_unit {step.to_unit} is not in the reference data"]
        try:
            event = _step_event(step, fields(step.at))
            dossier = processing.apply(dossier, event, calendar).dossier
        except ValidationError as exc:
            return events, [
                f"{where}: {'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
                for e in exc.errors(include_input=False)
            ]
        except processing.Rejected as exc:
            return events, [f"{where}: {exc}"]
        events.append(event)
    return events, []


def _parse(raw: str) -> ImportLine | list[str]:
    try:
        line = ImportLine.model_validate_json(raw)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False)
        ]
    if "\\u0000" in raw:  # JSON's only way to carry a NUL, which PostgreSQL text cannot store
        nul = nul_fields(line.model_dump())
        if nul:
            return [f"{field}: must not contain the NUL character" for field in nul]
    return line


def plan(
    line_no: int, raw: str, reference: ReferenceData, calendar: WorkingCalendar, hash_key: bytes
) -> Planned | list[str]:
    """Everything about one line, or why it is refused; pure."""
    line = _parse(raw)
    if isinstance(line, list):
        return line
    unit = reference.units.get(line.unit)
    if unit is None:
        return [f"unit: {line.unit} is not in the reference data"]
    request_hash = hashlib.sha256(raw.strip().encode()).hexdigest()
    dossier_id = uuid.uuid5(_NAMESPACE, f"{unit.code}:{line.code or request_hash}")
    if line.refused_at_reception is not None:
        return _plan_refusal(
            line_no,
            line,
            line.refused_at_reception,
            unit=unit,
            identity=(dossier_id, request_hash),
            reference=reference,
            calendar=calendar,
            hash_key=hash_key,
        )
    verdict = reception.check_submission(line, unit, reference, line.received_at.date())
    if isinstance(verdict, list):
        return [f"{e.field}: {e.reason}" for e in verdict]
    appointment = reception.appointment_for(calendar, verdict.procedure, line.received_at)
    whole_days, exact_days = reception.processing_time(verdict.procedure)
    received = DossierReceived(
        **new_event_fields(
            line.received_at, dossier_id, unit.code, verdict.competent_unit.code, actor="import"
        ),
        payload=DossierReceivedPayload(
            dossier_code=line.code or "pending",
            procedure_code=verdict.procedure.code,
            channel=line.channel,
            applicant_kind=line.applicant.kind,
            applicant_ref=keyed_hash(line.applicant.id_number, hash_key),
            received_at=line.received_at,
            appointment_at=appointment,
            clock_started_at=reception.clock_start_for(
                calendar, verdict.procedure, line.received_at
            ),
            processing_days=whole_days,
            processing_days_decimal=exact_days,
            components=tuple(line.components),
            result_is_paper=verdict.procedure.result_is_paper,
        ),
    )
    dossier = processing.apply(None, received, calendar).dossier

    def fields(at: datetime) -> dict[str, object]:
        return new_event_fields(
            at, dossier_id, unit.code, verdict.competent_unit.code, actor="import"
        )

    events, refused = _replay(line, dossier, fields, reference, calendar)
    if refused:
        return refused
    return Planned(
        line_no,
        line,
        dossier_id,
        verdict.competent_unit.code,
        appointment,
        request_hash,
        received,
        events,
    )


def _plan_refusal(
    line_no: int,
    line: ImportLine,
    refusal: RefusalAtReception,
    *,
    unit: Unit,
    identity: tuple[uuid.UUID, str],
    reference: ReferenceData,
    calendar: WorkingCalendar,
    hash_key: bytes,
) -> Planned | list[str]:
    """A dossier refused at the counter, checked and recorded as `POST /v1/refusals` does, at its
    original instant. It never enters processing: a timeline after it is refused by processing's
    state machine, like any impossible step."""
    dossier_id, request_hash = identity
    errors = reception.check_refusal(line, reference, reception.reception_day(line.received_at))
    if errors:
        return [f"{e.field}: {e.reason}" for e in errors]
    competent = line.competent_unit or unit.code

    def fields(at: datetime) -> dict[str, object]:
        return new_event_fields(at, dossier_id, unit.code, competent, actor="import")

    refused = DossierRefusedAtReception(
        **fields(line.received_at),
        payload=reception.refusal_payload(
            line,
            refusal.reason,
            code=line.code or "pending",
            applicant_ref=keyed_hash(line.applicant.id_number, hash_key),
            received_at=line.received_at,
        ),
    )
    dossier = processing.apply(None, refused, calendar).dossier
    _, refused_steps = _replay(line, dossier, fields, reference, calendar)
    if refused_steps:
        return refused_steps
    return Planned(line_no, line, dossier_id, competent, None, request_hash, refused, [])


async def _store(store: IntakeStore, planned: Planned, topics: Topics) -> bool:
    """Write one dossier and its whole timeline; False if it was imported before."""
    line = planned.line

    # The received event carries the code: the original one, or the placeholder the store
    # replaces with the code it issues.
    code = line.code or CODE_PLACEHOLDER
    payload = planned.received.payload.model_copy(update={"dossier_code": code})
    received = planned.received.model_copy(update={"payload": payload})
    key = dossier_key(planned.dossier_id)
    day = reception.reception_day(line.received_at)
    try:
        await store.receive(
            Reception(
                dossier_id=planned.dossier_id,
                receiving_unit=line.unit,
                competent_unit=planned.competent_unit,
                procedure_code=line.procedure_code,
                channel=line.channel.value,
                applicant_kind=line.applicant.kind.value,
                applicant_ref=planned.received.payload.applicant_ref,
                applicant_name=line.applicant.name,
                received_at=line.received_at,
                appointment_at=planned.appointment_at,
                status=int(
                    DossierStatus.RECEIVED
                    if planned.refusal_reason is None
                    else DossierStatus.REFUSED_AT_RECEPTION
                ),
                refusal_reason=planned.refusal_reason,
                components=[c.model_dump() for c in line.components],
                idempotency_key=f"import:{planned.dossier_id}",
                request_hash=planned.request_hash,
                day=day,
                code_prefix=reception.dossier_code_prefix(line.unit, day),
                given_code=line.code or None,
                # Only the received event carries the code.
                events=[
                    CodedEvent.of(OutboxMessage(topics.dossier_events, key, encode(received))),
                    *(
                        CodedEvent.plain(OutboxMessage(topics.dossier_events, key, encode(e)))
                        for e in planned.events
                    ),
                ],
            )
        )
    except LostRace:
        return False
    return True


async def run_import(
    path: Path, settings: IntakeSettings, on_progress: Callable[[int], None] | None = None
) -> Summary:
    reference = load_reference(settings.reference_dir)
    calendar = WorkingCalendar.vietnam(range(2015, 2031), settings.calendar_override)
    hash_key = settings.id_hash_key.get_secret_value().encode()
    pool = await prepare(settings.database_url, SCHEMA, MIGRATIONS, 4)
    store = IntakeStore(pool)
    summary = Summary(rejected_file=path.with_suffix(path.suffix + ".rejected"))
    assert summary.rejected_file is not None
    with path.open(encoding="utf-8") as lines, summary.rejected_file.open("w") as rejected:
        for line_no, raw in enumerate(lines, start=1):
            if raw.strip():
                outcome = plan(line_no, raw, reference, calendar, hash_key)
                if isinstance(outcome, list):
                    summary.rejected += 1
                    for reason in outcome:
                        summary.reasons[reason.split(":")[0]] = (
                            summary.reasons.get(reason.split(":")[0], 0) + 1
                        )
                    # The reasons never echo input values; the line itself is masked.
                    rejected.write(
                        json.dumps(
                            {"line": line_no, "reasons": outcome, "input": mask_text(raw.strip())},
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
                elif await _store(store, outcome, settings.topics):
                    summary.accepted += 1
                else:
                    summary.already_imported += 1
            if on_progress is not None:
                on_progress(1)
    await pool.close()
    return summary


async def drain_outbox(settings: IntakeSettings, progress: Progress | None) -> None:
    """Publish what the import wrote (or wait while a running intake's relay does)."""
    relay = OutboxRelay(settings.database_url, SCHEMA, settings.kafka_bootstrap)
    relay.start()
    pool = await prepare(settings.database_url, SCHEMA, MIGRATIONS, 1)
    try:
        last = None
        while (left := int(await pool.fetchval("SELECT count(*) FROM outbox"))) > 0:
            if progress is not None and last is not None:
                progress.advance(max(last - left, 0))
            last = left
            await asyncio.sleep(0.5)
    finally:
        await relay.stop()
        await pool.close()


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)
