"""The one consumer pattern: invalid records refused, transient errors retried, poison isolated."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel

from shared.consumer import EventConsumer, Record, Refuse, dead_letter_topic, is_poison
from shared.contract import Topics
from shared.kafka import DeadLetterReason

T0 = datetime(2026, 11, 2, 3, tzinfo=UTC)


class Step(BaseModel):
    """A made-up event: what it asks the fake store to do."""

    type: str = "Step"
    n: int
    occurred_at: datetime


@dataclass(frozen=True)
class Rec:
    value: bytes | None
    offset: int
    topic: str = "steps"
    partition: int = 0
    key: bytes | None = None


def records(*values: bytes | None) -> list[Rec]:
    return [Rec(v, offset) for offset, v in enumerate(values)]


def step(n: int) -> bytes:
    return Step(n=n, occurred_at=T0 + timedelta(minutes=n)).model_dump_json().encode()


def out_of_range() -> asyncpg.exceptions.DataError:
    # PostgreSQL's own refusal (it has a severity), as asyncpg raises it.
    return asyncpg.exceptions.NumericValueOutOfRangeError.new(
        {"S": "ERROR", "C": "22003", "M": "integer out of range"}
    )


@dataclass
class FakeStore:
    """Applies steps in transactions: n < 0 is refused by the 'database', n == 0 by the rules,
    and the first `outages` transactions meet a database that is away."""

    outages: int = 0
    committed: list[int] = field(default_factory=list)
    transactions: list[list[int]] = field(default_factory=list)
    error: BaseException | None = None

    async def apply(self, events: Sequence[Step], refuse: Refuse[Step]) -> int:
        self.transactions.append([e.n for e in events])
        if self.outages:
            self.outages -= 1
            raise asyncpg.exceptions.CannotConnectNowError("starting up")
        if self.error is not None:
            raise self.error
        taken = []
        for event in events:
            if event.n < 0:
                raise out_of_range()  # the whole transaction fails
            if event.n == 0:
                await refuse(event, DeadLetterReason.REJECTED, "Step rejected: zero")
                continue
            if event.n not in self.committed:
                taken.append(event.n)
        self.committed += taken
        return len(taken)


@dataclass
class Refused:
    seen: list[tuple[int, DeadLetterReason, str]] = field(default_factory=list)

    async def __call__(self, record: Record, reason: DeadLetterReason, detail: str) -> None:
        self.seen.append((record.offset, reason, detail))


def consumer(store: FakeStore, refused: Refused, name: str) -> EventConsumer[Step]:
    def decode(raw: bytes) -> Step | None:
        event = Step.model_validate_json(raw)
        return None if event.n == 99 else event  # 99: not this consumer's business

    return EventConsumer(name, decode=decode, apply=store.apply, refusals=refused, what="steps")


def applied(name: str) -> float | None:
    return REGISTRY.get_sample_value("motcua_consumer_events_applied_total", {"consumer": name})


def latest(name: str) -> float | None:
    return REGISTRY.get_sample_value(
        "motcua_consumer_last_event_timestamp_seconds", {"consumer": name}
    )


async def test_a_good_batch_is_one_transaction_and_counts_its_events() -> None:
    store, refused = FakeStore(), Refused()
    await consumer(store, refused, "t-good")(records(step(1), step(2), step(99), step(3)))
    assert store.transactions == [[1, 2, 3]]
    assert refused.seen == []
    assert applied("t-good") == 3
    assert latest("t-good") == (T0 + timedelta(minutes=3)).timestamp()


async def test_an_invalid_record_is_refused_and_the_others_applied() -> None:
    store, refused = FakeStore(), Refused()
    await consumer(store, refused, "t-invalid")(records(step(1), b'{"n": "x"', None, step(2)))
    assert store.committed == [1, 2]
    assert [(o, r) for o, r, _ in refused.seen] == [
        (1, DeadLetterReason.INVALID),
        (2, DeadLetterReason.INVALID),
    ]
    # The reason names the rule, never the value.
    assert refused.seen[0][2].startswith("invalid event: ")
    assert '"x"' not in refused.seen[0][2]


async def test_nothing_to_apply_opens_no_transaction() -> None:
    store, refused = FakeStore(), Refused()
    await consumer(store, refused, "t-empty")(records(b"not json", step(99)))
    assert store.transactions == []
    assert applied("t-empty") in (None, 0.0)


async def test_a_poison_event_is_isolated_and_only_it_is_refused() -> None:
    store, refused = FakeStore(), Refused()
    await consumer(store, refused, "t-poison")(records(step(1), step(-5), step(2)))
    # The batch's transaction fails, then one transaction per event.
    assert store.transactions == [[1, -5, 2], [1], [-5], [2]]
    assert store.committed == [1, 2]
    assert refused.seen == [
        (1, DeadLetterReason.UNAPPLICABLE, "Step cannot be applied: NumericValueOutOfRangeError")
    ]
    assert applied("t-poison") == 2


async def test_a_refused_event_does_not_move_the_freshness() -> None:
    # Its time is no progress, even when it is the latest of the batch.
    store, refused = FakeStore(), Refused()
    late_poison = Step(n=-1, occurred_at=T0 + timedelta(days=365)).model_dump_json().encode()
    await consumer(store, refused, "t-fresh")(records(step(1), late_poison))
    assert latest("t-fresh") == (T0 + timedelta(minutes=1)).timestamp()


async def test_an_event_the_rules_refuse_is_refused_inside_its_transaction() -> None:
    store, refused = FakeStore(), Refused()
    await consumer(store, refused, "t-rejected")(records(step(4), step(0)))
    assert store.transactions == [[4, 0]]
    assert refused.seen == [(1, DeadLetterReason.REJECTED, "Step rejected: zero")]
    assert latest("t-rejected") == (T0 + timedelta(minutes=4)).timestamp()


async def test_the_database_away_is_retried_never_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_wait(delay: float) -> None:
        waits.append(delay)

    # The module's asyncio is the one asyncio: only this test's backoff must not wait.
    monkeypatch.setattr(asyncio, "sleep", no_wait)
    store, refused = FakeStore(outages=3), Refused()
    await consumer(store, refused, "t-transient")(records(step(1), step(2)))
    assert store.committed == [1, 2]
    assert refused.seen == []
    assert waits == [0.2, 0.4, 0.8]  # backoff
    assert applied("t-transient") == 2


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a bug"),
        # asyncpg's own DataError for an argument it cannot encode: our code's fault, the same
        # for every event, so never a reason to dead-letter the topic one event at a time.
        asyncpg.exceptions.DataError("invalid input for query argument $1"),
    ],
)
async def test_a_bug_stops_the_consumer_and_nothing_is_refused(error: BaseException) -> None:
    store, refused = FakeStore(error=error), Refused()
    with pytest.raises(type(error)):
        await consumer(store, refused, "t-bug")(records(step(1), step(2)))
    assert store.transactions == [[1, 2]]
    assert refused.seen == []


def test_the_error_classes() -> None:
    assert is_poison(out_of_range())
    assert is_poison(OverflowError("date value out of range"))
    assert not is_poison(asyncpg.exceptions.DataError("client side"))
    assert not is_poison(asyncpg.exceptions.CannotConnectNowError("transient"))
    assert not is_poison(ValueError("a bug"))


@dataclass
class Published:
    """A broker that only records what it was asked to publish."""

    records: list[tuple[bytes, str, bytes | None, dict[str, str]]] = field(default_factory=list)

    async def publish(
        self, value: bytes, topic: str, *, key: bytes | None, headers: dict[str, str]
    ) -> None:
        self.records.append((value, topic, key, headers))


async def test_a_dead_letter_never_carries_an_id_in_clear_in_its_key_value_or_reason() -> None:
    broker, topics = Published(), Topics("t.")
    send = dead_letter_topic(cast(Any, broker), topics, "t-dead")
    poison = Rec(b'{"reason": "CCCD 079 203 001 234"}', 7, key=b"MST 0100109106-001")
    await send(poison, DeadLetterReason.INVALID, "applicant 079203001234 unknown")
    dossier = Rec(b"{}", 8, key=b"0192f3a4-5b6c-7d8e-9f01-234567890123")
    await send(dossier, DeadLetterReason.REJECTED, "illegal transition")

    (value, topic, key, headers), (_, _, kept_key, _) = broker.records
    assert topic == "t.motcua.dead-letter.v1"
    assert key == b"MST 010*******-***"
    assert value == b'{"reason": "CCCD 079 *** *** ***"}'
    assert headers["x-dead-letter-reason"] == "applicant 079********* unknown"
    assert headers["x-original-offset"] == "7"
    # A dossier id stays what it was: the dead letter still names the dossier.
    assert kept_key == dossier.key
