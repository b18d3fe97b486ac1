from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.metrics.domain import COMPLETED, RECEIVED, CounterKey, aggregate
from shared.contract import (
    Channel,
    DossierStatus,
    DossierStatusChanged,
    StatusChangedPayload,
    Timeliness,
    new_event_fields,
)

NOW = datetime(2026, 11, 23, 3, tzinfo=UTC)


def status_event(
    status: DossierStatus, previous: DossierStatus | None, timeliness: Timeliness | None = None
) -> DossierStatusChanged:
    return DossierStatusChanged(
        **new_event_fields(NOW, uuid.uuid4(), "T001.H01", "T079"),
        payload=StatusChangedPayload(
            dossier_code="c",
            procedure_code="p",
            channel=Channel.ONLINE,
            status=status,
            previous_status=previous,
            received_at=NOW,
            appointment_at=NOW,
            ended_at=NOW if timeliness else None,
            timeliness=timeliness,
        ),
    )


def test_reception_counts_at_the_receiving_unit_and_completion_at_the_competent_one() -> None:
    totals = aggregate(
        [
            status_event(DossierStatus.RECEIVED, None),
            status_event(DossierStatus.WITHDRAWN, DossierStatus.RECEIVED, Timeliness.EARLY),
            # Result returned after resolution is not a second completion.
            status_event(DossierStatus.RESULT_RETURNED, DossierStatus.RESOLVED, Timeliness.EARLY),
        ]
    )
    assert totals == {
        CounterKey(RECEIVED, "T001.H01", "online"): 1,
        CounterKey(COMPLETED, "T079", "early"): 1,
    }
