"""What the intake routes need at run time, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from services.intake.store import IntakeStore
from services.intake.writer import ReceptionWriter
from shared.auth import Caller
from shared.bearer import bearer_caller
from shared.calendar import WorkingCalendar
from shared.contract import Topics
from shared.reference import ReferenceData


@dataclass
class Intake:
    store: IntakeStore
    # Replaced whole by a SIGHUP reload: read it once per request.
    reference: ReferenceData
    calendar: WorkingCalendar
    id_hash_key: bytes
    token_keys: list[str]
    topics: Topics
    writer: ReceptionWriter

    def authenticate(self, authorization: str | None) -> Caller:
        """A counter of a unit the reference data knows (401 otherwise); whether the unit may
        receive at this instant is reception's check."""
        return bearer_caller(authorization, self.token_keys, "counter", units=self.reference.units)
