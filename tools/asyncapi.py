"""The AsyncAPI documents of the Kafka contract: FastStream apps for `faststream docs gen`.

Each service's channels are declared by the same function its app calls (`channels.py`), on a
broker of their own that is never started, with the contract's topic names (no prefix) and the
settings' default consumer groups and bootstrap servers, so the documents do not depend on the
environment they are generated in. `motcua` is the whole contract in one document; `intake`,
`processing` and `metrics` are each service's own view (what its Kafka user may read and write).
"""

from __future__ import annotations

from collections.abc import Sequence

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from services.intake import channels as intake_channels
from services.intake.config import IntakeSettings
from services.metrics import channels as metrics_channels
from services.metrics.config import MetricsSettings
from services.processing import channels as processing_channels
from services.processing.config import ProcessingSettings
from shared.consumer import Record
from shared.contract import SCHEMA_VERSION, Topics
from shared.kafka import make_broker
from shared.settings import ServiceSettings

TOPICS = Topics()
BOOTSTRAP: str = ServiceSettings.model_fields["kafka_bootstrap"].default
CONTRACT = (
    f"motcua's event contract v{SCHEMA_VERSION} (docs/events.md). Events are JSON, keyed by the "
    "dossier id so that one dossier's events stay in order. Topic names get "
    "`MOTCUA_KAFKA_TOPIC_PREFIX` in front and the server is `MOTCUA_KAFKA_BOOTSTRAP` (shown: the "
    "local platform's). FastStream adds a `correlationId` header location to every message; "
    "motcua sets none."
)


async def _never_called(records: Sequence[Record]) -> None:
    raise AssertionError("the documentation brokers are never started")


def _group(settings: type[ServiceSettings]) -> str:
    group: str = settings.model_fields["consumer_group"].default
    return group


def _intake() -> KafkaBroker:
    broker = make_broker(BOOTSTRAP, "motcua-intake")
    intake_channels.declare_channels(broker, TOPICS, _group(IntakeSettings), _never_called)
    return broker


def _processing() -> KafkaBroker:
    broker = make_broker(BOOTSTRAP, "motcua-processing")
    processing_channels.declare_channels(broker, TOPICS, _group(ProcessingSettings), _never_called)
    return broker


def _metrics() -> KafkaBroker:
    broker = make_broker(BOOTSTRAP, "motcua-metrics")
    metrics_channels.declare_channels(broker, TOPICS, _group(MetricsSettings), _never_called)
    return broker


def _document(title: str, what: str, *brokers: KafkaBroker) -> FastStream:
    specification = AsyncAPI(
        title=title,
        version=str(SCHEMA_VERSION),
        description=f"{what} {CONTRACT}",
        schema_version="3.0.0",
    )
    return FastStream(*brokers, specification=specification, logger=None)


motcua = _document(
    "motcua events",
    "Every topic, with who writes and who reads it.",
    _intake(),
    _processing(),
    _metrics(),
)
intake = _document(
    "motcua intake: Kafka",
    "What the intake service writes and reads.",
    _intake(),
)
processing = _document(
    "motcua processing: Kafka",
    "What the processing service writes and reads.",
    _processing(),
)
metrics = _document(
    "motcua metrics: Kafka",
    "What the metrics service writes and reads.",
    _metrics(),
)
