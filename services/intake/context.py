"""What the intake routes need at run time, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.intake.store import IntakeStore
from services.intake.writer import ReceptionWriter
from shared.auth import Caller
from shared.bearer import Authenticator, Gate
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
    # The development keys above and the identity provider (Authenticator.of(settings)); left
    # out, the MOTCUA_OIDC_* of the environment.
    authenticator: Authenticator | None = None

    gate: Gate = field(init=False)

    def __post_init__(self) -> None:
        self.gate = Gate.opened(
            "counter", self.authenticator, self.token_keys, lambda: self.reference.units
        )

    async def sign_in(self, authorization: str | None) -> Caller:
        """A counter of a unit the reference data knows (401 otherwise); whether the unit may
        receive at this instant is reception's check."""
        return await self.gate.sign_in(authorization)
