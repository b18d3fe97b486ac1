"""What the processing routes need at run time, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from services.processing.store import ProcessingStore
from shared.auth import Caller
from shared.bearer import Authenticator, bearer_caller, signed_in_caller
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

    def __post_init__(self) -> None:
        if self.authenticator is None:
            self.authenticator = Authenticator.of_environment(self.token_keys)
        # Built at start, on the event loop: the first token then finds the provider's keys.
        self.authenticator.prefetch()

    async def sign_in(self, authorization: str | None) -> Caller:
        """An officer of a unit the map knows, of any day (the officers of a unit that ended
        still answer for its dossiers); 401 otherwise. A token signed by a key the identity
        provider has just rotated in waits for its key set."""
        return await signed_in_caller(
            authorization, self._authenticator, "officer", units=self.reference.units
        )

    def authenticate(self, authorization: str | None) -> Caller:
        """As sign_in, with the provider's keys in hand (a key rotated in is 401 until fetched)."""
        return bearer_caller(
            authorization, self._authenticator, "officer", units=self.reference.units
        )

    @property
    def _authenticator(self) -> Authenticator:
        if self.authenticator is None:  # __post_init__ set it; for the type checker
            raise RuntimeError("no authenticator")
        return self.authenticator
