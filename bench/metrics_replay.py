"""Replay a topic of status events through one metrics process (`motcua metrics rebuild`), against
the floor (bench/floor.py: a plain aiokafka loop that consumes and decodes the same messages and
COPYs one row per event into PostgreSQL), against the naive per-message handler, and against the
same aggregation written with Quix Streams (bench/quix_replay.py, in its own virtualenv
.venv-quix that `make bench` creates), whose counters must equal the service's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from bench.common import Bench, real_units
from bench.floor import consume_and_copy
from shared.contract import Topics
from shared.ids import uuid7
from tests.harness import REPO

QUIX_PYTHON = REPO / ".venv-quix" / "bin" / "python"
QUIX_SCRIPT = REPO / "bench" / "quix_replay.py"

STEPS = (
    (2, None, None),
    (4, 2, None),
    (9, 4, "early"),
    (10, 9, "early"),
)


def status_events(dossiers: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of 4 status events per dossier, built as JSON text (fast enough for 1M)."""
    out = []
    base = datetime(2026, 3, 2, 2, tzinfo=UTC)
    units = real_units(180, base)
    for n in range(dossiers):
        dossier = str(uuid.UUID(int=n + 1))
        unit = units[n % len(units)]
        received = base + timedelta(minutes=n % 50_000)
        for i, (status, previous, timeliness) in enumerate(STEPS):
            ended = (received + timedelta(days=1)).isoformat() if status >= 9 else None
            payload = {
                "dossier_code": f"{unit}-260302-{n % 10000:04d}",
                "procedure_code": "2.000720",
                "channel": ("online", "in_person", "postal")[n % 3],
                "status": status,
                "previous_status": previous,
                "received_at": received.isoformat(),
                "appointment_at": (received + timedelta(days=3)).isoformat(),
                "ended_at": ended,
                "timeliness": timeliness,
                "elapsed_working_days": 1.0 if ended else None,
                "components_total": 2,
                "components_digitized": 2 if n % 4 else 1,
                "components_reused": n % 2,
                "result_electronic": bool(status >= 9 and n % 3),
                "approved": True if status >= 9 else None,
                "digitized": bool(status >= 9 and n % 3 and n % 4),
                "satisfied": (n % 5 != 0) if status == 10 else None,
            }
            event = {
                "event_id": str(uuid7()),
                "schema_version": 1,
                "type": "DossierStatusChanged",
                "occurred_at": (received + timedelta(hours=i * 8)).isoformat(),
                "dossier_id": dossier,
                "receiving_unit": unit,
                "competent_unit": unit,
                "payload": payload,
            }
            out.append((dossier.encode(), json.dumps(event).encode()))
    return out


async def fill(bench: Bench, topic: str, events: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bench.kafka.bootstrap,
        linger_ms=20,
        max_batch_size=256 * 1024,
        compression_type=None,
    )
    await producer.start()
    try:
        pending = [await producer.send(topic, value, key=key) for key, value in events]
        for future in pending:
            await future
    finally:
        await producer.stop()


@dataclass(frozen=True)
class ReplayResult:
    events: int
    replay_eps: float
    floor_eps: float  # consume + json.loads + COPY of one row per event, timed together
    floor_copy_share: float  # of the floor's time, awaiting COPY
    peak_rss_mib: float
    quix_eps: float  # the whole Quix process, start to exit, like replay_eps
    quix_peak_rss_mib: float
    quix_processing_eps: float  # Quix's own figure: first event to last counter update
    quix_guarantee: str
    small_events: int  # the same replay at a tenth of the volume ...
    small_peak_rss_mib: float  # ... and its peak memory: flat, not proportional
    naive_events: int
    naive_eps: float  # per-message FastStream handler, one transaction and commit per event

    @property
    def replay_over_naive(self) -> float:
        return self.replay_eps / self.naive_eps

    @property
    def ratio(self) -> float:
        """Replay ÷ naive, as the other benchmarks' `ratio` (bench.common.run_alone)."""
        return self.replay_over_naive

    @property
    def share_of_floor(self) -> float:
        return self.replay_eps / self.floor_eps

    @property
    def replay_over_quix(self) -> float:
        return self.replay_eps / self.quix_eps


async def _watch(
    proc: asyncio.subprocess.Process,
) -> tuple[float, float, str, str]:
    """Seconds until `proc` exits, its peak resident memory (MiB), its stdout and stderr."""
    started, peak = time.perf_counter(), 0.0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.returncode is None:
        with contextlib.suppress(FileNotFoundError):
            for line in status.read_text().splitlines():  # noqa: ASYNC240 - /proc, no disk I/O
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.2)
    seconds = time.perf_counter() - started
    out = (await proc.stdout.read()).decode() if proc.stdout else ""
    err = (await proc.stderr.read()).decode() if proc.stderr else ""
    return seconds, peak, out, err


async def replay(bench: Bench, database: str, prefix: str) -> tuple[float, float]:
    """Seconds of `motcua metrics rebuild` and its peak resident memory (MiB)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        "metrics",
        "rebuild",
        env={**os.environ, **bench.env(database, prefix)},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    seconds, peak, out, err = await _watch(proc)
    if proc.returncode != 0 or "rebuilt from" not in out:
        raise RuntimeError(f"rebuild failed: {out}{err[-3000:]}")
    return seconds, peak


async def naive(bench: Bench, dossiers: int) -> tuple[int, float]:
    """Events and events/s of bench/naive_metrics.py (per-event transaction and commit)."""
    prefix, _, count = await _filled(bench, dossiers)
    database = bench.database()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.naive_metrics",
        env={**os.environ, **bench.env(database, prefix)},
        cwd=REPO,
    )
    try:
        started = time.perf_counter()
        while True:
            with contextlib.suppress(asyncpg.UndefinedTableError, OSError):
                conn = await asyncpg.connect(database)
                try:
                    seen = await conn.fetchval("SELECT count(*) FROM metrics.processed_events")
                finally:
                    await conn.close()
                if seen >= count:
                    return count, count / (time.perf_counter() - started)
            if proc.returncode is not None or time.perf_counter() - started > 600:
                raise RuntimeError("the naive metrics consumer did not finish")
            await asyncio.sleep(0.2)
    finally:
        proc.terminate()
        await proc.wait()


@dataclass(frozen=True)
class QuixRun:
    seconds: float
    peak_rss_mib: float
    report: dict[str, Any]  # the script's JSON line
    counters: dict[tuple[str, str, str], int]  # (name, unit, label) -> non-zero value


async def quix(bench: Bench, topic: str, expected: int) -> QuixRun:
    """The same aggregation with Quix Streams, as a process of .venv-quix's Python."""
    if not QUIX_PYTHON.exists():
        raise RuntimeError(
            f"{QUIX_PYTHON} is missing: run `make bench`, which creates the Quix Streams "
            "virtualenv (.venv-quix) from bench/quix-requirements.txt"
        )
    counters_file = bench.workdir / f"quix-counters-{uuid.uuid4().hex[:8]}.json"
    proc = await asyncio.create_subprocess_exec(
        str(QUIX_PYTHON),
        str(QUIX_SCRIPT),
        "--bootstrap",
        bench.kafka.bootstrap,
        "--topic",
        topic,
        "--events",
        str(expected),
        "--counters-out",
        str(counters_file),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    seconds, peak, out, err = await _watch(proc)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"quix replay failed: {out}{err[-3000:]}")
    rows = json.loads(counters_file.read_text())
    counters = {(name, unit, label): value for name, unit, label, value in rows}
    return QuixRun(seconds, peak, json.loads(lines[-1]), counters)


async def service_counters(database: str) -> dict[tuple[str, str, str], int]:
    """The non-zero counters the rebuild left in the metrics schema."""
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch(
            "SELECT name, unit, label, value FROM metrics.counters WHERE value <> 0"
        )
    finally:
        await conn.close()
    return {(r["name"], r["unit"], r["label"]): r["value"] for r in rows}


def _differences(
    service: dict[tuple[str, str, str], int], other: dict[tuple[str, str, str], int]
) -> list[str]:
    return [
        f"{k}: service {service.get(k)}, quix {other.get(k)}"
        for k in sorted(set(service) | set(other))
        if service.get(k) != other.get(k)
    ]


async def _filled(bench: Bench, dossiers: int) -> tuple[str, str, int]:
    """A topic of `dossiers` × 4 status events: its prefix, its name, its event count."""
    from shared.kafka import ensure_topics

    prefix = f"replay{dossiers}."
    topic = Topics(prefix).status_events
    events = status_events(dossiers)
    await ensure_topics(bench.kafka.bootstrap, Topics(prefix))
    await fill(bench, topic, events)
    return prefix, topic, len(events)


async def run(bench: Bench, dossiers: int = 250_000, naive_dossiers: int = 1_000) -> ReplayResult:
    # Memory must not grow with the number of dossiers: the same replay at a tenth of the volume
    # first, to compare peaks.
    small_prefix, _, small_events = await _filled(bench, dossiers // 10)
    _, small_peak = await replay(bench, bench.database(), small_prefix)
    prefix, topic, count = await _filled(bench, dossiers)
    floor = await consume_and_copy(bench.kafka.bootstrap, topic, count, bench.database())
    database = bench.database()
    seconds, peak = await replay(bench, database, prefix)
    quix_run = await quix(bench, topic, count)
    naive_events, naive_eps = await naive(bench, naive_dossiers)
    # The comparison is only fair if both computed the same thing: every counter equal.
    differences = _differences(await service_counters(database), quix_run.counters)
    if differences:
        raise RuntimeError(
            f"Quix Streams and the service disagree on {len(differences)} counters: "
            + "; ".join(differences[:10])
        )
    totals = quix_run.report["totals"]
    if totals.get("received") != dossiers or totals.get("completed") != dossiers:
        raise RuntimeError(f"Quix Streams totals make no sense for {dossiers} dossiers: {totals}")
    return ReplayResult(
        events=count,
        replay_eps=count / seconds,
        floor_eps=floor.eps,
        floor_copy_share=floor.copy_share,
        peak_rss_mib=peak,
        quix_eps=count / quix_run.seconds,
        quix_peak_rss_mib=quix_run.peak_rss_mib,
        quix_processing_eps=float(quix_run.report["events_per_s"]),
        quix_guarantee=str(quix_run.report["guarantee"]),
        small_events=small_events,
        small_peak_rss_mib=small_peak,
        naive_events=naive_events,
        naive_eps=naive_eps,
    )


if __name__ == "__main__":
    import functools

    from bench.common import run_alone

    # The volumes of `make bench BENCH_ARGS=--quick`: a few minutes, Quix Streams included.
    run_alone(functools.partial(run, dossiers=25_000, naive_dossiers=250))
