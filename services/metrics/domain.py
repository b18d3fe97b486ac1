"""Pure aggregation: the facts kept per dossier and what each status event adds to the counters.

Counters change only on transitions between a dossier's previous facts and its new ones, so an
event applied twice (or out of a replay) can never count twice: the store keeps the facts and the
event ids in the same transaction.

Reception-side figures belong to the receiving unit (the counter's work); processing-side figures
to the competent unit (who resolves it).
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from shared.contract import (
    END_STATUSES,
    Channel,
    DossierOverdue,
    DossierStatus,
    DossierStatusChanged,
    Timeliness,
)

S = DossierStatus
# What metrics counts: processing's status events.
StatusEvent = DossierStatusChanged | DossierOverdue
# Upper bounds of the resolution-time histogram, in working days.
RESOLUTION_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)


class MetricsError(Exception):
    """The root of the metrics service's own errors (a refused rebuild, ...)."""


class CounterKey(NamedTuple):
    """One exact counter: its name, the unit it belongs to, and one bounded label value."""

    name: str
    unit: str
    label: str


RECEIVED = "received"  # label: channel
REFUSED_AT_RECEPTION = "refused_at_reception"
COMPLETED = "completed"  # label: timeliness
RESOLVED = "resolved"  # label: approved / refused
OPEN = "open"  # label: within / overdue (a gauge kept as +1/-1 transitions)
RESOLUTION_BUCKET = "resolution_bucket"  # label: the bucket's upper bound, "+Inf" included
RESOLUTION_SUM = "resolution_sum_millidays"  # thousandths of a working day, to stay integral
RECEIVED_DIGITIZED = "received_digitized"
RECEIVED_REUSED = "received_reused"
ELECTRONIC_RESULT = "electronic_result"
DIGITIZED = "digitized"
RATED = "rated"  # label: satisfied / unsatisfied


# Not frozen: a frozen dataclass's __init__ sets each of these fields through object.__setattr__,
# and one is built per event (half of the fold's time). Facts are never changed once built.
@dataclass(slots=True)
class DossierFacts:
    """What metrics needs to remember about one dossier (a row of metrics.dossiers)."""

    id: UUID
    receiving_unit: str
    competent_unit: str
    channel: Channel
    status: DossierStatus
    received_at: datetime
    appointment_at: datetime
    ended_at: datetime | None
    timeliness: Timeliness | None
    elapsed_working_days: float | None
    supplement_requests: int
    supplement_requested_at: datetime | None
    components_total: int
    components_digitized: int
    components_reused: int
    approved: bool | None
    result_electronic: bool
    digitized: bool
    overdue: bool
    satisfied: bool | None
    rated_at: datetime | None
    last_event_at: datetime

    @property
    def is_open(self) -> bool:
        return self.status not in END_STATUSES

    @property
    def counts_as_received(self) -> bool:
        return self.status is not S.REFUSED_AT_RECEPTION


def facts_after(old: DossierFacts | None, event: StatusEvent) -> DossierFacts:
    """The dossier's facts once `event` is known (events carry processing's full snapshot)."""
    p = event.payload
    rated_now = p.satisfied is not None and (old is None or old.satisfied is None)
    return DossierFacts(
        id=event.dossier_id,
        receiving_unit=event.receiving_unit,
        competent_unit=event.competent_unit,
        channel=p.channel,
        status=p.status,
        received_at=p.received_at,
        appointment_at=p.appointment_at,
        ended_at=p.ended_at,
        timeliness=p.timeliness,
        elapsed_working_days=p.elapsed_working_days,
        supplement_requests=p.supplement_requests,
        supplement_requested_at=p.supplement_requested_at,
        components_total=p.components_total,
        components_digitized=p.components_digitized,
        components_reused=p.components_reused,
        approved=p.approved,
        result_electronic=bool(p.result_electronic),
        digitized=p.digitized,
        # Overdue is sticky: once reported, a dossier stays overdue until it ends.
        # The type tag, not isinstance: pydantic models' metaclass is an ABC, whose isinstance
        # check was 3 % of a replay.
        # The payload's flag also says it: a second supplementation request makes a dossier
        # overdue at once, and any change seen after the appointment has passed.
        overdue=event.type == "DossierOverdue" or p.overdue or (old is not None and old.overdue),
        satisfied=p.satisfied,
        rated_at=event.occurred_at if rated_now else (old.rated_at if old else None),
        last_event_at=max(event.occurred_at, old.last_event_at) if old else event.occurred_at,
    )


@functools.lru_cache(maxsize=4096)
def _bucket_keys(unit: str, first: int) -> tuple[CounterKey, ...]:
    # The cumulative buckets a resolution time falls in, from the first that holds it: the
    # same few tuples for every dossier of a unit, so they are built once (this runs per event).
    labels = [f"{le:g}" for le in RESOLUTION_BUCKETS[first:]] + ["+Inf"]
    return tuple(CounterKey(RESOLUTION_BUCKET, unit, label) for label in labels)


def accumulate(old: DossierFacts | None, new: DossierFacts, out: dict[CounterKey, int]) -> None:  # noqa: PLR0912
    """Add the transition's deltas into `out` (a plain dict: this runs once per event)."""
    r, c = new.receiving_unit, new.competent_unit
    if old is None:
        if not new.counts_as_received:
            _add(out, CounterKey(REFUSED_AT_RECEPTION, r, ""), 1)
            return
        _add(out, CounterKey(RECEIVED, r, new.channel.value), 1)
        if new.components_total and new.components_digitized == new.components_total:
            _add(out, CounterKey(RECEIVED_DIGITIZED, r, ""), 1)
        if new.components_reused:
            _add(out, CounterKey(RECEIVED_REUSED, r, ""), 1)
        _add(out, CounterKey(OPEN, c, "within"), 1)
        was_open, was_overdue = True, False
        old_approved, old_electronic, old_digitized, old_satisfied = None, False, False, None
    else:
        if not old.counts_as_received:
            return
        was_open, was_overdue = old.is_open, old.overdue
        old_approved, old_electronic = old.approved, old.result_electronic
        old_digitized, old_satisfied = old.digitized, old.satisfied
        if was_open and old.competent_unit != c:
            # Transferred (liên thông): the open dossier is now the new competent unit's.
            state = "overdue" if was_overdue else "within"
            _add(out, CounterKey(OPEN, old.competent_unit, state), -1)
            _add(out, CounterKey(OPEN, c, state), 1)
    if was_open and new.is_open and new.overdue and not was_overdue:
        _add(out, CounterKey(OPEN, c, "within"), -1)
        _add(out, CounterKey(OPEN, c, "overdue"), 1)
    if was_open and not new.is_open:
        _add(out, CounterKey(OPEN, c, "overdue" if was_overdue else "within"), -1)
        if new.timeliness is not None:
            _add(out, CounterKey(COMPLETED, c, new.timeliness.value), 1)
        days = new.elapsed_working_days or 0.0
        for key in _bucket_keys(c, bisect.bisect_left(RESOLUTION_BUCKETS, days)):
            out[key] = out.get(key, 0) + 1
        _add(out, CounterKey(RESOLUTION_SUM, c, ""), round(days * 1000))
    if old_approved is None and new.approved is not None:
        _add(out, CounterKey(RESOLVED, c, "approved" if new.approved else "refused"), 1)
    if new.result_electronic and not old_electronic:
        _add(out, CounterKey(ELECTRONIC_RESULT, c, ""), 1)
    if new.digitized and not old_digitized:
        _add(out, CounterKey(DIGITIZED, c, ""), 1)
    if old_satisfied is None and new.satisfied is not None:
        _add(out, CounterKey(RATED, c, "satisfied" if new.satisfied else "unsatisfied"), 1)


def _add(out: dict[CounterKey, int], key: CounterKey, n: int) -> None:
    out[key] = out.get(key, 0) + n


def fold(
    old: DossierFacts | None,
    events: list[StatusEvent],
    into: dict[CounterKey, int] | None = None,
    versions: list[DossierFacts] | None = None,
) -> tuple[DossierFacts, dict[CounterKey, int]]:
    """Apply one dossier's events in order; the facts after them and the summed deltas
    (added into `into` when given, so a batch keeps one running total). With `versions`, the
    new versions of the facts the index judges are appended to it (see `_add_version`)."""
    total: dict[CounterKey, int] = {} if into is None else into
    facts = old
    for event in events:
        new = facts_after(facts, event)
        accumulate(facts, new, total)
        if versions is not None:
            _add_version(facts, new, versions)
        facts = new
    assert facts is not None
    return facts, total


# --------------------------------------------------------------------------- facts as of an instant
#
# The index judges a period on each dossier's facts as they stood at the period's end (invariant
# 9), so metrics keeps every version of the facts the index reads, each valid from the event time
# that made it (`last_event_at`) until the next version's. Only a change of these fields makes a
# version; a dossier refused at reception is in no index population and has none.


def judged(f: DossierFacts) -> tuple[object, ...]:
    """What the index reads of a dossier's facts (its populations and successes)."""
    return (
        f.competent_unit,
        f.appointment_at,
        f.ended_at,
        f.timeliness,
        f.supplement_requests,
        f.supplement_requested_at,
        f.approved,
        f.result_electronic,
        f.digitized,
        f.satisfied,
        f.rated_at,
    )


def _add_version(old: DossierFacts | None, new: DossierFacts, out: list[DossierFacts]) -> None:
    if not new.counts_as_received:
        return
    if old is not None and judged(old) == judged(new):
        return
    # Versions from the same instant collapse into the last: whatever the batches, the same
    # events leave the same versions.
    if out and out[-1].last_event_at == new.last_event_at:
        out[-1] = new
    else:
        out.append(new)
