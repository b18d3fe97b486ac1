"""Run motcua services as real processes for the tests, and wait for what a user would see."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import motcua_local
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from shared.auth import mint
from shared.kafka import partitions_of
from shared.settings import DEV_TOKEN_KEY
from tests.pii_sweep import LEDGER

REPO = Path(__file__).resolve().parents[1]


class _Started:
    """Service processes started and not stopped yet. The session stops those a test left behind
    (one that failed between starting them and its own cleanup) before their broker and database;
    a guard stops them if pytest dies without its teardown (SIGKILL)."""

    def __init__(self) -> None:
        self.running: dict[ServiceProcess, int] = {}
        self.guard: motcua_local.Guard | None = None

    def add(self, proc: ServiceProcess, pid: int) -> None:
        if self.guard is None:
            self.guard = motcua_local.Guard()
        # Those that ended on their own: their pids may soon be other processes'.
        for ended in [p for p in self.running if not p.alive()]:
            self.discard(ended)
        self.running[proc] = pid
        self.guard.watch("pid", str(pid))

    def discard(self, proc: ServiceProcess) -> None:
        pid = self.running.pop(proc, None)
        if pid is not None and self.guard is not None:
            self.guard.forget("pid", str(pid))

    def stop_all(self) -> None:
        for proc in list(self.running):
            proc.stop()
        if self.guard is not None:
            self.guard.release()
            self.guard = None


_STARTED = _Started()


def stop_leftover_services() -> None:
    _STARTED.stop_all()


class ServiceProcess:
    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = motcua_local.free_port()
        self.env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tools.cli",
                    "serve",
                    self.name,
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _STARTED.add(self, self.proc.pid)
        LEDGER.started(f"log of {self.name}", f"127.0.0.1:{self.port}", self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as when a node dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        _STARTED.discard(self)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._sweep_metrics()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        _STARTED.discard(self)

    def logs(self) -> str:
        return self.log_path.read_text()

    def _sweep_metrics(self) -> None:
        # The last page holds every label set the process made: what Prometheus scraped.
        try:
            page = httpx.get(f"{self.url}/metrics", timeout=5)
        except httpx.HTTPError:
            return
        LEDGER.said("/metrics pages", f"/metrics of {self.name}", page.text)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def counter_token(unit: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {mint(DEV_TOKEN_KEY, unit=unit, role='counter', subject='t')}"
    }


def officer_token(unit: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {mint(DEV_TOKEN_KEY, unit=unit, role='officer', subject='o')}"
    }


async def scrape(url: str) -> dict[str, float]:
    """The samples of a /metrics page, keyed by `name{labels}` exactly as exposed."""
    samples = {}
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{url}/metrics")).text
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 60.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


async def readable(client: httpx.AsyncClient, url: str, headers: dict[str, str], what: str) -> None:
    """Wait until GET `url` answers 200 with these headers (a dossier reaching processing over
    Kafka: 404 until then)."""

    async def answered() -> bool:
        return (await client.get(url, headers=headers)).status_code == 200

    await eventually(answered, what=what)


async def scrape_when(url: str, sample: str, value: float, what: str) -> dict[str, float]:
    """The samples of a /metrics page, scraped once `sample` has shown `value` (as eventually)."""

    async def shown() -> bool:
        return (await scrape(url)).get(sample) == value

    await eventually(shown, what=what)
    return await scrape(url)


async def group_offsets(
    bootstrap: str, group: str, topic: str
) -> tuple[dict[TopicPartition, OffsetAndMetadata], dict[TopicPartition, int]]:
    """A consumer group's committed offsets and the end offsets of every partition of the topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        partitions = await partitions_of(bootstrap, topic)
        committed = await admin.list_consumer_group_offsets(group)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return committed, ends
    finally:
        await consumer.stop()
        await admin.close()


async def group_caught_up(bootstrap: str, group: str, topic: str) -> bool:
    """Whether a consumer group has committed the end of every partition of the topic."""
    committed, ends = await group_offsets(bootstrap, group, topic)
    return bool(ends) and all(
        end == 0 or (tp in committed and committed[tp].offset >= end) for tp, end in ends.items()
    )


async def dead_letters(
    bootstrap: str, topic: str, expected: int, *, settle_ms: int = 1000, within: float = 15.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a dead-letter topic: read until `expected` have arrived (or `within`
    seconds passed), then `settle_ms` longer, so that one too many shows too."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    letters: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + within
        while len(letters) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            letters += [r for records in batches.values() for r in records]
        batches = await consumer.getmany(timeout_ms=settle_ms)
        letters += [r for records in batches.values() for r in records]
    finally:
        await consumer.stop()
    return letters
