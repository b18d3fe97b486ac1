"""Counters move only on transitions: replays of the same facts add nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.metrics import domain as d
from services.metrics.domain import RESOLUTION_BUCKETS, CounterKey, fold
from shared.contract import (
    Channel,
    DossierOverdue,
    DossierStatus,
    DossierStatusChanged,
    StatusChangedPayload,
    Timeliness,
    new_event_fields,
)

T0 = datetime(2026, 11, 2, 3, tzinfo=UTC)
ID = uuid.UUID(int=7)
S = DossierStatus


def event(
    status: DossierStatus,
    previous: DossierStatus | None,
    hours: int = 0,
    overdue_notice: bool = False,
    competent: str = "T01",
    **payload: Any,
) -> DossierStatusChanged | DossierOverdue:
    fields = new_event_fields(T0 + timedelta(hours=hours), ID, "T01.X00004", competent)
    body = StatusChangedPayload(
        dossier_code="c",
        procedure_code="p",
        channel=Channel.ONLINE,
        status=status,
        previous_status=previous,
        received_at=T0,
        appointment_at=T0 + timedelta(days=3),
        components_total=2,
        components_digitized=2,
        components_reused=1,
        **payload,
    )
    if overdue_notice:
        return DossierOverdue(**fields, payload=body)
    return DossierStatusChanged(**fields, payload=body)


def k(name: str, unit: str, label: str = "") -> CounterKey:
    return CounterKey(name, unit, label)


def nonzero(total: dict[CounterKey, int]) -> Counter[CounterKey]:
    return Counter({key: v for key, v in total.items() if v})


def test_a_whole_life_counts_each_fact_once() -> None:
    ended: dict[str, Any] = {
        "ended_at": T0 + timedelta(days=1),
        "timeliness": Timeliness.EARLY,
        "elapsed_working_days": 1.0,
        "approved": True,
        "result_electronic": True,
        "digitized": True,
    }
    life = [
        event(S.RECEIVED, None),
        event(S.PROCESSING, S.RECEIVED, 1),
        event(S.RESOLVED, S.PROCESSING, 24, **ended),
        event(S.RESULT_RETURNED, S.RESOLVED, 30, **ended),
        event(S.RESULT_RETURNED, S.RESULT_RETURNED, 31, satisfied=False, **ended),
    ]
    facts, total = fold(None, life)
    assert nonzero(total) == Counter(
        {
            k(d.RECEIVED, "T01.X00004", "online"): 1,
            k(d.RECEIVED_DIGITIZED, "T01.X00004"): 1,
            k(d.RECEIVED_REUSED, "T01.X00004"): 1,
            k(d.COMPLETED, "T01", "early"): 1,
            k(d.RESOLVED, "T01", "approved"): 1,
            k(d.ELECTRONIC_RESULT, "T01"): 1,
            k(d.DIGITIZED, "T01"): 1,
            k(d.RATED, "T01", "unsatisfied"): 1,
            k(d.RESOLUTION_SUM, "T01"): 1000,
            **{
                k(d.RESOLUTION_BUCKET, "T01", le): 1
                for le in ("1", "2", "3", "5", "7", "10", "15", "20", "30", "45", "60", "+Inf")
            },
        }
    )  # the open gauge went +1 then -1: nothing left
    assert (
        nonzero(fold(facts, life[-1:])[1]) == Counter()
    )  # the last snapshot again changes nothing


def test_open_gauge_moves_from_within_to_overdue_and_out() -> None:
    _, opened = fold(None, [event(S.RECEIVED, None)])
    assert opened[k(d.OPEN, "T01", "within")] == 1
    facts, late = fold(
        None, [event(S.RECEIVED, None), event(S.RECEIVED, S.RECEIVED, 80, overdue_notice=True)]
    )
    assert late[k(d.OPEN, "T01", "overdue")] == 1
    assert late[k(d.OPEN, "T01", "within")] == 0
    _, ended = fold(
        facts,
        [
            event(
                S.STOPPED,
                S.RECEIVED,
                90,
                ended_at=T0 + timedelta(hours=90),
                timeliness=Timeliness.LATE,
                elapsed_working_days=3.75,
            )
        ],
    )
    assert ended[k(d.OPEN, "T01", "overdue")] == -1
    assert ended[k(d.COMPLETED, "T01", "late")] == 1
    assert ended[k(d.RESOLUTION_SUM, "T01")] == 3750


def test_a_transfer_moves_the_open_dossier_to_the_new_competent_unit() -> None:
    _, total = fold(
        None,
        [
            event(S.RECEIVED, None),
            event(S.PROCESSING, S.PROCESSING, 2, competent="T08.X00691"),
            event(
                S.RESOLVED,
                S.PROCESSING,
                20,
                competent="T08.X00691",
                approved=True,
                ended_at=T0 + timedelta(hours=20),
                timeliness=Timeliness.EARLY,
                elapsed_working_days=0.8,
            ),
        ],
    )
    assert nonzero(total)[k(d.OPEN, "T01", "within")] == 0
    assert nonzero(total)[k(d.OPEN, "T08.X00691", "within")] == 0
    assert total[k(d.COMPLETED, "T08.X00691", "early")] == 1
    assert k(d.COMPLETED, "T01", "early") not in nonzero(total)
    _, moved = fold(
        None,
        [event(S.RECEIVED, None), event(S.PROCESSING, S.PROCESSING, 2, competent="T08.X00691")],
    )
    assert nonzero(moved)[k(d.OPEN, "T08.X00691", "within")] == 1
    assert k(d.OPEN, "T01", "within") not in nonzero(moved)


def test_an_overdue_flag_in_the_payload_counts_without_the_watchs_notice() -> None:
    # A second supplementation request: overdue at once, days before the appointment.
    _, total = fold(
        None,
        [
            event(S.RECEIVED, None),
            event(S.SUPPLEMENT_REQUESTED, S.PROCESSING, 3, supplement_requests=2, overdue=True),
        ],
    )
    assert nonzero(total)[k(d.OPEN, "T01", "overdue")] == 1
    assert k(d.OPEN, "T01", "within") not in nonzero(total)


def test_refused_at_reception_is_not_a_reception() -> None:
    _, total = fold(None, [event(S.REFUSED_AT_RECEPTION, None, ended_at=T0)])
    assert nonzero(total) == Counter({k(d.REFUSED_AT_RECEPTION, "T01.X00004"): 1})


@given(st.floats(min_value=0, max_value=100, allow_nan=False))
def test_a_resolution_time_counts_in_every_bucket_that_holds_it(days: float) -> None:
    _, total = fold(
        None,
        [
            event(S.RECEIVED, None),
            event(S.RESOLVED, S.RECEIVED, ended_at=T0, elapsed_working_days=days),
        ],
    )
    counted = {k.label for k, v in total.items() if k.name == "resolution_bucket" and v == 1}
    assert counted == {f"{le:g}" for le in RESOLUTION_BUCKETS if days <= le} | {"+Inf"}
