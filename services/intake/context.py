"""What the intake routes need at run time, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from services.intake.reference import ReferenceData
from services.intake.store import IntakeStore
from shared.auth import Caller, InvalidToken, verify
from shared.calendar import WorkingCalendar
from shared.contract import Topics
from shared.http import Problem


@dataclass
class Intake:
    store: IntakeStore
    reference: ReferenceData
    calendar: WorkingCalendar
    id_hash_key: bytes
    token_keys: list[str]
    topics: Topics

    def authenticate(self, authorization: str | None) -> Caller:
        """A counter of one unit, from its bearer token; anything else is a 401."""
        if authorization is None or not authorization.lower().startswith("bearer "):
            raise Problem(
                401, "Unauthorized", "Send `Authorization: Bearer <token>`", kind="unauthorized"
            )
        try:
            caller = verify(authorization[7:].strip(), self.token_keys)
        except InvalidToken as exc:
            raise Problem(
                401, "Unauthorized", f"Invalid token: {exc}", kind="unauthorized"
            ) from exc
        if caller.role != "counter":
            raise Problem(403, "Forbidden", "This API is for counters", kind="forbidden")
        return caller
