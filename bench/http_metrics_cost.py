"""What the HTTP metrics cost per request: intake under bench/intake_bench.py's wrk load, with and
without the HttpMetrics middleware, in turns on one platform (read the ratio, not the figures).

    PYTHONPATH=deploy/local:. .venv/bin/python -m bench.http_metrics_cost measure --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bench.common import Bench, bench_platform, start_http
from bench.intake_bench import _checked, _load

CLIENTS = 64


@dataclass(frozen=True)
class Run:
    metrics: bool
    per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # the intake process's CPU time per submission: contention hardly moves it


def _serve(port: int, metrics: bool) -> None:
    """The intake service as `motcua serve intake` runs it, the middleware removed if asked."""
    import uvicorn

    from services.intake.app import create_app
    from services.intake.config import IntakeSettings
    from shared.http_metrics import HttpMetrics

    app = create_app(IntakeSettings())
    if not metrics:
        app.user_middleware = [
            m for m in app.user_middleware if cast(object, m.cls) is not HttpMetrics
        ]
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")


async def _one(bench: Bench, metrics: bool, seconds: float) -> Run:
    database = bench.database()
    flag = "--metrics" if metrics else "--no-metrics"
    proc, url = start_http(
        "intake",
        lambda port: ["bench.http_metrics_cost", "serve", str(port), flag],
        bench.env(database, "intake."),
        bench.workdir,
    )
    try:
        # Warm-up as in intake_bench, not measured.
        warm = await _load(url, CLIENTS, 5, bench.workdir)
        cpu_before = _cpu_seconds(proc.pid)
        load = await _load(url, CLIENTS, seconds, bench.workdir)
        cpu = _cpu_seconds(proc.pid) - cpu_before
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 20)
    await _checked(database, "intake.dossiers", warm, load, CLIENTS)
    if load["refused"] or load["socket_errors"]:
        raise RuntimeError(f"errors under load: {load}")
    return Run(
        metrics,
        load["created"] / (load["duration_us"] / 1e6),
        load["p50_us"] / 1e3,
        load["p99_us"] / 1e3,
        cpu / load["created"] * 1e6,
    )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _middleware_us(requests: int = 50_000) -> float:
    """The middleware's own CPU per request, alone on the loop: the intake app's HttpMetrics
    around an endpoint that answers at once, minus that endpoint alone, for the reception route.
    Exact where the wrk figures are noisy."""
    from services.intake.app import create_app
    from services.intake.config import IntakeSettings
    from shared.http_metrics import HttpMetrics

    async def answer(_scope: Any, _receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def noop(_message: Any) -> None:
        return None

    app = create_app(IntakeSettings())
    measured = HttpMetrics(answer, owner=app)
    scope = {"type": "http", "method": "POST", "path": "/v1/dossiers", "root_path": ""}

    async def per_request(target: Any) -> float:
        best = float("inf")
        for _ in range(5):  # the least disturbed of five passes
            started = time.process_time()
            for _ in range(requests // 5):
                await target(dict(scope), noop, noop)
            best = min(best, (time.process_time() - started) / (requests // 5))
        return best * 1e6

    return await per_request(measured) - await per_request(answer)


async def main(rounds: int, seconds: float) -> None:
    runs: list[Run] = []
    async with bench_platform() as bench:
        for n in range(rounds):
            # ABBA: neither variant always runs first on a platform that warms up.
            for metrics in (False, True) if n % 2 == 0 else (True, False):
                run = await _one(bench, metrics, seconds)
                runs.append(run)
                print(
                    f"round {n + 1} {'with   ' if metrics else 'without'} metrics: "
                    f"{run.per_second:,.0f} submissions/s, p50 {run.p50_ms:.1f} ms, "
                    f"p99 {run.p99_ms:.1f} ms, {run.cpu_us:.0f} µs CPU per submission",
                    flush=True,
                )
                await bench.settle()
    for figure, unit, cost_sign in (("per_second", "submissions/s", -1), ("cpu_us", "µs CPU", 1)):
        with_ = statistics.median(getattr(r, figure) for r in runs if r.metrics)
        without = statistics.median(getattr(r, figure) for r in runs if not r.metrics)
        ratio = with_ / without
        print(
            f"with ÷ without (median {unit}): {ratio:.3f} ({with_:,.0f} / {without:,.0f}): "
            f"cost {cost_sign * (ratio - 1):+.1%}"
        )
    # Each round's two runs are neighbours in time: their ratio cancels the slow drifts of a
    # shared machine's load.
    rounds_ = [runs[i : i + 2] for i in range(0, len(runs), 2)]
    for figure, unit in (("per_second", "submissions/s"), ("cpu_us", "CPU per submission")):
        paired = [
            getattr(next(r for r in pair if r.metrics), figure)
            / getattr(next(r for r in pair if not r.metrics), figure)
            for pair in rounds_
        ]
        print(
            f"per round, {unit} with ÷ without: "
            + ", ".join(f"{r:.3f}" for r in paired)
            + f"; median {statistics.median(paired):.3f}"
        )
    alone = await _middleware_us()
    cpu = statistics.median(r.cpu_us for r in runs if not r.metrics)
    print(
        f"the middleware alone: {alone:.1f} µs CPU per request = {alone / cpu:.1%} of intake's "
        f"{cpu:.0f} µs per submission without it"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    measure = commands.add_parser("measure")
    measure.add_argument("--rounds", type=int, default=2)
    measure.add_argument("--seconds", type=float, default=20)
    serve = commands.add_parser("serve")
    serve.add_argument("port", type=int)
    serve.add_argument("--metrics", action=argparse.BooleanOptionalAction, required=True)
    args = parser.parse_args()
    if args.command == "serve":
        _serve(args.port, args.metrics)
    else:
        asyncio.run(main(args.rounds, args.seconds))
