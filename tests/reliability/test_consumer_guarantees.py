"""The foundation's promises on the real broker: exact counts across a kill -9, dead letters."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.contract import (
    ApplicantKind,
    Channel,
    DossierReceived,
    DossierReceivedPayload,
    ProcessingStarted,
    ReasonPayload,
    ResultReturned,
    SupplementReceived,
    SupplementRequested,
    Topics,
    dossier_key,
    encode,
    new_event_fields,
)
from tests.conftest import Isolated, Services
from tests.factories import received, status_events
from tests.harness import (
    counter_token,
    dead_letters,
    eventually,
    group_caught_up,
    officer_token,
    readable,
    scrape,
)
from tests.pii_sweep import LEDGER
from tools.samples import sample_submission

pytestmark = pytest.mark.integration


async def test_killing_processing_mid_run_leaves_counts_exact(
    isolated: Isolated, services: Services
) -> None:
    intake = services.start("intake")
    metrics = services.start("metrics")
    # Small batches so the kill lands between commits, with work still in flight.
    processing = services.start("processing", MOTCUA_MAX_BATCH="20")
    rng = random.Random(11)
    submissions = [sample_submission(rng) for _ in range(300)]

    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as client:

        async def submit(unit: str, body: dict[str, object]) -> None:
            response = await client.post("/v1/dossiers", json=body, headers=counter_token(unit))
            assert response.status_code == 201, response.text

        await asyncio.gather(*(submit(u, b) for u, b in submissions[:150]))
        processing.kill()
        await asyncio.gather(*(submit(u, b) for u, b in submissions[150:]))
    processing.start()

    conn = await asyncpg.connect(isolated.database_url)
    try:

        async def all_processed() -> bool:
            return bool(await conn.fetchval("SELECT count(*) FROM processing.dossiers") == 300)

        await eventually(all_processed, what="300 dossiers in processing")

        async def all_counted() -> bool:
            samples = await scrape(metrics.url)
            return (
                sum(v for k, v in samples.items() if k.startswith("motcua_dossiers_received_total"))
                == 300
            )

        await eventually(all_counted, what="300 dossiers at /metrics")
        # Exactly once: one timeline entry and one status event per dossier, no more.
        assert await conn.fetchval("SELECT count(*) FROM processing.timeline") == 300
        assert (
            await conn.fetchval(
                "SELECT coalesce(sum(value), 0) FROM metrics.counters WHERE name = 'received'"
            )
            == 300
        )
        expected: dict[str, int] = {}
        for unit, body in submissions:
            key = f'motcua_dossiers_received_total{{channel="{body["channel"]}",unit="{unit}"}}'
            expected[key] = expected.get(key, 0) + 1
        samples = await scrape(metrics.url)
        assert {k: samples[k] for k in expected} == expected
    finally:
        await conn.close()


def valid_event() -> DossierReceived:
    now = datetime.now(UTC)
    return DossierReceived(
        **new_event_fields(now, uuid.uuid4(), "T01", "T01"),
        payload=DossierReceivedPayload(
            dossier_code="T01-261127-9001",
            procedure_code="1.001612",
            channel=Channel.ONLINE,
            applicant_kind=ApplicantKind.CITIZEN,
            applicant_ref="ab" * 32,
            received_at=now,
            appointment_at=now + timedelta(days=3),
            processing_days=3,
        ),
    )


async def test_malformed_event_goes_to_dead_letter_and_the_next_one_is_processed(
    isolated: Isolated, services: Services
) -> None:
    services.start("processing")
    topics = Topics(isolated.topic_prefix)
    good = valid_event()
    producer = AIOKafkaProducer(bootstrap_servers=isolated.platform.kafka.bootstrap)
    await producer.start()
    try:
        key = dossier_key(good.dossier_id)
        # Same key: same partition, so the good event sits right behind the poison one. The
        # poison quotes an ID in clear on purpose: its dead letter must not.
        LEDGER.plant(f"topic {topics.dossier_events}@", "079203001234")
        await producer.send_and_wait(
            topics.dossier_events,
            b'{"type": "DossierReceived", "applicant": "079203001234"',
            key=key,
        )
        await producer.send_and_wait(topics.dossier_events, encode(good), key=key)
    finally:
        await producer.stop()

    conn = await asyncpg.connect(isolated.database_url)
    try:

        async def good_one_stored() -> bool:
            found = await conn.fetchval(
                "SELECT count(*) FROM processing.dossiers WHERE id = $1", good.dossier_id
            )
            return bool(found == 1)

        await eventually(good_one_stored, what="the valid event applied")
    finally:
        await conn.close()

    letters = await dead_letters(isolated.platform.kafka.bootstrap, topics.dead_letter, 1)
    assert len(letters) == 1
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert headers["x-dead-letter-reason"].startswith("invalid event: ")
    assert headers["x-original-topic"] == topics.dossier_events
    # The dead letter keeps the evidence but never the national ID in clear.
    assert b"079203001234" not in letters[0].value
    assert b"079*********" in letters[0].value


async def test_poison_of_every_kind_is_dead_lettered_and_nothing_around_it_is_lost(
    isolated: Isolated, services: Services
) -> None:
    """One dossier's partition carries, in order: a valid reception whose header is not UTF-8,
    a NUL in a reason, an illegal transition, a pause that overflows the calendar and a valid
    start with a null header value. The three poison events are dead-lettered with their
    reasons; the two valid ones are applied; nothing is redelivered forever or silently
    skipped."""
    processing = services.start("processing", MOTCUA_MAX_BATCH="100")
    topics = Topics(isolated.topic_prefix)
    good = valid_event()
    ident, unit = good.dossier_id, good.receiving_unit
    # A second dossier at the end of the calendar, whose supplement pushes the appointment past
    # year 9999: the calendar overflows inside the batch's transaction.
    late = datetime(9999, 12, 1, 3, tzinfo=UTC)
    far = received("T01", late, days=1)

    def fields(at: datetime, dossier: uuid.UUID = ident) -> dict[str, object]:
        return new_event_fields(at, dossier, unit, unit, actor="officer")

    now = datetime.now(UTC)
    nul = SupplementRequested(**fields(now), payload=ReasonPayload(reason="thiếu giấy\x00"))
    illegal = ResultReturned(**fields(now))
    overflow = [
        far,
        SupplementRequested(
            **fields(late + timedelta(hours=1), far.dossier_id),
            payload=ReasonPayload(reason="bổ sung"),
        ),
        SupplementReceived(**fields(datetime(9999, 12, 30, tzinfo=UTC), far.dossier_id)),
    ]
    started = ProcessingStarted(**fields(now + timedelta(seconds=1)))
    producer = AIOKafkaProducer(bootstrap_servers=isolated.platform.kafka.bootstrap)
    await producer.start()
    try:
        key = dossier_key(ident)
        await producer.send_and_wait(
            topics.dossier_events, encode(good), key=key, headers=[("trace", b"\xff\xfe")]
        )
        for event in (nul, illegal):
            await producer.send_and_wait(topics.dossier_events, encode(event), key=key)
        for step in overflow:
            await producer.send_and_wait(
                topics.dossier_events, encode(step), key=dossier_key(far.dossier_id)
            )
        # Kafka allows a null header value: FastStream's parser fails on it as on bad UTF-8.
        await producer.send_and_wait(
            topics.dossier_events, encode(started), key=key, headers=[("empty", None)]
        )
    finally:
        await producer.stop()

    conn = await asyncpg.connect(isolated.database_url)
    try:

        async def started_and_far_supplemented() -> bool:
            rows = {
                r["id"]: r["status"]
                for r in await conn.fetch("SELECT id, status FROM processing.dossiers")
            }
            return rows.get(ident) == 4 and rows.get(far.dossier_id) == 5

        await eventually(started_and_far_supplemented, what="the valid events applied")
    finally:
        await conn.close()

    letters = await dead_letters(isolated.platform.kafka.bootstrap, topics.dead_letter, 3)
    reasons = sorted(
        dict((k, v.decode()) for k, v in r.headers)["x-dead-letter-reason"] for r in letters
    )
    assert len(reasons) == 3, reasons
    assert reasons[0] == (
        "ResultReturned rejected: "
        "cannot return the result of a dossier that is received (allowed: resolved)"
    )
    assert reasons[1] == "SupplementReceived cannot be applied: OverflowError"
    assert reasons[2] == "invalid event: payload.reason: nul_character"
    # Operators see them too, at processing's /metrics, by reason.
    samples = await scrape(processing.url)
    for reason in ("invalid", "rejected", "unapplicable"):
        name = f'motcua_dead_letters_total{{consumer="motcua-processing",reason="{reason}"}}'
        assert samples[name] == 1, reason


async def test_a_status_event_the_database_refuses_is_dead_lettered_by_metrics(
    isolated: Isolated, services: Services
) -> None:
    """A status event valid by the contract whose figure PostgreSQL cannot store (2^31
    components: out of the integer column's range) fails its batch; metrics isolates it,
    dead-letters it and counts the event behind it on the same partition."""
    metrics = services.start("metrics", MOTCUA_MAX_BATCH="100")
    topics = Topics(isolated.topic_prefix)
    (poison,) = status_events([received("T01.X00004")])
    poison = poison.model_copy(
        update={"payload": poison.payload.model_copy(update={"components_total": 2**31})}
    )
    (good,) = status_events([received("T01.X00008")])
    producer = AIOKafkaProducer(bootstrap_servers=isolated.platform.kafka.bootstrap)
    await producer.start()
    try:
        key = dossier_key(poison.dossier_id)  # one partition: the good one sits behind it
        await producer.send_and_wait(topics.status_events, encode(poison), key=key)
        await producer.send_and_wait(topics.status_events, encode(good), key=key)
    finally:
        await producer.stop()

    received_good = 'motcua_dossiers_received_total{channel="online",unit="T01.X00008"}'

    async def good_one_counted() -> bool:
        return (await scrape(metrics.url)).get(received_good) == 1

    await eventually(good_one_counted, what="the event behind the poison counted")
    letters = await dead_letters(isolated.platform.kafka.bootstrap, topics.dead_letter, 1)
    assert len(letters) == 1
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert headers["x-dead-letter-reason"] == (
        "DossierStatusChanged cannot be applied: NumericValueOutOfRangeError"
    )
    assert headers["x-original-topic"] == topics.status_events
    assert headers["x-consumer"] == "motcua-metrics"
    samples = await scrape(metrics.url)
    assert (
        samples['motcua_dead_letters_total{consumer="motcua-metrics",reason="unapplicable"}'] == 1
    )
    assert 'motcua_dossiers_received_total{channel="online",unit="T01.X00004"}' not in samples
    # The partition moved on: the group's offsets pass both records.

    async def moved_on() -> bool:
        bootstrap = isolated.platform.kafka.bootstrap
        return await group_caught_up(bootstrap, "motcua-metrics", topics.status_events)

    await eventually(moved_on, what="metrics' offsets past the poison", within=15)


async def test_poison_on_the_status_topic_does_not_stop_the_counters_view(
    isolated: Isolated, services: Services
) -> None:
    """intake folds processing's status events into the counters' view. Poison on its
    dossier's partition (bytes that are no JSON, JSON that is no status event) sits ahead of
    processing's real events: the view skips it (the metrics consumer dead-letters the same
    records) and shows the dossier in processing as the officer starts it."""
    intake = services.start("intake", MOTCUA_MAX_BATCH="100")
    processing = services.start("processing")
    topics = Topics(isolated.topic_prefix)
    unit, body = sample_submission(random.Random(41))
    async with httpx.AsyncClient(timeout=30) as http:
        receipt = await http.post(
            f"{intake.url}/v1/dossiers", json=body, headers=counter_token(unit)
        )
        assert receipt.status_code == 201, receipt.text
        ident = uuid.UUID(receipt.json()["dossier_id"])
        producer = AIOKafkaProducer(bootstrap_servers=isolated.platform.kafka.bootstrap)
        await producer.start()
        try:
            for poison in (b"\xff\x00 not json", b'{"type": "DossierStatusChanged"}'):
                await producer.send_and_wait(topics.status_events, poison, key=dossier_key(ident))
        finally:
            await producer.stop()

        officer = officer_token(receipt.json()["competent_unit"])
        dossier = f"{processing.url}/v1/dossiers/{ident}"

        await readable(http, dossier, officer, "processing has the dossier")
        started = await http.post(f"{dossier}/start", headers=officer)
        assert started.status_code == 200, started.text

        async def counters_see_it_started() -> bool:
            view = await http.get(f"{intake.url}/v1/dossiers/{ident}", headers=counter_token(unit))
            return bool(view.json()["status_name"] == "processing")

        await eventually(counters_see_it_started, what="the counters' view past the poison")
    assert "status event skipped" in intake.logs()
