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
    # Units an officer may transfer a dossier to.
    reference: ReferenceData

    def authenticate(self, authorization: str | None) -> Caller:
        return bearer_caller(authorization, self.token_keys, "officer")
