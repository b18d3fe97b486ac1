"""Kafka over SASL_SSL: a broker that only speaks SCRAM-SHA-512 over TLS, with a certificate made
here, and every kind of motcua client (admin, FastStream, plain aiokafka, the services) on it."""

from __future__ import annotations

import asyncio
import random
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import motcua_local
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from shared.contract import Topics
from shared.kafka import (
    DeadLetterReason,
    client_options,
    dead_letter,
    ensure_topics,
    make_broker,
    missing_topics,
    partitions_of,
)
from shared.kafka_security import (
    PLAINTEXT,
    KafkaAuthenticationFailed,
    KafkaSecurity,
    SecurityProtocol,
)
from tests.harness import ServiceProcess, counter_token, eventually, officer_token
from tests.pii_sweep import sweep_before_stopping
from tests.security.kafka_tls import BrokerTls, broker_tls, certificate_authority
from tools.samples import sample_submission

pytestmark = pytest.mark.integration

USER = "motcua"


@dataclass(frozen=True)
class SecurePlatform:
    kafka: motcua_local.Kafka
    postgres: motcua_local.Postgres
    tls: BrokerTls
    password: str = field(repr=False)
    directory: Path

    def security(self, password: str | None = None, cafile: Path | None = None) -> KafkaSecurity:
        return KafkaSecurity(
            SecurityProtocol.SASL_SSL,
            username=USER,
            password=self.password if password is None else password,
            cafile=cafile or self.tls.ca,
        )

    def service_env(self, password: str | None = None) -> dict[str, str]:
        """A service's environment on its own database and topics, the password in a file (as
        Kubernetes mounts a Secret)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        password_file = self.directory / f"{name}.password"
        password_file.write_text((self.password if password is None else password) + "\n")
        return {
            "MOTCUA_ENVIRONMENT": "test",
            "MOTCUA_DATABASE_URL": self.postgres.create_database(name),
            "MOTCUA_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "MOTCUA_KAFKA_TOPIC_PREFIX": f"{name}.",
            "MOTCUA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "MOTCUA_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "MOTCUA_KAFKA_SASL_USERNAME": USER,
            "MOTCUA_KAFKA_SASL_PASSWORD_FILE": str(password_file),
            "MOTCUA_KAFKA_SSL_CAFILE": str(self.tls.ca),
        }


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecurePlatform]:
    """A broker whose only client listener is SASL_SSL (SCRAM users created when its storage
    is formatted, certificate signed by a CA made here) and a PostgreSQL of this module's own."""
    base = tmp_path_factory.mktemp("sasl-ssl")
    tls = broker_tls(base / "tls")
    password = secrets.token_hex(16)
    users = {"broker": secrets.token_hex(16), USER: password}
    guard = motcua_local.Guard()
    kafka = motcua_local.Kafka(
        base / "kafka",
        motcua_local.free_port(),
        motcua_local.free_port(),
        guard=guard,
        sasl_ssl=motcua_local.SaslSsl(tls.keystore, tls.keystore_password, tls.ca, users),
    )
    postgres = motcua_local.Postgres(base / "pg", motcua_local.free_port(), guard=guard)
    try:
        postgres.start()
        kafka.start()  # a start that fails may leave the broker running
        yield SecurePlatform(kafka, postgres, tls, password, base)
        sweep_before_stopping(None, postgres.dsn)
    finally:
        kafka.stop()
        postgres.stop()
        guard.release()


async def test_topics_producer_and_consumers_work_over_sasl_ssl(secure: SecurePlatform) -> None:
    bootstrap, security = secure.kafka.bootstrap, secure.security()
    topics = Topics(f"t{uuid.uuid4().hex[:8]}.")
    await ensure_topics(bootstrap, topics, security=security)
    assert await missing_topics(bootstrap, topics, security=security) == ()
    assert len(await partitions_of(bootstrap, topics.dossier_events, security=security)) == 8

    broker = make_broker(bootstrap, "motcua-test", security=security)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    @broker.subscriber(topics.dossier_events, group_id="g-sasl", auto_offset_reset="earliest")
    async def handle(body: bytes) -> None:
        await received.put(body)

    await broker.start()
    try:
        await broker.publish(b"dossier-1", topics.dossier_events, key=b"d1")
        assert await asyncio.wait_for(received.get(), 60) == b"dossier-1"
        await dead_letter(
            broker,
            topics,
            value=b"{}",
            key=b"d2",
            reason=DeadLetterReason.INVALID,
            detail="invalid event: <root>: missing",
            source_topic=topics.dossier_events,
            partition=0,
            offset=0,
            consumer="test",
        )
    finally:
        await broker.stop()

    # A plain aiokafka consumer, as the metrics rebuild and the tests make them.
    consumer = AIOKafkaConsumer(
        topics.dead_letter,
        **client_options(bootstrap, security),
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"d2", b"{}")


async def test_the_broker_refuses_what_is_not_sasl_ssl_with_a_known_user(
    secure: SecurePlatform,
) -> None:
    bootstrap, topics = secure.kafka.bootstrap, Topics()
    # Without TLS and SASL the listener answers nothing: the clients above were not let in
    # by a broker that lets everyone in.
    with pytest.raises(KafkaConnectionError):
        await missing_topics(bootstrap, topics, security=PLAINTEXT)

    wrong = "not-" + secure.password
    with pytest.raises(KafkaAuthenticationFailed) as refused:
        await missing_topics(bootstrap, topics, security=secure.security(password=wrong))
    message = str(refused.value)
    assert f"Kafka at {bootstrap} refused the credentials" in message
    assert "SCRAM-SHA-512 as 'motcua'" in message
    assert "MOTCUA_KAFKA_SASL_PASSWORD" in message
    assert wrong not in message and secure.password not in message

    rogue = certificate_authority(secure.directory / "rogue", "rogue")
    with pytest.raises(KafkaAuthenticationFailed, match="TLS certificate is not trusted"):
        await partitions_of(bootstrap, "any", security=secure.security(cafile=rogue))


async def test_the_services_run_over_sasl_ssl(secure: SecurePlatform, tmp_path: Path) -> None:
    env = secure.service_env()
    intake = ServiceProcess("intake", env, tmp_path)
    processing = ServiceProcess("processing", env, tmp_path)
    try:
        intake.start()
        processing.start()
        async with httpx.AsyncClient(timeout=10) as client:
            for proc in (intake, processing):
                ready = (await client.get(f"{proc.url}/readyz")).json()
                assert ready["checks"] == dict.fromkeys(
                    ("database", "kafka", "topics", "accepting"), "ok"
                ), proc.name

            # Intake's outbox relay publishes, processing consumes and publishes its status.
            unit, body = sample_submission(random.Random(14))
            response = await client.post(
                f"{intake.url}/v1/dossiers", json=body, headers=counter_token(unit)
            )
            assert response.status_code == 201, response.text
            receipt = response.json()

            async def processed() -> bool:
                seen = await client.get(
                    f"{processing.url}/v1/dossiers/{receipt['dossier_id']}",
                    headers=officer_token(receipt["competent_unit"]),
                )
                return seen.status_code == 200 and seen.json()["status_name"] == "received"

            await eventually(processed, what="the dossier processed over SASL_SSL")
    finally:
        intake.stop()
        processing.stop()
    for proc in (intake, processing):
        assert secure.password not in proc.logs()


async def test_a_service_refused_by_kafka_says_why(secure: SecurePlatform, tmp_path: Path) -> None:
    wrong = "not-" + secure.password
    # Intake serves while Kafka is away (its outbox keeps the events): ready, and it says why.
    intake = ServiceProcess("intake", secure.service_env(password=wrong), tmp_path)
    try:
        intake.start()
        async with httpx.AsyncClient(timeout=10) as client:

            async def refused() -> bool:
                checks = (await client.get(f"{intake.url}/readyz")).json()["checks"]
                return "refused the credentials" in checks["topics"]

            await eventually(refused, what="/readyz naming the refused credentials")
            checks = (await client.get(f"{intake.url}/readyz")).json()["checks"]
        assert "MOTCUA_KAFKA_SASL_USERNAME and MOTCUA_KAFKA_SASL_PASSWORD" in checks["topics"]
        assert checks["kafka"] != "ok"
    finally:
        intake.stop()
    logs = intake.logs()
    assert "kafka refused this service" in logs
    assert wrong not in logs and secure.password not in logs
