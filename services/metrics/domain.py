"""Pure aggregation: what each status event adds to the exact counters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

from shared.contract import DossierOverdue, DossierStatus, DossierStatusChanged

END_STATUSES = frozenset(
    {
        DossierStatus.REFUSED_AT_RECEPTION,
        DossierStatus.WITHDRAWN,
        DossierStatus.STOPPED,
        DossierStatus.RESOLVED,
        DossierStatus.RESULT_RETURNED,
    }
)


class CounterKey(NamedTuple):
    """One exact counter: its metric name, the unit it belongs to, and one bounded label value."""

    name: str
    unit: str
    label: str


RECEIVED = "received"  # label: channel
COMPLETED = "completed"  # label: timeliness


def contributions(event: DossierStatusChanged | DossierOverdue) -> Iterable[CounterKey]:
    if isinstance(event, DossierOverdue):
        return
    p = event.payload
    unit = event.competent_unit
    if p.previous_status is None:
        yield CounterKey(RECEIVED, event.receiving_unit, p.channel.value)
    ended_now = p.status in END_STATUSES and (
        p.previous_status is None or p.previous_status not in END_STATUSES
    )
    if ended_now and p.timeliness is not None:
        yield CounterKey(COMPLETED, unit, p.timeliness.value)


def aggregate(events: Iterable[DossierStatusChanged]) -> Counter[CounterKey]:
    totals: Counter[CounterKey] = Counter()
    for event in events:
        totals.update(contributions(event))
    return totals
