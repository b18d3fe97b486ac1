"""`motcua import FILE`: load historical dossiers (JSONL) through the same rules and contract.

One dossier per line: what the counter received (as `POST /v1/dossiers` takes it) plus the unit,
the original reception time, optionally the original code, and the timeline of what happened; or,
for a dossier refused at the counter (as `POST /v1/refusals` takes it), the refusal's reason.
Each line is checked whole, reception rules and the processing state machine alike, before any of
it is written: a line is imported entirely or rejected with its reasons, never in part. Accepted
lines go into intake's tables and outbox, one transaction per line, and the outbox relay publishes
them as ordinary events with their original times. Importing the same file again skips
the lines already imported.

This is a tool, not a service: it receives a line through intake's workflow (the rules, the event
and the stored dossier of `POST /v1/dossiers` or `/v1/refusals`, at the line's own instant) and
checks its timeline with processing's state machine (pure), exactly as the running services would.
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
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from services.intake import domain as reception
from services.intake import workflow
from services.intake.config import IntakeSettings
from services.intake.store import MIGRATIONS, SCHEMA, IntakeStore, LostRace
from services.processing import domain as processing
from shared.calendar import WorkingCalendar
from shared.contract import (
    ApologyIssued,
    DossierEvent,
    DossierRated,
    DossierReceived,
    DossierRefusedAtReception,
    DossierResolved,
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
    decode_dossier_event,
    encode,
    new_event_fields,
)
from shared.db import prepare
from shared.logging import mask_text
from shared.outbox import OutboxRelay
from shared.progress import Progress
from shared.reference import ReferenceData, load_reference
from shared.text import FreeText, NoNul, Note, Reason, Text

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
    reason: Note | None = None
    approved: bool | None = None
    result_electronic: bool = False
    satisfied: bool | None = None
    criteria: list[FreeText] = Field(default_factory=list, max_length=20)
    amount_vnd: int | None = None
    to_unit: Annotated[str, Field(max_length=64), NoNul] | None = None
    new_appointment_at: AwareDatetime | None = None


class RefusalAtReception(BaseModel):
    """The counter refused the dossier (mẫu 03): it never entered processing."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason


class ImportLine(reception.SubmissionIn):
    """One historical dossier: the submission, where and when it was received, what followed
    (or its refusal at the counter)."""

    unit: Text = Field(min_length=1, max_length=64)
    received_at: AwareDatetime
    code: Annotated[str, Field(max_length=80), NoNul] | None = None
    timeline: list[TimelineStep] = Field(default_factory=list, max_length=50)
    refused_at_reception: RefusalAtReception | None = None


@dataclass(frozen=True)
class Planned:
    line_no: int
    line: ImportLine
    decision: workflow.Decision  # what intake's workflow stores
    request_hash: str
    # The announcement as processing reads it (the code is issued when stored), and what follows.
    received: DossierReceived | DossierRefusedAtReception
    events: list[DossierEvent]

    @property
    def dossier_id(self) -> uuid.UUID:
        return self.decision.arrival.dossier_id

    @property
    def competent_unit(self) -> str:
        return self.decision.competent_unit

    @property
    def appointment_at(self) -> datetime | None:
        """None for a dossier refused at reception."""
        return self.decision.appointment_at

    @property
    def refusal_reason(self) -> str | None:
        return self.decision.refusal_reason


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
        if step.type == "transferred" and step.to_unit is not None:
            # A transfer follows the reception's rule, at the transfer's instant.
            try:
                reception.admit(reference, step.to_unit, step.at, field="to_unit")
            except reception.UnitRefused as exc:
                return events, [f"{where}: {exc.field}: {exc.reason}"]
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
    return line


def plan(
    line_no: int, raw: str, reference: ReferenceData, calendar: WorkingCalendar, hash_key: bytes
) -> Planned | list[str]:
    """Everything about one line, or why it is refused; pure.

    A dossier refused at the counter is recorded as `POST /v1/refusals` does, at its original
    instant. It never enters processing: a timeline after it is refused by processing's state
    machine, like any impossible step.
    """
    line = _parse(raw)
    if isinstance(line, list):
        return line
    # The unit receives as at the counter: only while it is in force at the line's instant (2023
    # history onto the old map's units; from 1 July 2025 the old units are refused, naming their
    # successors, as the API's 422 does).
    try:
        unit = reception.admit(reference, line.unit, line.received_at, field="unit")
    except reception.UnitRefused as exc:
        return [f"{exc.field}: {exc.reason}"]
    request_hash = hashlib.sha256(raw.strip().encode()).hexdigest()
    dossier_id = uuid.uuid5(_NAMESPACE, f"{unit.code}:{line.code or request_hash}")
    refusal = line.refused_at_reception
    try:
        decision = workflow.decide(
            line,
            workflow.Arrival(unit, line.received_at, dossier_id, actor="import"),
            reference=reference,
            calendar=calendar,
            id_hash_key=hash_key,
            refusal_reason=None if refusal is None else refusal.reason,
        )
    except reception.Refused as exc:
        return [f"{e.field}: {e.reason}" for e in exc.errors]
    except reception.UnitRefused as exc:
        return [f"{exc.field}: {exc.reason}"]
    received = decode_dossier_event(workflow.announcement(decision, line.code or "pending"))
    assert isinstance(received, DossierReceived | DossierRefusedAtReception)
    dossier = processing.apply(None, received, calendar).dossier

    def fields(at: datetime) -> dict[str, object]:
        return new_event_fields(at, dossier_id, unit.code, decision.competent_unit, actor="import")

    events, refused = _replay(line, dossier, fields, reference, calendar)
    if refused:
        return refused
    return Planned(line_no, line, decision, request_hash, received, events)


async def _store(store: IntakeStore, planned: Planned, topics: Topics) -> bool:
    """Write one dossier and its whole timeline; False if it was imported before."""
    try:
        await store.receive(
            workflow.reception(
                planned.decision,
                topics.dossier_events,
                idempotency_key=f"import:{planned.dossier_id}",
                request_hash=planned.request_hash,
                given_code=planned.line.code or None,
                then=[encode(e) for e in planned.events],
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
                    # The reasons are not meant to echo input values, and are masked all the
                    # same (a message of a library could); the line itself is masked.
                    record = {
                        "line": line_no,
                        "reasons": [mask_text(reason) for reason in outcome],
                        "input": mask_text(raw.strip()),
                    }
                    rejected.write(json.dumps(record, ensure_ascii=False) + "\n")
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
