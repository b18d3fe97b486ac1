"""The naive baseline: a per-message FastStream handler, one transaction and one commit per event.

Same domain, same store, same outbox as the real consumer; only the batching is taken away.
Run as `python -m bench.naive_processing` with the usual MOTCUA_* settings.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaMessage

from bench.common import consume_until_stopped
from services.processing.config import ProcessingSettings
from services.processing.store import MIGRATIONS, SCHEMA, ProcessingStore
from services.processing.workflow import apply_events
from shared.calendar import WorkingCalendar
from shared.contract import decode_dossier_event
from shared.db import prepare
from shared.kafka import make_broker


async def main() -> None:
    settings = ProcessingSettings()
    broker = make_broker(settings.kafka_bootstrap, "motcua-naive")
    calendar = WorkingCalendar.vietnam(range(2024, 2029))
    pool = await prepare(settings.database_url, SCHEMA, MIGRATIONS, 4)
    store = ProcessingStore(pool)

    @broker.subscriber(
        settings.topics.dossier_events,
        group_id="naive",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def handle(body: Any, message: KafkaMessage) -> None:
        # `body` is FastStream's decoded JSON; the raw bytes go through our own contract.
        event = decode_dossier_event(message.body)
        async with store.batch() as tx:
            await apply_events(tx, [event], calendar, settings.topics)

    await consume_until_stopped(broker)


if __name__ == "__main__":
    asyncio.run(main())
