"""What the processing routes need at run time, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from services.processing.store import ProcessingStore
from shared.auth import Caller
from shared.bearer import bearer_caller
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

    def authenticate(self, authorization: str | None) -> Caller:
        """An officer of a unit the map knows, of any day (the officers of a unit that ended
        still answer for its dossiers); 401 otherwise."""
        return bearer_caller(authorization, self.token_keys, "officer", units=self.reference.units)
