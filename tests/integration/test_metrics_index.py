"""The index's populations, computed by PostgreSQL from the facts the status events carry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.metrics.context import Metrics
from services.metrics.index import IndexConfig, Population, league, parse_period
from services.metrics.store import MIGRATIONS, SCHEMA, MetricsStore
from services.metrics.workflow import count_events, standings
from shared.calendar import LOCAL_TZ
from shared.contract import (
    DossierEvent,
    ProcessingStarted,
    SupplementReceived,
    SupplementRequested,
    new_event_fields,
)
from shared.db import prepare
from shared.reference import REFERENCE_DIR, load_reference
from tests.conftest import Isolated
from tests.factories import received, status_events

pytestmark = pytest.mark.integration
UNIT = "T01.X00004"  # phường Ba Đình's center (new map)


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
        store = MetricsStore(pool, lambda unit: "01")
        for events in lives.values():
            await count_events(store, status_events(events))
        now = datetime.now(UTC)
        population = (await store.populations(now - timedelta(days=60), now, now))[UNIT]
    finally:
        await pool.close()
    assert population.in_period == 5
    # On time: the one whose appointment is ahead, and the one waiting for a supplement asked for
    # before its appointment (the request's instant is its end). Late: the other three.
    assert population.on_time == 2


# --------------------------------------------------------------------------- per structure

# Old map: Hà Giang's center, a district unit and a commune unit of Hà Giang city; Tuyên Quang's
# and Hà Nội's centers (both keep their codes on the new map). New map: a Tuyên Quang commune
# center that took part of Hà Giang city over.
HA_GIANG = ("T02", "T02.H024", "T02.H024.X00688")


def local(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 10, tzinfo=LOCAL_TZ)


def history() -> list[DossierEvent]:
    """Receptions, some overdue at the end of their period (1 working day, received weeks
    before), some not (30 working days, received days before)."""
    events: list[DossierEvent] = []
    plan = {
        # 2023-Q3, old map
        (local(2023, 7, 10), 1): [*HA_GIANG, "T08", "T01", "T01"],
        (local(2023, 9, 25), 30): ["T02.H024", "T08", "T08", "T01.H001"],
        # 2025 before 1 July, old map; after it, new map
        (local(2025, 3, 10), 1): [*HA_GIANG, "T01.H001"],
        (local(2025, 6, 30), 30): ["T02.H024.X00688"],
        (local(2025, 9, 15), 1): ["T08.X00691", "T08", "T01"],
        (local(2025, 12, 22), 30): ["T08.X00691", "T08", "T01.X00004"],
    }
    for (at, days), units in plan.items():
        events += [received(unit, at, days=days) for unit in units]
    return events


async def test_each_period_ranks_on_the_structure_in_force_at_its_end(
    isolated: Isolated,
) -> None:
    reference = load_reference(REFERENCE_DIR)
    config = IndexConfig.load()
    pool = await prepare(isolated.database_url, SCHEMA, MIGRATIONS, 2)
    try:
        store = MetricsStore(pool, reference.province_of)
        await count_events(store, [e for r in history() for e in status_events([r])])
        metrics = Metrics(store, reference, config)
        q3 = parse_period("2023-Q3")
        units_q3 = await store.populations(q3.start, q3.end, q3.end)
        on_q3, provinces_q3 = await standings(metrics, "province", q3, q3.end)
        year = parse_period("2025")
        units_2025 = await store.populations(year.start, year.end, year.end)
        on_2025, provinces_2025 = await standings(metrics, "province", year, year.end)
    finally:
        await pool.close()

    # 2023-Q3: among the 63, each old province the sum of its own units (Hà Giang's three).
    assert (on_q3.structure.id, len(on_q3.provinces)) == ("vn63", 63)
    assert sum(units_q3[u].in_period for u in HA_GIANG) == 4
    own = {"T02": "02", "T08": "08", "T01": "01"}
    assert provinces_q3 == league(summed(units_q3, own), config)
    assert [on_q3.provinces[s.code].short_name for s in provinces_q3] == [
        "Tuyên Quang",  # 2 of 3 on time
        "Hà Nội",  # 1 of 3
        "Hà Giang",  # 1 of 4
    ]

    # 2025: among the 34; Hà Giang's dossiers count to Tuyên Quang, which took it over (those
    # received in 2023 and still open too: open during 2025, and overdue).
    assert (on_2025.structure.id, len(on_2025.provinces)) == ("vn34", 34)
    successors = {"T02": "08", "T08": "08", "T01": "01"}
    assert provinces_2025 == league(summed(units_2025, successors), config)
    tuyen_quang = next(s for s in provinces_2025 if s.code == "08")
    assert on_2025.provinces["08"].short_name == "Tuyên Quang"
    # 15 dossiers (7 from 2023, 8 from 2025), 2 on time (received on 22 December for 30
    # working days): 2.1 = 2/15 × 20.
    assert tuyen_quang.indicators["2.1.on_time"] == 2.67


def summed(units: dict[str, Population], province: dict[str, str]) -> dict[str, Population]:
    """The units' populations summed by hand into provinces by the code's `T{pp}`."""
    out: dict[str, Population] = {}
    for unit, population in units.items():
        total = out.setdefault(province[unit[:3]], Population())
        for name, value in vars(population).items():
            setattr(total, name, getattr(total, name) + value)
    return out
