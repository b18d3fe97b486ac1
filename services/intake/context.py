"""What the intake routes need at run time, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from services.intake.store import IntakeStore
from services.intake.writer import ReceptionWriter
from shared.auth import Caller
from shared.bearer import Authenticator, bearer_caller, signed_in_caller
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

    def __post_init__(self) -> None:
        if self.authenticator is None:
            self.authenticator = Authenticator.of_environment(self.token_keys)
        # Built at start, on the event loop: the first token then finds the provider's keys.
        self.authenticator.prefetch()

    async def sign_in(self, authorization: str | None) -> Caller:
        """A counter of a unit the reference data knows (401 otherwise); whether the unit may
        receive at this instant is reception's check. A token signed by a key the identity
        provider has just rotated in waits for its key set."""
        return await signed_in_caller(
            authorization, self._authenticator, "counter", units=self.reference.units
        )

    def authenticate(self, authorization: str | None) -> Caller:
        """As sign_in, with the provider's keys in hand (a key rotated in is 401 until fetched)."""
        return bearer_caller(
            authorization, self._authenticator, "counter", units=self.reference.units
        )

    @property
    def _authenticator(self) -> Authenticator:
        if self.authenticator is None:  # __post_init__ set it; for the type checker
            raise RuntimeError("no authenticator")
        return self.authenticator
