"""The index's populations, computed by PostgreSQL from the facts the status events carry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.metrics.store import MIGRATIONS, SCHEMA, MetricsStore
from services.metrics.workflow import count_events
from shared.contract import (
    DossierEvent,
    ProcessingStarted,
    SupplementReceived,
    SupplementRequested,
    new_event_fields,
)
from shared.db import prepare
from tests.conftest import Isolated
from tests.factories import received, status_events

pytestmark = pytest.mark.integration
UNIT = "T001.H01"


def life(received_days_ago: float, days: int, *steps: tuple[str, float]) -> list[DossierEvent]:
    """A dossier received some days ago, then officers' steps at so many days after reception."""
    at = datetime.now(UTC) - timedelta(days=received_days_ago)
    first = received(UNIT, at, days=days)
    events: list[DossierEvent] = [first]
    for kind, after in steps:
        fields = new_event_fields(
            at + timedelta(days=after), first.dossier_id, UNIT, UNIT, actor="officer"
        )
        if kind == "start":
            events.append(ProcessingStarted(**fields))
        elif kind == "ask":
            events.append(SupplementRequested(**fields, payload={"reason": "bổ sung"}))
        else:
            events.append(SupplementReceived(**fields))
    return events


async def test_open_dossiers_on_time_at_the_judging_instant(isolated: Isolated) -> None:
    lives = {
        "appointment ahead": life(2, 10, ("start", 0.1)),
        "appointment passed": life(20, 1, ("start", 0.1)),
        "waiting, asked in time": life(20, 3, ("start", 0.1), ("ask", 1)),
        "waiting, asked after the appointment": life(20, 1, ("start", 0.1), ("ask", 10)),
        "asked twice": life(1, 10, ("ask", 0.1), ("back", 0.2), ("ask", 0.3)),
    }
    pool = await prepare(isolated.database_url, SCHEMA, MIGRATIONS, 2)
    try:
        store = MetricsStore(pool, lambda unit: "T001")
        for events in lives.values():
            await count_events(store, status_events(events))
        now = datetime.now(UTC)
        population = (await store.populations("unit", now - timedelta(days=60), now, now))[UNIT]
    finally:
        await pool.close()
    assert population.in_period == 5
    # On time: the one whose appointment is ahead, and the one waiting for a supplement asked for
    # before its appointment (the request's instant is its end). Late: the other three.
    assert population.on_time == 2
