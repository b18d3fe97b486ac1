"""`make bench`: run every benchmark with its baseline in the same run, write docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import freshness, intake_bench, metrics_replay, processing_bench
from bench.common import bench_platform, machine

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BY_HAND = "<!-- Below: benchmarks run by hand, kept by make bench. -->"


async def main(quick: bool) -> None:
    started = time.perf_counter()
    async with bench_platform() as bench:
        print("bench: intake over HTTP (wrk) ...", flush=True)
        intake = await intake_bench.run(bench, seconds=10 if quick else 20)
        print(intake, flush=True)
        await bench.settle()
        print("bench: processing ...", flush=True)
        processing = await processing_bench.run(
            bench, dossiers=5_000 if quick else 20_000, naive_dossiers=1_000 if quick else 2_000
        )
        print(processing, flush=True)
        await bench.settle()
        print("bench: end-to-end freshness ...", flush=True)
        fresh = await freshness.run(bench, rate=200.0, seconds=15 if quick else 30)
        print(fresh, flush=True)
        await bench.settle()
        print("bench: metrics replay (service, floor, Quix Streams) ...", flush=True)
        replay = await metrics_replay.run(
            bench, dossiers=25_000 if quick else 250_000, naive_dossiers=250 if quick else 1_000
        )
        print(replay, flush=True)
    command = "make bench" + (" BENCH_ARGS=--quick" if quick else "")
    # The benchmarks run by hand (their commands are in their sections) stay as they were.
    previous = DOC.read_text() if DOC.exists() else ""
    by_hand = previous[previous.find(BY_HAND) :] if BY_HAND in previous else ""
    DOC.write_text(f"""# Benchmarks

Written by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, in {time.perf_counter() - started:.0f} s.
Machine: {machine()}; Kafka, PostgreSQL and the load generator run on the same machine. These
machines are shared and noisy: read the ratios against the baseline of the same run, not the
absolute figures. Where the time goes in each service: [performance.md](performance.md).

## Intake: durable submissions over HTTP (64 concurrent clients, one intake process)

| figure | value |
|---|---|
| submissions (201 receipts counted by wrk; each checked against the dossiers stored in PostgreSQL) | {intake.submissions} |
| submissions/s | {intake.per_second:,.0f} |
| latency p50 / p99 (wrk) | {intake.p50_ms:.1f} ms / {intake.p99_ms:.1f} ms |
| errors (non-201 and socket errors) | {intake.errors} |
| floor: asyncpg COPY of the same rows + aiokafka produce (acks=all) of the same events | {intake.floor_per_second:,.0f} rows/s |
| intake ÷ floor | {intake.share_of_floor:.1%} |
| naive FastAPI route, one transaction and one awaited Kafka send per submission | {intake.naive_per_second:,.0f} submissions/s ({intake.naive_submissions} submissions) |
| naive latency p50 / p99 (wrk) | {intake.naive_p50_ms:.1f} ms / {intake.naive_p99_ms:.1f} ms |
| naive errors | {intake.naive_errors} |
| intake ÷ naive | {intake.ratio:.1f}× |

Target (issue): ≥ 1,000 submissions/s with p99 ≤ 100 ms. Each receipt is given only once its
dossier and event are committed (fsync on); submissions in flight share one statement (group
commit, `services/intake/writer.py`). Load: wrk, 2 threads, 64 connections, 5 s of warm-up, then
2,000 valid submissions of many units in turn. The naive server (`bench/naive_intake.py`) gets the
same load for as long: the same pydantic model and token, then one INSERT in its own transaction
and a FastStream publish awaited until acknowledged (acks=all). It does less than the service (no
reception rules, no daily code, no outbox: a crash between the two writes loses the event).

## Processing: sustained lifecycle events/s (one process)

| figure | value |
|---|---|
| events (received, started, resolved/withdrawn) | {processing.events} |
| batched consumer (the service) | {processing.batched_eps:,.0f} events/s |
| naive per-message FastStream handler, one transaction and commit per event | {processing.naive_eps:,.0f} events/s ({processing.naive_events} events) |
| batched ÷ naive | {processing.ratio:.1f}× |
| floor: plain aiokafka consume + `json.loads` + asyncpg COPY of one row per event, the same records | {processing.floor_eps:,.0f} events/s (COPY {processing.floor_copy_share:.0%} of its time) |
| batched ÷ floor | {processing.share_of_floor:.1%} |

Target (issue): ≥ 5,000 events/s and ≥ 5× the naive handler. The batched figure includes the
outbox relay publishing every status event; the naive one only writes them. The floor
(`bench/floor.py`) reads the service's topic again from the beginning (no consumer group, no
offset commits) and COPYs one timeline-like row per event, one COPY per fetched batch: no
validation, no state, no idempotency, no outbox.

## End-to-end freshness at a steady {fresh.rate_achieved:,.0f} dossiers/s

From an intake 201 to the dossier counted in `motcua_dossiers_received_total` at the metrics
service's `/metrics` (intake → outbox → Kafka → processing → outbox → Kafka → metrics), polled
every {fresh.poll_interval_ms:.0f} ms.

| figure | value |
|---|---|
| dossiers submitted (open loop, steady rate) | {fresh.dossiers} |
| freshness p50 / p99 / max | {fresh.p50_ms:,.0f} ms / {fresh.p99_ms:,.0f} ms / {fresh.max_ms:,.0f} ms |
| errors / sends behind schedule | {fresh.errors} / {fresh.late_sends} |
| floor: one plain aiokafka hop (produce acks=all → consume) at the same rate, p50 / p99 | {fresh.floor_hop_p50_ms:.0f} ms / {fresh.floor_hop_p99_ms:.0f} ms |
| service p99 ÷ two floor hops' p99 | {fresh.ratio:.1f}× |

Target (issue): p99 ≤ 2 s at 200 dossiers/s. There is no naive end-to-end run: a dossier is
three lifecycle events or more, and the naive per-message processing handler
(under 100 events/s, above) cannot keep up with 200 dossiers/s at all, so its freshness would only
grow for as long as the run lasts.

## Metrics: replay of the status topic (`motcua metrics rebuild`, one process)

| figure | value |
|---|---|
| status events replayed | {replay.events:,} |
| replay | {replay.replay_eps:,.0f} events/s |
| floor: plain aiokafka consume + `json.loads` + asyncpg COPY of one row per event | {replay.floor_eps:,.0f} events/s (COPY {replay.floor_copy_share:.0%} of its time) |
| replay ÷ floor | {replay.share_of_floor:.1%} |
| naive per-message FastStream handler, one transaction and commit per event | {replay.naive_eps:,.0f} events/s ({replay.naive_events:,} events) |
| replay ÷ naive | {replay.replay_over_naive:.0f}× |
| peak resident memory of the replaying process | {replay.peak_rss_mib:.0f} MiB ({replay.small_peak_rss_mib:.0f} MiB replaying {replay.small_events:,} events: flat in the volume) |
| the same aggregation on Quix Streams ({replay.quix_guarantee}), whole process | {replay.quix_eps:,.0f} events/s ({replay.quix_processing_eps:,.0f} events/s first event to last update) |
| Quix Streams peak resident memory | {replay.quix_peak_rss_mib:.0f} MiB |
| replay ÷ Quix Streams | {replay.replay_over_quix:.1f}× |

Target (issue): ≥ 20,000 events/s and ≥ 25 % of the floor, memory flat in the number of dossiers
(the process holds one batch; per-dossier facts live in PostgreSQL). The Quix Streams run
(`bench/quix_replay.py`, its own virtualenv `.venv-quix`) keeps per-dossier facts and per-unit
counters in its RocksDB state; its counters are checked equal to the service's, counter by
counter, or the benchmark fails. The floor is the processing one (`bench/floor.py`) on this topic.

{by_hand}""")
    print(f"bench: wrote {DOC}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller volumes (a few minutes)")
    asyncio.run(main(parser.parse_args().quick))
