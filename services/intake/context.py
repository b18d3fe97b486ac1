"""What the intake routes need at run time, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from services.intake.store import IntakeStore
from services.intake.writer import ReceptionWriter
from shared.auth import Caller
from shared.bearer import bearer_caller
from shared.calendar import WorkingCalendar
from shared.contract import Topics
from shared.problems import Problem
from shared.reference import ReferenceData, Unit


@dataclass
class Intake:
    store: IntakeStore
    reference: ReferenceData
    calendar: WorkingCalendar
    id_hash_key: bytes
    token_keys: list[str]
    topics: Topics
    writer: ReceptionWriter

    def unit_of(self, caller: Caller) -> Unit:
        unit = self.reference.units.get(caller.unit)
        if unit is None:
            raise Problem(
                403,
                "Unknown unit",
                f"Unit {caller.unit} is not in the reference data",
                kind="unknown-unit",
            )
        return unit

    def authenticate(self, authorization: str | None) -> Caller:
        return bearer_caller(authorization, self.token_keys, "counter")
