"""The naive baseline of the metrics replay: a per-message FastStream handler, one transaction and
one offset commit per status event.

Same decoding, same fold, same store as the real consumer; only the batching is taken away.
Run as `python -m bench.naive_metrics` with the usual MOTCUA_* settings; it counts until stopped.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaMessage

from bench.common import consume_until_stopped
from services.metrics.config import MetricsSettings
from services.metrics.store import MIGRATIONS, SCHEMA, MetricsStore
from services.metrics.workflow import count_events
from shared.contract import decode_status_event
from shared.db import prepare
from shared.kafka import make_broker
from shared.reference import load_reference


async def main() -> None:
    settings = MetricsSettings()
    broker = make_broker(settings.kafka_bootstrap, "motcua-naive-metrics")
    pool = await prepare(settings.database_url, SCHEMA, MIGRATIONS, 4)
    store = MetricsStore(pool, load_reference(settings.reference_dir).province_of)

    @broker.subscriber(
        settings.topics.status_events,
        group_id="naive-metrics",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def handle(body: Any, message: KafkaMessage) -> None:
        # `body` is FastStream's decoded JSON; the raw bytes go through our own contract.
        await count_events(store, [decode_status_event(message.body)])

    await consume_until_stopped(broker)


if __name__ == "__main__":
    asyncio.run(main())
