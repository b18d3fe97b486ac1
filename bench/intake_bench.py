"""Durable submissions/s and latency of one intake process at 64 concurrent clients, against the
floor (asyncpg COPY of the same rows plus a plain aiokafka produce of the same events) and against
the naive implementation (bench/naive_intake.py: one transaction and one awaited Kafka send per
submission) under the same wrk load."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from bench.common import Bench, start_http
from tests.harness import ServiceProcess, counter_token
from tools.samples import sample_submission


@dataclass(frozen=True)
class IntakeResult:
    submissions: int
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    floor_per_second: float
    naive_submissions: int
    naive_per_second: float
    naive_p50_ms: float
    naive_p99_ms: float
    naive_errors: int

    @property
    def share_of_floor(self) -> float:
        return self.per_second / self.floor_per_second

    @property
    def ratio(self) -> float:
        """Service ÷ naive."""
        return self.per_second / self.naive_per_second


_WRK_SCRIPT = """
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  created, refused = 0, 0
  reqs = {}
  for k = 1, #bodies do
    reqs[k] = wrk.format("POST", "/v1/dossiers",
      {["Content-Type"] = "application/json", ["Authorization"] = auths[k]}, bodies[k])
  end
  -- Threads start at different bodies: the same body twice in a row is still a new dossier.
  i = id * 997
end
function request()
  i = i + 1
  return reqs[(i % #reqs) + 1]
end
function response(status, headers, body)
  if status == 201 then created = created + 1 else refused = refused + 1 end
end
function done(summary, latency, requests)
  local c, r = 0, 0
  for _, t in ipairs(threads) do c = c + t:get("created"); r = r + t:get("refused") end
  local e = summary.errors
  io.write(string.format(
    'WRK {"created": %d, "refused": %d, "socket_errors": %d, "duration_us": %d, '
    .. '"p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    c, r, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _wrk_script(path: Path, count: int = 2000) -> None:
    """A wrk Lua script cycling through `count` valid submissions of many units."""
    rng = random.Random(5)
    bodies, auths = [], []
    for _ in range(count):
        unit, body = sample_submission(rng)
        bodies.append(json.dumps(body, ensure_ascii=False))
        auths.append(counter_token(unit)["Authorization"])
    # Long brackets: JSON never contains "]==]", so no escaping is needed.
    lua_bodies = ",\n".join(f"[==[{b}]==]" for b in bodies)
    lua_auths = ",\n".join(f'"{a}"' for a in auths)
    path.write_text(
        f"bodies = {{\n{lua_bodies}\n}}\nauths = {{\n{lua_auths}\n}}\n{_WRK_SCRIPT}",
        encoding="utf-8",
    )


async def _load(url: str, clients: int, seconds: float, workdir: Path) -> dict[str, int]:
    """wrk (C, its own core) drives the load: a Python client would be the bottleneck."""
    script = workdir / "intake.lua"
    _wrk_script(script)
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        f"--connections={clients}",
        "--threads=2",
        f"--duration={seconds:.0f}s",
        "--timeout=30s",
        f"--script={script}",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await proc.communicate())[0].decode()
    line = next((x for x in out.splitlines() if x.startswith("WRK ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {out[-2000:]}")
    result: dict[str, int] = json.loads(line[4:])
    return result


async def _stored(database_url: str, table: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def _checked(
    database_url: str, table: str, warm: dict[str, int], load: dict[str, int], clients: int
) -> None:
    """Every receipt wrk counted must be a stored dossier. wrk stops at the deadline without
    waiting for the requests in flight (at most one per connection), which are stored too."""
    created, stored = load["created"], await _stored(database_url, table) - warm["created"]
    if not created <= stored <= created + 2 * clients:
        raise RuntimeError(f"wrk saw {created} receipts but {stored} dossiers are stored")


async def _warm_and_load(
    url: str, clients: int, seconds: float, workdir: Path
) -> tuple[dict[str, int], dict[str, int]]:
    # Warm-up, not measured: the broker's JIT, the database's caches and the server's prepared
    # statements are in the state a server that has been running would have.
    warm = await _load(url, clients, 5, workdir)
    return warm, await _load(url, clients, seconds, workdir)


async def _naive(bench: Bench, seconds: float, clients: int) -> dict[str, int]:
    """The same wrk load, warm-up included, on the naive implementation."""
    from bench.naive_intake import TABLE

    database = bench.database()
    proc, url = start_http(
        "naive intake",
        lambda port: ["bench.naive_intake", "--port", str(port)],
        bench.env(database, "naive-intake."),
        bench.workdir,
    )
    try:
        warm, load = await _warm_and_load(url, clients, seconds, bench.workdir)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 20)
    await _checked(database, TABLE, warm, load, clients)
    return load


async def _floor(bench: Bench, rows: int) -> float:
    """Rows/s of the raw parts: COPY the dossier rows, produce the events (acks=all)."""
    conn = await asyncpg.connect(bench.database())
    producer = AIOKafkaProducer(
        bootstrap_servers=bench.kafka.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        await conn.execute("CREATE TABLE copy_floor (id bigint, code text, body jsonb)")
        payload = '{"procedure_code": "1.001193", "channel": "online"}'
        records = [(i, f"T01.X00004-261127-{i:04d}", payload) for i in range(rows)]
        started = time.perf_counter()
        await conn.copy_records_to_table("copy_floor", records=records)
        futures = [
            await producer.send("floor.events", payload.encode(), key=str(i).encode())
            for i in range(rows)
        ]
        await asyncio.gather(*futures)
        return rows / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await conn.close()


async def run(bench: Bench, seconds: float = 20.0, clients: int = 64) -> IntakeResult:
    database = bench.database()
    service = ServiceProcess("intake", bench.env(database, "intake."), bench.workdir)
    service.start()
    try:
        warm, load = await _warm_and_load(service.url, clients, seconds, bench.workdir)
    finally:
        service.stop()
    await _checked(database, "intake.dossiers", warm, load, clients)
    created = load["created"]
    floor = await _floor(bench, created)
    # The naive server starts on a quiet platform, as the service did.
    await bench.settle()
    naive = await _naive(bench, seconds, clients)
    return IntakeResult(
        submissions=created,
        per_second=created / (load["duration_us"] / 1e6),
        p50_ms=load["p50_us"] / 1000,
        p99_ms=load["p99_us"] / 1000,
        errors=load["refused"] + load["socket_errors"],
        floor_per_second=floor,
        naive_submissions=naive["created"],
        naive_per_second=naive["created"] / (naive["duration_us"] / 1e6),
        naive_p50_ms=naive["p50_us"] / 1000,
        naive_p99_ms=naive["p99_us"] / 1000,
        naive_errors=naive["refused"] + naive["socket_errors"],
    )


if __name__ == "__main__":
    from bench.common import run_alone

    run_alone(run)
