"""The metrics replay against its floor only (no Quix, no naive run): quick enough to compare two
versions of the code, each run from its own checkout, on the same machine in a row.

    PYTHONPATH=deploy/local:. .venv/bin/python -m bench.replay_alone --dossiers 50000
"""

from __future__ import annotations

import argparse
import asyncio

from bench.common import bench_platform
from bench.floor import consume_and_copy
from bench.metrics_replay import _filled, replay


async def main(dossiers: int, rounds: int) -> None:
    async with bench_platform() as bench:
        prefix, topic, count = await _filled(bench, dossiers)
        floor = await consume_and_copy(bench.kafka.bootstrap, topic, count, bench.database())
        for _ in range(rounds):
            seconds, peak = await replay(bench, bench.database(), prefix)
            eps = count / seconds
            print(
                f"{count:,} events: replay {eps:,.0f} events/s, floor {floor.eps:,.0f} events/s, "
                f"replay ÷ floor {eps / floor.eps:.1%}, peak {peak:.0f} MiB",
                flush=True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.dossiers, arguments.rounds))
