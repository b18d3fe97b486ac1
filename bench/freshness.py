"""End-to-end freshness at a steady rate: from an intake 2xx to the change visible at /metrics.

The three services run as processes on one database and one topic prefix. Submissions are sent
open-loop (the i-th at start + i/rate, whatever the responses do) and `/metrics` of the metrics
service is polled every ~50 ms for the sum of `motcua_dossiers_received_total`.

/metrics shows a count, not which dossiers, so the k-th acknowledgement (by arrival time) is
matched with the first poll, at or after it, whose total is >= k. Freshness = that poll's time
minus the ack's time. It is exact when dossiers become visible in the order they were acknowledged,
and it is what a reader of the counter sees: how far the visible total trails the acknowledged
total. Partitions and batches may reorder dossiers, and this sorted matching is then the least
spread-out pairing of the two curves: the mean is the same, but a single dossier held back while
others overtake it hardly shows, so the tail is a lower bound of the per-dossier tail (one check
against per-dossier times from Kafka and the databases: ~15 % low at p99). The poll adds up to one
poll interval (`poll_interval_ms`, measured) plus the scrape itself: the figures are late by ~half
an interval on average, never early. The poll is not free either: every scrape re-reads and renders
every series in the metrics process's event loop (~60 ms after 6,000 dossiers, most of it the index
gauges), which then applies events later; Prometheus scraping every 15 s would not slow it down.

Baseline, same run: one bare Kafka hop as the path's producers and consumers make it (the
services' producer settings, acks=all, idempotent), small JSON records at the same rate and count,
produce-send to consume. The path has two such hops (dossier events, status events), so
`ratio` = service p99 / (2 x floor hop p99): how many times the floor the services take, with
PostgreSQL commits, outbox relays, batching and the poll all counted as overhead. Two p99s added
overstate the p99 of two hops in a row, so the ratio flatters the services slightly.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import math
import random
import re
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import Bench, wait_until
from shared.kafka import DEFAULT_PARTITIONS, producer_settings
from tests.harness import ServiceProcess, counter_token
from tools.samples import sample_submission

POLL_S = 0.05
LATE_S = 0.05  # a request written more than one poll interval behind its schedule is late
DRAIN_S = 60.0
MAX_CONNECTIONS = 500
IDLE_S = 2.0  # below uvicorn's 5 s keep-alive timeout: never reuse a connection it may close
RECEIVED = b"motcua_dossiers_received_total"
_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class FreshnessResult:
    dossiers: int
    rate_achieved: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    late_sends: int
    poll_interval_ms: float
    floor_hop_p50_ms: float
    floor_hop_p99_ms: float

    @property
    def ratio(self) -> float:
        return self.p99_ms / (2 * self.floor_hop_p99_ms)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()] + [f"Content-Length: {len(body)}"]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


class Http1:
    """Keep-alive HTTP/1.1 to one local port, from prebuilt request bytes.

    The load generator shares the machine's two cores with what it measures: httpx cost ~2.7 ms
    of CPU per request here (0.3 ms this way), half a core at 200/s, and fell behind schedule.
    One connection per request in flight, opened whenever none is idle, up to MAX_CONNECTIONS.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.idle:
            reader, writer, used = self.idle.pop()
            if time.monotonic() - used < IDLE_S:
                return reader, writer
            writer.close()
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, raw: bytes, scheduled: float | None = None) -> tuple[int, bytes, bool]:
        """(status, body, whether the request was written later than LATE_S after `scheduled`)."""
        async with self.slots:
            reader, writer = await self._connection()
            late = scheduled is not None and time.monotonic() - scheduled > LATE_S
            try:
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                length = _LENGTH.search(head)
                body = await reader.readexactly(int(length.group(1)) if length else 0)
            except BaseException:
                writer.close()
                raise
            self.idle.append((reader, writer, time.monotonic()))
            return int(head[9:12]), body, late

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


def received_total(page: bytes) -> float:
    # Only the lines we need: the page also carries thousands of index and histogram samples.
    return sum(
        float(line.rpartition(b" ")[2])
        for line in page.splitlines()
        if line.startswith(RECEIVED) and line[len(RECEIVED) : len(RECEIVED) + 1] in (b"{", b" ")
    )


def submissions(count: int) -> list[bytes]:
    # A pool of samples (units of today's map) is cycled, not one built per request, to keep the
    # client's work out of the measurement; a body sent twice is still a new dossier (no
    # Idempotency-Key).
    rng, pool = random.Random(6), []
    for _ in range(min(count, 1000)):
        unit, body = sample_submission(rng)
        headers = {**counter_token(unit), "Content-Type": "application/json"}
        pool.append(http_request("POST", "/v1/dossiers", headers, json.dumps(body).encode()))
    return [pool[i % len(pool)] for i in range(count)]


class Poller:
    """One task scraping /metrics on a fixed 50 ms tick; keeps (response time, total)."""

    def __init__(self, port: int) -> None:
        self.http = Http1(port)
        self.scrape = http_request("GET", "/metrics", {})
        self.times: list[float] = []
        self.totals: list[float] = []

    async def total(self) -> float:
        status, page, _ = await self.http.request(self.scrape)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return received_total(page)

    async def run(self) -> None:
        tick = time.monotonic()
        while True:
            total = await self.total()
            # The response's arrival: the total was read at or before it, so never early.
            self.times.append(time.monotonic())
            self.totals.append(total)
            # A scrape slower than the tick starts the next one at once (no catching up).
            tick = max(tick + POLL_S, time.monotonic())
            await asyncio.sleep(tick - time.monotonic())

    async def until(self, total: float, within: float) -> None:
        """Until a poll made after this call shows `total` (so one follows every ack)."""
        since = time.monotonic()
        while not self.times or self.times[-1] < since or self.totals[-1] < total:
            if time.monotonic() > since + within:
                seen = self.totals[-1] if self.totals else None
                raise TimeoutError(f"/metrics shows {seen} received after {within}s, {total} sent")
            await asyncio.sleep(POLL_S)


@dataclass(frozen=True)
class Sent:
    acks: list[float]  # monotonic arrival times of the 2xx, sorted
    errors: int
    late: int
    start: float


async def drive(http: Http1, rate: float, count: int) -> Sent:
    """Open loop: the i-th request is due at start + i/rate, whatever the earlier ones do."""
    pending = submissions(count)
    acks: list[float] = []
    errors = late = 0

    async def send(raw: bytes, scheduled: float) -> None:
        nonlocal errors, late
        try:
            status, _, was_late = await http.request(raw, scheduled)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            return
        late += was_late
        if 200 <= status < 300:
            acks.append(time.monotonic())
        else:
            errors += 1

    start = time.monotonic()
    async with asyncio.TaskGroup() as tasks:
        for i, raw in enumerate(pending):
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
            tasks.create_task(send(raw, scheduled))
    return Sent(sorted(acks), errors, late, start)


def freshness(
    acks: list[float], times: list[float], totals: list[float], base: float
) -> list[float]:
    """Seconds from the k-th ack to the first poll at or after it showing >= k (module doc)."""
    if any(b < a for a, b in itertools.pairwise(totals)):
        raise RuntimeError("the received total went down between polls: matching is invalid")
    out = []
    for k, ack in enumerate(acks, start=1):
        after = bisect.bisect_left(times, ack)
        # Totals are monotone (exact counters in one database), so the first poll >= k bisects.
        shown = bisect.bisect_left(totals, base + k)
        out.append(times[max(after, shown)] - ack)
    return sorted(out)


async def services_run(bench: Bench, rate: float, seconds: float) -> tuple[Sent, Poller, float]:
    """(what was sent, the polls, the total visible before the clock started)."""
    env = bench.env(bench.database(), f"fresh{uuid.uuid4().hex[:6]}.")
    # MOTCUA_INDEX_REFRESH_S stays at its default: it refreshes the index gauges only, while the
    # counters are re-read from PostgreSQL at every scrape (services/metrics/app.py).
    procs = [ServiceProcess(n, env, bench.workdir) for n in ("intake", "processing", "metrics")]
    try:
        for proc in procs:
            proc.start()
        intake, poller = Http1(procs[0].port), Poller(procs[2].port)
        try:
            # Warm-up before the clock: consumer groups assigned, connections and plans made.
            warm = await drive(intake, 20, 10)

            async def warmed() -> bool:
                return await poller.total() >= len(warm.acks) > 0

            await wait_until(warmed, DRAIN_S, "the warm-up dossiers at /metrics")
            base = await poller.total()
            polling = asyncio.create_task(poller.run())
            try:
                sent = await drive(intake, rate, int(rate * seconds))
                await poller.until(base + len(sent.acks), DRAIN_S)
            finally:
                polling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await polling
        finally:
            intake.close()
            poller.http.close()
    finally:
        for proc in reversed(procs):
            proc.stop()
    return sent, poller, base


async def floor_hop(bench: Bench, rate: float, count: int) -> list[float]:
    """Seconds from produce-send to consume for `count` records at `rate`, one bare hop."""
    topic = f"floor.freshness.{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bench.kafka.bootstrap)
    await admin.start()
    try:
        # As many partitions as the services' topics: the consumer fetches from as many.
        await admin.create_topics([NewTopic(topic, DEFAULT_PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**producer_settings(bench.kafka.bootstrap, "freshness-floor"))
    consumer = AIOKafkaConsumer(bootstrap_servers=bench.kafka.bootstrap, group_id=None)
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(DEFAULT_PARTITIONS)])
        await consumer.seek_to_beginning()
        latencies: list[float] = []

        async def consume() -> None:
            while len(latencies) < count:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    arrived = time.monotonic()
                    latencies.extend(arrived - json.loads(r.value)["sent"] for r in records)

        consuming = asyncio.create_task(consume())
        start = time.monotonic()
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            value = json.dumps({"i": i, "sent": time.monotonic(), "pad": "x" * 200}).encode()
            await producer.send(topic, value, key=uuid.uuid4().bytes)
        await asyncio.wait_for(consuming, DRAIN_S)
        return sorted(latencies)
    finally:
        await consumer.stop()
        await producer.stop()


async def run(bench: Bench, rate: float = 200.0, seconds: float = 30.0) -> FreshnessResult:
    sent, poller, base = await services_run(bench, rate, seconds)
    if not sent.acks:
        raise RuntimeError(f"no submission acknowledged ({sent.errors} errors)")
    fresh = freshness(sent.acks, poller.times, poller.totals, base)
    # The floor after the services stopped: the same machine, without their load.
    floor = await floor_hop(bench, rate, len(sent.acks))
    polls = poller.times
    return FreshnessResult(
        dossiers=len(sent.acks),
        rate_achieved=len(sent.acks) / (sent.acks[-1] - sent.start),
        p50_ms=percentile(fresh, 0.5) * 1000,
        p99_ms=percentile(fresh, 0.99) * 1000,
        max_ms=fresh[-1] * 1000,
        errors=sent.errors,
        late_sends=sent.late,
        poll_interval_ms=(polls[-1] - polls[0]) / max(1, len(polls) - 1) * 1000,
        floor_hop_p50_ms=percentile(floor, 0.5) * 1000,
        floor_hop_p99_ms=percentile(floor, 0.99) * 1000,
    )


if __name__ == "__main__":
    from bench.common import run_alone

    run_alone(run)
