"""SIGTERM under load, on the real broker and database: each service in turn exits 0 within
MOTCUA_SHUTDOWN_TIMEOUT_S, leaving behind nothing half done (what it committed is published and
its consumer offsets match what it applied); restarted, the totals are exact."""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from collections import Counter

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.contract import Topics
from tests.conftest import Isolated, Services
from tests.harness import ServiceProcess, counter_token, eventually, scrape
from tools.samples import sample_submission

pytestmark = pytest.mark.integration

SHUTDOWN_TIMEOUT_S = 20.0  # the default of MOTCUA_SHUTDOWN_TIMEOUT_S


class Counters:
    """Counters at work: submissions in a steady stream, each retried with its Idempotency-Key
    until intake acknowledges it (through intake's own restart)."""

    def __init__(self, url: str, workers: int = 4) -> None:
        self.url = url
        self.workers = workers
        self.rng = random.Random(17)
        self.acknowledged: dict[str, tuple[str, str]] = {}  # key -> (unit, channel)
        self.stopping = False
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        self.stopping = True
        await asyncio.gather(*self.tasks)

    async def _work(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            while not self.stopping:
                unit, body = sample_submission(self.rng)
                key = str(uuid.uuid4())
                headers = {**counter_token(unit), "Idempotency-Key": key}
                while True:
                    try:
                        response = await client.post("/v1/dossiers", json=body, headers=headers)
                    except httpx.TransportError:  # intake restarting
                        if self.stopping:  # not coming back: the test failed already
                            return
                        await asyncio.sleep(0.2)
                        continue
                    assert response.status_code in (200, 201), response.text
                    self.acknowledged[key] = (unit, str(body["channel"]))
                    break
                await asyncio.sleep(0.02)


async def exit_code(proc: ServiceProcess, signalled_at: float) -> tuple[int, float]:
    """The exit code and how long after the signal it came."""
    assert proc.proc is not None
    while proc.proc.poll() is None:
        if time.monotonic() - signalled_at > SHUTDOWN_TIMEOUT_S + 10:
            raise AssertionError(f"{proc.name} still running: {proc.logs()[-3000:]}")
        await asyncio.sleep(0.05)
    return proc.proc.returncode, time.monotonic() - signalled_at


async def committed(bootstrap: str, group: str, topic: str) -> int:
    """Records of `topic` the group committed, over all partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(o.offset for tp, o in offsets.items() if tp.topic == topic and o.offset > 0)


async def test_sigterm_under_load_exits_0_in_time_and_totals_stay_exact(
    isolated: Isolated, services: Services
) -> None:
    bootstrap = isolated.platform.kafka.bootstrap
    topics = Topics(isolated.topic_prefix)
    intake = services.start("intake")
    # Small batches: a SIGTERM lands with batches in flight.
    processing = services.start("processing", MOTCUA_MAX_BATCH="20")
    metrics = services.start("metrics", MOTCUA_MAX_BATCH="20")
    counters = Counters(intake.url)
    conn = await asyncpg.connect(isolated.database_url)

    async def fetch(query: str) -> int:
        return int(await conn.fetchval(query))

    async def left_clean(name: str) -> None:
        """What a clean stop leaves, checked while the service is down (nobody else could
        tidy up after it)."""
        if name == "intake":
            # Everything it acknowledged was published before it exited.
            assert await fetch("SELECT count(*) FROM intake.outbox") == 0
        elif name == "processing":
            # It committed the offsets of exactly the events it applied (none to apply again,
            # none skipped), and published the status events of what it committed.
            assert await committed(
                bootstrap, "motcua-processing", topics.dossier_events
            ) == await fetch("SELECT count(*) FROM processing.processed_events")
            assert await fetch("SELECT count(*) FROM processing.outbox") == 0
        else:
            assert await committed(
                bootstrap, "motcua-metrics", topics.status_events
            ) == await fetch("SELECT count(*) FROM metrics.processed_events")

    exits: dict[str, float] = {}
    counters.start()
    try:
        for proc in (intake, processing, metrics):
            before = len(counters.acknowledged)

            async def flowing(before: int = before) -> bool:
                return len(counters.acknowledged) >= before + 100

            await eventually(flowing, what="submissions flowing")
            signalled_at = time.monotonic()
            proc.signal(signal.SIGTERM)
            code, exits[proc.name] = await exit_code(proc, signalled_at)
            assert code == 0, f"{proc.name} exited {code}: {proc.logs()[-3000:]}"
            await left_clean(proc.name)
            proc.start()
    finally:
        await counters.stop()

    total = len(counters.acknowledged)
    expected = Counter(
        f'motcua_dossiers_received_total{{channel="{channel}",unit="{unit}"}}'
        for unit, channel in counters.acknowledged.values()
    )
    try:

        async def quiescent() -> bool:
            samples = await scrape(metrics.url)
            return (
                sum(v for k, v in samples.items() if k.startswith("motcua_dossiers_received"))
                >= total
                and await fetch("SELECT count(*) FROM processing.dossiers") >= total
            )

        await eventually(quiescent, within=90, what=f"{total} dossiers counted")
        await asyncio.sleep(2)  # anything counted twice would show by now
        # Exactly once everywhere: intake, processing's state and timeline, metrics' counters.
        assert await fetch("SELECT count(*) FROM intake.dossiers") == total
        assert await fetch("SELECT count(*) FROM processing.dossiers") == total
        assert await fetch("SELECT count(*) FROM processing.timeline") == total
        assert (
            await fetch(
                "SELECT coalesce(sum(value), 0) FROM metrics.counters WHERE name = 'received'"
            )
            == total
        )
        samples = await scrape(metrics.url)
        received = {
            k: v for k, v in samples.items() if k.startswith("motcua_dossiers_received_total{")
        }
        assert received == expected
    finally:
        await conn.close()
    print("seconds from SIGTERM to exit:", {k: round(v, 2) for k, v in exits.items()})
    # Each within its shutdown time, with room to spare under the pod's grace period.
    for name, seconds in exits.items():
        assert seconds < SHUTDOWN_TIMEOUT_S, f"{name} took {seconds:.1f} s"
