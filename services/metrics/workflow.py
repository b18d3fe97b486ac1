"""The metrics service's orchestration: counting status events, refreshing the index gauges.

Counting is the unit of work of the consumer and the rebuild: each event is counted once (its id
is claimed in the same transaction), each dossier's events in order, through the pure fold of
domain.py; the store only reads and writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Literal
from uuid import UUID

from services.metrics.context import Metrics
from services.metrics.domain import CounterKey, DossierFacts, StatusEvent, fold
from services.metrics.exposition import IndexExposition
from services.metrics.index import Period, Score, league, parse_period
from services.metrics.provinces import Ranking, by_province, ranking
from services.metrics.store import Known, MetricsStore
from shared.calendar import LOCAL_TZ
from shared.db_errors import TRANSIENT_DB_ERRORS
from shared.logging import get_logger

log = get_logger(__name__)


async def count_events(store: MetricsStore, events: Sequence[StatusEvent]) -> int:
    """Count the events never counted before; how many they were. All or nothing."""
    async with store.counting() as tx:
        by_dossier = _fresh_by_dossier(
            events, await tx.claim([e.event_id for e in events], len(events))
        )
        if not by_dossier:
            return 0
        known = await tx.known(list(by_dossier))
        sums: dict[CounterKey, int] = {}
        facts: list[DossierFacts] = []
        versions: list[list[DossierFacts]] = []
        for dossier_id, dossier_events in by_dossier.items():
            stored = known.get(dossier_id)
            first = _catch_up(stored)
            new_versions = [] if first is None else [first]
            after, _ = fold(
                None if stored is None else stored.facts, dossier_events, sums, new_versions
            )
            facts.append(after)
            versions.append(new_versions)
        await tx.save(facts, versions, sums)
        return sum(len(v) for v in by_dossier.values())


def _fresh_by_dossier(
    events: Sequence[StatusEvent], fresh: set[UUID] | None
) -> dict[UUID, list[StatusEvent]]:
    """The fresh events (None: all of them) by dossier, each dossier's in the batch's order."""
    by_dossier: dict[UUID, list[StatusEvent]] = {}
    if fresh is None:
        for event in events:
            by_dossier.setdefault(event.dossier_id, []).append(event)
        return by_dossier
    for event in events:
        if event.event_id in fresh:
            fresh.discard(event.event_id)  # a duplicate inside the batch counts once
            by_dossier.setdefault(event.dossier_id, []).append(event)
    return by_dossier


def _catch_up(stored: Known | None) -> DossierFacts | None:
    """The version a dossier's history lacks before its new events, if any.

    During a rolling upgrade, pods from before migration 004 keep updating the facts without
    writing versions; folding from those facts alone, such a change would never get a version
    (a dossier resolved by an old pod would stay open in the versions forever).
    """
    if stored is None:
        return None
    if stored.unversioned:
        # Received by a pod without versions: its history is unknown, so one version since its
        # reception (as migration 004 gave every dossier).
        return replace(stored.facts, last_event_at=stored.facts.received_at)
    if stored.stale:
        # Changed by a pod without versions: the change is dated by its last event.
        return stored.facts
    return None


Scope = Literal["unit", "province"]


async def standings(
    metrics: Metrics, scope: Scope, period: Period, at: datetime
) -> tuple[Ranking, list[Score]]:
    """A period's league of units (as received) or provinces (of the structure in force on its
    last day, old units counted to their successors'), judged at `at`."""
    reference = metrics.reference  # one version for the whole table, whatever a reload does
    on = ranking(reference, period)
    units = await metrics.store.populations(period.start, period.end, at)
    populations = units if scope == "unit" else by_province(units, reference, on)
    return on, league(populations, metrics.index_config)


async def refresh_index(metrics: Metrics, exposition: IndexExposition) -> None:
    """The index gauges: the year to date of the latest event, for units and provinces (one
    query: the provinces' populations are their units')."""
    latest = await metrics.store.latest_event_at()
    if latest is None:
        return
    period = parse_period(f"{latest.astimezone(LOCAL_TZ).year}")
    at = min(period.end, latest)
    reference = metrics.reference
    units = await metrics.store.populations(period.start, period.end, at)
    provinces = by_province(units, reference, ranking(reference, period))
    rows = []
    for scope, populations in (("unit", units), ("province", provinces)):
        for s in league(populations, metrics.index_config):
            rows.append((scope, s.code, "total", s.total))
            rows += [(scope, s.code, group, value) for group, value in s.groups.items()]
    exposition.update(rows)


async def refresh_index_every(metrics: Metrics, exposition: IndexExposition, every: float) -> None:
    """`refresh_index` every `every` seconds, for ever; the database away only skips a round."""
    while True:
        try:
            await refresh_index(metrics, exposition)
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("index refresh: database unavailable", error=repr(exc))
        await asyncio.sleep(every)
