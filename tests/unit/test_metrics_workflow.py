"""The metrics workflow: each fresh event counted once, in dossier order; the index refresh."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID

import pytest

from services.metrics import domain as d
from services.metrics.context import Metrics
from services.metrics.domain import CounterKey, DossierFacts, StatusEvent, fold
from services.metrics.exposition import IndexExposition
from services.metrics.index import IndexConfig, Population, parse_period
from services.metrics.store import Known, MetricsStore
from services.metrics.workflow import count_events, refresh_index
from shared.contract import (
    Channel,
    DossierStatus,
    DossierStatusChanged,
    StatusChangedPayload,
    new_event_fields,
)
from shared.reference import REFERENCE_DIR, ReferenceData, load_reference

T0 = datetime(2026, 11, 2, 3, tzinfo=UTC)
S = DossierStatus
UNIT = "T01.X00004"


def event(dossier: UUID, status: DossierStatus, hours: int, **payload: object) -> StatusEvent:
    return DossierStatusChanged(
        **new_event_fields(T0 + timedelta(hours=hours), dossier, UNIT, UNIT),
        payload=StatusChangedPayload(
            dossier_code="c",
            procedure_code="p",
            channel=Channel.ONLINE,
            status=status,
            previous_status=None,
            received_at=T0,
            appointment_at=T0 + timedelta(days=3),
            **payload,
        ),
    )


@dataclass
class Saved:
    facts: list[DossierFacts]
    versions: list[list[DossierFacts]]
    sums: dict[CounterKey, int]


@dataclass
class FakeCounting:
    """The store's transaction, in memory: ids seen before, facts stored before."""

    seen: set[UUID]
    stored: dict[UUID, Known]
    saved: list[Saved] = field(default_factory=list)
    loaded: list[list[UUID]] = field(default_factory=list)

    async def claim(self, event_ids: Sequence[UUID], count: int) -> set[UUID] | None:
        assert count == len(event_ids)
        fresh = {i for i in event_ids if i not in self.seen}
        self.seen |= fresh
        return None if len(fresh) == count else fresh

    async def known(self, dossier_ids: Sequence[UUID]) -> dict[UUID, Known]:
        self.loaded.append(list(dossier_ids))
        return {i: self.stored[i] for i in dossier_ids if i in self.stored}

    async def save(
        self,
        facts: Sequence[DossierFacts],
        versions: Sequence[Sequence[DossierFacts]],
        sums: dict[CounterKey, int],
    ) -> None:
        self.saved.append(Saved(list(facts), [list(v) for v in versions], dict(sums)))


class FakeStore:
    def __init__(self, tx: FakeCounting) -> None:
        self.tx = tx

    @asynccontextmanager
    async def counting(self) -> AsyncIterator[FakeCounting]:
        yield self.tx


async def run(
    events: list[StatusEvent],
    seen: set[UUID] | None = None,
    stored: dict[UUID, Known] | None = None,
) -> tuple[int, FakeCounting]:
    tx = FakeCounting(seen or set(), stored or {})
    counted = await count_events(cast(MetricsStore, FakeStore(tx)), events)
    return counted, tx


async def test_a_batch_is_folded_per_dossier_in_order_and_saved_once() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    events = [event(a, S.RECEIVED, 0), event(b, S.RECEIVED, 1), event(a, S.PROCESSING, 2)]
    counted, tx = await run(events)
    assert counted == 3
    assert tx.loaded == [[a, b]]
    (saved,) = tx.saved
    assert [f.id for f in saved.facts] == [a, b]
    assert saved.facts[0].status is S.PROCESSING  # a's events in the batch's order
    expected: dict[CounterKey, int] = {}
    fold(None, [events[0], events[2]], expected)
    fold(None, [events[1]], expected)
    assert saved.sums == expected
    assert saved.sums[CounterKey(d.RECEIVED, UNIT, "online")] == 2


async def test_duplicates_count_once_in_the_batch_and_never_again() -> None:
    a = uuid.uuid4()
    first = event(a, S.RECEIVED, 0)
    counted, tx = await run([first, first, event(a, S.PROCESSING, 1)])
    assert counted == 2
    # Redelivered: nothing counts, nothing is written.
    again, tx = await run([first], seen=tx.seen)
    assert again == 0
    assert tx.saved == []
    assert tx.loaded == []


def stored_facts(dossier: UUID) -> DossierFacts:
    facts, _ = fold(None, [event(dossier, S.RECEIVED, 0), event(dossier, S.PROCESSING, 5)])
    return facts


async def test_a_dossier_known_from_an_old_pod_first_gets_its_missing_version() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stored = {
        a: Known(stored_facts(a), unversioned=True, stale=False),
        b: Known(stored_facts(b), unversioned=False, stale=True),
        c: Known(stored_facts(c), unversioned=False, stale=False),
    }
    _, tx = await run(
        [event(i, S.PROCESSING, 20, supplement_requests=1) for i in (a, b, c)], stored=stored
    )
    (saved,) = tx.saved
    versions = dict(zip((f.id for f in saved.facts), saved.versions, strict=True))
    # Never versioned: one version since its reception, then the new one.
    assert versions[a][0] == replace(stored[a].facts, last_event_at=T0)
    # Versioned, but changed since by an old pod: that change, dated by its last event.
    assert versions[b][0] == stored[b].facts
    # Up to date: only what the new event changes.
    assert [v.last_event_at for v in versions[c]] == [T0 + timedelta(hours=20)]
    assert all(len(v) == 2 for v in (versions[a], versions[b]))


class IndexStore:
    """What the index refresh reads: the latest event, and the units' populations."""

    def __init__(self, latest: datetime | None) -> None:
        self.latest = latest
        self.asked: list[tuple[datetime, datetime, datetime]] = []

    async def latest_event_at(self) -> datetime | None:
        return self.latest

    async def populations(
        self, start: datetime, end: datetime, at: datetime
    ) -> dict[str, Population]:
        self.asked.append((start, end, at))
        return {
            # Hà Giang's district unit (old map) and a Tuyên Quang commune center (new map).
            "T02.H024": Population(in_period=4, on_time=3, received=4, received_online=4),
            "T08.X00691": Population(in_period=4, on_time=1, received=4),
        }


@pytest.fixture(scope="module")
def reference() -> ReferenceData:
    return load_reference(REFERENCE_DIR)


def metrics_of(store: IndexStore, reference: ReferenceData) -> Metrics:
    return Metrics(cast(MetricsStore, store), reference, IndexConfig.load())


async def test_the_index_is_the_year_to_date_of_the_latest_event(
    reference: ReferenceData,
) -> None:
    store = IndexStore(T0)
    exposition = IndexExposition()
    await refresh_index(metrics_of(store, reference), exposition)
    year = parse_period("2026")
    # One query: the provinces' populations are their units'.
    assert store.asked == [(year.start, year.end, T0)]
    text = exposition.text.decode()
    assert 'motcua_service_index_score{code="T02.H024",group="total",scope="unit"}' in text
    # 2026 ranks on the 34 provinces: the old unit counts to Tuyên Quang, with the new one.
    provinces = [line for line in text.splitlines() if 'scope="province"' in line]
    assert provinces and all('code="08"' in line for line in provinces)
    on_time = 20 * 4 / 8  # 2.1's points: 4 of the province's 8 dossiers on time
    assert f'code="08",group="2",scope="province"}} {on_time}' in text


async def test_no_event_yet_leaves_the_index_unrendered(reference: ReferenceData) -> None:
    exposition = IndexExposition()
    await refresh_index(metrics_of(IndexStore(None), reference), exposition)
    assert exposition.text == b""
