"""Counters submitting at a steady rate through an outage, and what they and the tables saw."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from tests.harness import counter_token
from tools.samples import sample_submission

# Statuses that mean "received": 201, or 200 for a retry of a request already stored.
RECEIVED = frozenset({200, 201})


@dataclass(frozen=True)
class Submission:
    """One dossier a counter means to submit; a retry sends the same body and key."""

    unit: str
    body: dict[str, Any]
    key: str


@dataclass(frozen=True)
class Answer:
    submission: Submission
    sent: float  # time.monotonic() when sent
    answered: float  # when the answer (or the error) came
    status: int | None  # None: no answer (connection refused, timed out)
    content_type: str
    json: Any
    error: str = ""

    @property
    def received(self) -> bool:
        return self.status in RECEIVED

    def receipt(self) -> tuple[str, str]:
        """(dossier id, dossier code) of a 2xx answer."""
        return str(self.json["dossier_id"]), str(self.json["dossier_code"])

    def describe(self) -> str:
        return f"{self.status} {self.content_type} {self.error or self.json}"


@dataclass(frozen=True)
class Probe:
    at: float
    status: int | None
    json: Any


async def submit(client: httpx.AsyncClient, submission: Submission) -> Answer:
    headers = {**counter_token(submission.unit), "Idempotency-Key": submission.key}
    sent = time.monotonic()
    try:
        response = await client.post("/v1/dossiers", json=submission.body, headers=headers)
    except httpx.HTTPError as exc:
        return Answer(submission, sent, time.monotonic(), None, "", None, repr(exc))
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:300]
    return Answer(
        submission,
        sent,
        time.monotonic(),
        response.status_code,
        response.headers.get("content-type", ""),
        body,
    )


@dataclass
class Load:
    """`workers` counters, each submitting one dossier every `pause` seconds until stopped."""

    client: httpx.AsyncClient
    workers: int = 4
    pause: float = 0.4
    seed: int = 14
    answers: list[Answer] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _counter(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        while not self._stop.is_set():
            unit, body = sample_submission(rng)
            self.answers.append(
                await submit(self.client, Submission(unit, body, str(uuid.uuid4())))
            )
            await asyncio.sleep(self.pause)

    async def _readiness(self) -> None:
        # What an orchestrator's readiness probe sees, twice a second.
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                response = await self.client.get("/readyz")
                self.probes.append(Probe(at, response.status_code, response.json()))
            except (httpx.HTTPError, ValueError) as exc:
                self.probes.append(Probe(at, None, repr(exc)))
            await asyncio.sleep(0.5)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Load]:
        tasks = [asyncio.create_task(self._counter(i)) for i in range(self.workers)]
        tasks.append(asyncio.create_task(self._readiness()))
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)

    def between(self, start: float, end: float) -> Iterator[Answer]:
        """Answers to requests sent at or after `start` and answered before `end`."""
        return (a for a in self.answers if a.sent >= start and a.answered < end)

    def received_count(self) -> int:
        return sum(a.received for a in self.answers)


async def settle(client: httpx.AsyncClient, answers: list[Answer]) -> list[Answer]:
    """Each submission's final answer: the first if it was received, else its retry with the same
    Idempotency-Key (what a counter does after an error), which must be received now."""
    final = []
    for answer in answers:
        if answer.received:
            final.append(answer)
            continue
        retry = await submit(client, answer.submission)
        assert retry.received, (
            f"retry of a submission answered {answer.describe()} was answered {retry.describe()}"
        )
        final.append(retry)
    return final


async def rows(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def stored_codes(url: str, schema: str) -> dict[str, str]:
    """Dossier id → code, as one service's table holds them."""
    return {
        str(r["id"]): str(r["code"])
        for r in await rows(url, f"SELECT id, code FROM {schema}.dossiers")
    }


async def event_counts(url: str) -> tuple[int, int, int]:
    """processing's consumed event ids, timeline rows and distinct event ids in the timeline."""
    (row,) = await rows(
        url,
        "SELECT (SELECT count(*) FROM processing.processed_events) AS processed, "
        "(SELECT count(*) FROM processing.timeline) AS timeline, "
        "(SELECT count(DISTINCT event_id) FROM processing.timeline) AS distinct_events",
    )
    return int(row["processed"]), int(row["timeline"]), int(row["distinct_events"])


async def outbox_size(url: str) -> int:
    (row,) = await rows(url, "SELECT count(*) AS n FROM intake.outbox")
    return int(row["n"])
