"""The naive baseline of intake: one FastAPI route, one transaction and one awaited Kafka send per
submission.

The body is the same `SubmissionIn` pydantic model and the caller the same signed token; then one
INSERT in its own transaction into a plain table, then a FastStream publish awaited until Kafka
acknowledges it (acks=all, the services' idempotent producer), then the 201. No group commit, no
outbox (the two writes are not atomic), no reception rules, no daily dossier code: it does less
than the service, only in the most direct way.

Run as `python -m bench.naive_intake --port N` with the usual MOTCUA_* settings.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
import uvicorn
from fastapi import FastAPI, Header, HTTPException

from services.intake.domain import SubmissionIn
from shared.auth import InvalidToken, verify
from shared.contract import dossier_key
from shared.ids import keyed_hash, uuid7
from shared.kafka import ensure_topics, make_broker
from shared.settings import ServiceSettings

TABLE = "naive_dossiers"
_DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    id              uuid PRIMARY KEY,
    receiving_unit  text NOT NULL,
    procedure_code  text NOT NULL,
    channel         text NOT NULL,
    applicant_name  text NOT NULL,
    body            jsonb NOT NULL,
    received_at     timestamptz NOT NULL
)"""


def create_app(settings: ServiceSettings) -> FastAPI:
    broker = make_broker(settings.kafka_bootstrap, "motcua-naive-intake")
    topic = settings.topics.dossier_events
    keys = settings.token_key_list
    hash_key = settings.id_hash_key.get_secret_value().encode()
    pool: asyncpg.Pool | None = None  # opened by the lifespan

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal pool
        await ensure_topics(settings.kafka_bootstrap, settings.topics)
        # The service's pool size: the same number of transactions can be in flight.
        pool = await asyncpg.create_pool(
            settings.database_url, min_size=1, max_size=settings.database_pool_size
        )
        assert pool is not None
        await pool.execute(_DDL)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v1/dossiers", status_code=201)
    async def submit(
        submission: SubmissionIn, authorization: Annotated[str, Header()] = ""
    ) -> dict[str, str]:
        try:
            caller = verify(authorization.removeprefix("Bearer "), keys)
        except InvalidToken as exc:
            raise HTTPException(401, str(exc)) from exc
        dossier_id, received_at = uuid7(), datetime.now(UTC)
        # Naive, but not careless: the applicant's ID never leaves in clear (as in the service).
        applicant_ref = keyed_hash(submission.applicant.id_number, hash_key)
        document = submission.model_dump(mode="json", exclude={"applicant": {"id_number"}})
        document["applicant"]["ref"] = applicant_ref
        assert pool is not None
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO {TABLE} VALUES ($1, $2, $3, $4, $5, $6, $7)",
                dossier_id,
                caller.unit,
                submission.procedure_code,
                submission.channel.value,
                submission.applicant.name,
                json.dumps(document),
                received_at,
            )
        # FastStream encodes the dict as JSON and, without no_confirm, awaits the acknowledgement.
        await broker.publish(
            {
                "event_id": str(uuid7()),
                "type": "DossierReceived",
                "occurred_at": received_at.isoformat(),
                "dossier_id": str(dossier_id),
                "receiving_unit": caller.unit,
                "payload": document,
            },
            topic,
            key=dossier_key(dossier_id),
        )
        return {"dossier_id": str(dossier_id), "received_at": received_at.isoformat()}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(
        create_app(ServiceSettings()),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
