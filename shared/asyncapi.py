"""The contract's Kafka messages as FastStream documents them (AsyncAPI, docs/asyncapi/).

Nothing here runs on the message path: the types only describe what travels on each topic, and a
declared publisher is never used to send (the outbox relay and the dead-letter helper do that).
"""

from __future__ import annotations

from typing import Annotated, Any

from faststream.kafka import KafkaBroker, KafkaRouter
from pydantic import Field

from shared.contract import DossierEvent, StatusEvent

# The titles name the payload schemas in the documents' components, shared by every channel that
# carries them (a publisher's and a subscriber's copy must be equal, or FastStream warns).
DOSSIER_EVENT = Annotated[
    DossierEvent,
    Field(
        title="DossierEvent",
        description="One event of a dossier's lifecycle (docs/events.md): the envelope, with "
        "`type` selecting the payload. The record's key is the dossier id.",
    ),
]
STATUS_EVENT = Annotated[
    StatusEvent,
    Field(
        title="StatusEvent",
        description="A dossier's state after each applied event (DossierStatusChanged), or its "
        "passing the appointment (DossierOverdue, once). The record's key is the dossier id.",
    ),
]
DEAD_LETTER = Annotated[
    bytes,
    Field(
        title="DeadLetter",
        description="The original record's value with national IDs masked: not necessarily a "
        "valid event, which is why it is here. Headers: x-dead-letter-reason, "
        "x-original-topic, x-original-partition, x-original-offset, x-consumer.",
    ),
]


def declare_publisher(
    broker: KafkaBroker, topic: str, message: Any, *, title: str, description: str
) -> None:
    """Declare, for the document only, that this service writes `message`s to `topic`.

    One router per publisher: a broker keeps its publishers in a WeakSet, whose order changes
    from run to run, while routers keep a list, so the channels come out in declaration order
    and the committed documents stay byte-for-byte reproducible.
    """
    router = KafkaRouter()
    router.publisher(topic, title=title, description=description, schema=message)
    broker.include_router(router)
