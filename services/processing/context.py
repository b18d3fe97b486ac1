"""What the processing routes need at run time, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.processing.store import ProcessingStore
from shared.auth import Caller
from shared.bearer import Authenticator, Gate
from shared.calendar import WorkingCalendar
from shared.contract import Topics
from shared.reference import ReferenceData


@dataclass
class Processing:
    store: ProcessingStore
    calendar: WorkingCalendar
    topics: Topics
    token_keys: list[str]
    # The map of the last (re)load, replaced whole by SIGHUP: the officers' units and the units
    # a dossier may be transferred to.
    reference: ReferenceData
    # The development keys above and the identity provider (Authenticator.of(settings)); left
    # out, the MOTCUA_OIDC_* of the environment.
    authenticator: Authenticator | None = None

    gate: Gate = field(init=False)

    def __post_init__(self) -> None:
        self.gate = Gate.opened(
            "officer", self.authenticator, self.token_keys, lambda: self.reference.units
        )

    async def sign_in(self, authorization: str | None) -> Caller:
        """An officer of a unit the map knows, of any day (the officers of a unit that ended
        still answer for its dossiers); 401 otherwise."""
        return await self.gate.sign_in(authorization)
