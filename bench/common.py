"""What every benchmark needs: a throwaway platform, service processes, timing, the machine."""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import asyncpg
import httpx
import motcua_local
from faststream.kafka import KafkaBroker


@dataclass(frozen=True)
class Bench:
    kafka: motcua_local.Kafka
    postgres: motcua_local.Postgres
    workdir: Path

    def database(self) -> str:
        return self.postgres.create_database(f"b_{uuid.uuid4().hex[:10]}")

    async def settle(self) -> None:
        """Let the next benchmark start on a quiet platform: the previous one's dirty pages are
        flushed now (CHECKPOINT) instead of during the next measurement."""
        conn = await asyncpg.connect(self.postgres.dsn)
        try:
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
        await asyncio.sleep(3)

    def env(self, database_url: str, prefix: str, **extra: str) -> dict[str, str]:
        return {
            "MOTCUA_ENVIRONMENT": "test",
            "MOTCUA_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "MOTCUA_KAFKA_TOPIC_PREFIX": prefix,
            "MOTCUA_DATABASE_URL": database_url,
            "MOTCUA_LOG_LEVEL": "WARNING",
            **extra,
        }


@asynccontextmanager
async def bench_platform() -> AsyncIterator[Bench]:
    base = Path(tempfile.mkdtemp(prefix="motcua-bench-"))
    try:
        with motcua_local.throwaway(base) as (kafka, postgres):
            yield Bench(kafka, postgres, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def start_http(
    name: str, command: Callable[[int], list[str]], env: dict[str, str], workdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """A Python module serving HTTP as a process (`command(port)`: its arguments after
    `python -m`), once its /readyz answers (as ServiceProcess.start); its log in `workdir`."""
    from tests.harness import REPO

    port = motcua_local.free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / f"{name.replace(' ', '-')}-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", *command(port)],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{name} not ready: {log_path.read_text()[-3000:]}")


async def wait_until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Seconds until `check` holds (polled every 0.1 s)."""
    started = time.perf_counter()
    while not await check():
        if time.perf_counter() - started > within:
            raise TimeoutError(f"{what} not reached within {within}s")
        await asyncio.sleep(0.1)
    return time.perf_counter() - started


async def consume_until_stopped(broker: KafkaBroker) -> None:
    """Run a naive baseline's subscribers until the benchmark terminates the process."""
    await broker.start()
    try:
        await asyncio.Event().wait()
    finally:
        await broker.stop()


class _Rated(Protocol):
    @property
    def ratio(self) -> float: ...


def run_alone(run: Callable[[Bench], Awaitable[_Rated]]) -> None:
    """One benchmark on a platform of its own (`python -m bench.<name>`), printed with its ratio."""

    async def main() -> None:
        async with bench_platform() as bench:
            result = await run(bench)
        print(result, f"ratio {result.ratio:.1f}x")

    asyncio.run(main())


def machine() -> str:
    cpus = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.processor() or platform.machine()}, {cpus} cores, {mem:.0f} GiB, "
        f"Python {platform.python_version()}"
    )


def children_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def real_units(count: int, at: datetime) -> list[str]:
    """`count` unit codes in force at `at`, spread across the provinces (the simulator's choice):
    benchmarks send what a real deployment receives."""
    from shared.reference import REFERENCE_DIR, load_reference
    from tools.simulate import Network, choose_units

    network = Network.on(load_reference(REFERENCE_DIR), at)
    return [unit.code for unit in choose_units(network, count, seed=1)]
