"""The officers' HTTP routes (/v1), scoped to the officer's unit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from services.processing.store import ProcessingStore
from shared.auth import Caller, InvalidToken, verify
from shared.http import Problem

router = APIRouter(prefix="/v1", tags=["dossiers"])


def _store(request: Request) -> ProcessingStore:
    store: ProcessingStore = request.app.state.store
    return store


def _officer(request: Request) -> Caller:
    header = request.headers.get("authorization")
    if header is None or not header.lower().startswith("bearer "):
        raise Problem(
            401, "Unauthorized", "Send `Authorization: Bearer <token>`", kind="unauthorized"
        )
    try:
        caller = verify(header[7:].strip(), request.app.state.token_keys)
    except InvalidToken as exc:
        raise Problem(401, "Unauthorized", f"Invalid token: {exc}", kind="unauthorized") from exc
    if caller.role != "officer":
        raise Problem(403, "Forbidden", "This API is for processing officers", kind="forbidden")
    return caller


Store = Annotated[ProcessingStore, Depends(_store)]
CurrentOfficer = Annotated[Caller, Depends(_officer)]


class TimelineOut(BaseModel):
    occurred_at: datetime
    status: int
    note: str


class DossierOut(BaseModel):
    """A dossier with its process control slip (mẫu 06: every hand-over with its time)."""

    id: UUID
    code: str
    procedure_code: str
    receiving_unit: str
    competent_unit: str
    status: int
    status_name: str
    received_at: datetime
    appointment_at: datetime
    ended_at: datetime | None
    timeliness: str | None
    timeline: list[TimelineOut]


@router.get("/dossiers/{dossier_id}", response_model=DossierOut)
async def read_dossier(dossier_id: UUID, officer: CurrentOfficer, store: Store) -> DossierOut:
    dossier = await store.get(officer.unit, dossier_id)
    if dossier is None:
        raise Problem(404, "Not found", "No dossier with this id is handled by your unit")
    entries = await store.timeline(dossier_id)
    return DossierOut(
        id=dossier.id,
        code=dossier.code,
        procedure_code=dossier.procedure_code,
        receiving_unit=dossier.receiving_unit,
        competent_unit=dossier.competent_unit,
        status=int(dossier.status),
        status_name=dossier.status.name.lower(),
        received_at=dossier.received_at,
        appointment_at=dossier.appointment_at,
        ended_at=dossier.ended_at,
        timeliness=None if dossier.timeliness is None else dossier.timeliness.value,
        timeline=[
            TimelineOut(occurred_at=t.occurred_at, status=t.status, note=t.note) for t in entries
        ],
    )
