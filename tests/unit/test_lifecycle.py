"""The shutdown deadline: readiness fails at once, and a step that hangs is cut short so the
steps after it still run and the whole stop stays within its time."""

from __future__ import annotations

import asyncio
import time

from shared.lifecycle import Shutdown


async def test_readiness_fails_from_the_signal_on() -> None:
    shutdown = Shutdown(5.0)
    assert await shutdown.accepting()
    shutdown.begin()  # what tools/cli.py does on SIGTERM
    assert not await shutdown.accepting()


async def test_a_hanging_step_is_cut_short_and_the_next_ones_still_run() -> None:
    shutdown = Shutdown(1.0)
    done: list[str] = []

    async def hang() -> None:
        await asyncio.Event().wait()

    async def close() -> None:
        done.append("closed")

    started = time.monotonic()
    assert not await shutdown.step("consumers", hang())
    assert await shutdown.step("database pool", close())
    assert done == ["closed"]
    assert 0.9 < time.monotonic() - started < 1.5


async def test_a_failing_step_does_not_stop_the_shutdown() -> None:
    shutdown = Shutdown(1.0)

    async def fail() -> None:
        raise RuntimeError("broker gone")

    assert not await shutdown.step("kafka", fail())
    assert await shutdown.step("database pool", asyncio.sleep(0))


async def test_a_limited_step_leaves_the_rest_of_the_time() -> None:
    shutdown = Shutdown(10.0)
    started = time.monotonic()
    assert not await shutdown.step("outbox published", asyncio.Event().wait(), limit=0.6)
    assert time.monotonic() - started < 1.0
    assert shutdown.remaining() > 8.5
