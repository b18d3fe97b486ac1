"""Each service's outbox wakes only its own relay: the shared DDL, applied by a migration of each
schema, notifies the schema's own channel, on databases migrated before it as on new ones."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from services.intake.store import MIGRATIONS as INTAKE_MIGRATIONS
from services.processing.store import MIGRATIONS as PROCESSING_MIGRATIONS
from shared.db import migrate, prepare
from shared.outbox import DDL, OutboxMessage, channel, enqueue
from tests.conftest import Isolated

pytestmark = pytest.mark.integration

OLD_CHANNEL = "motcua_outbox"  # the one channel every outbox notified before


class Listener:
    def __init__(self) -> None:
        self.heard: list[str] = []

    def __call__(self, _conn: object, _pid: int, name: str, _payload: object, /) -> None:
        self.heard.append(name)


async def heard_after_inserts(url: str, schemas: list[str]) -> list[str]:
    """The channels notified while one event is written to each schema's outbox in turn."""
    listening = await asyncpg.connect(url)
    listener = Listener()
    try:
        for name in [OLD_CHANNEL, *(channel(s) for s in schemas)]:
            await listening.add_listener(name, listener)
        for schema in schemas:
            pool = await prepare(url, schema, _migrations_of(schema), 1)
            try:
                async with pool.acquire() as conn, conn.transaction():
                    await enqueue(conn, [OutboxMessage("t", b"k", schema.encode())])
            finally:
                await pool.close()
            await asyncio.sleep(0.3)  # notifications arrive after the commit
        return listener.heard
    finally:
        await listening.close()


def _migrations_of(schema: str) -> Path:
    return {"intake": INTAKE_MIGRATIONS, "processing": PROCESSING_MIGRATIONS}[schema]


async def test_each_services_inserts_notify_its_own_channel_only(isolated: Isolated) -> None:
    heard = await heard_after_inserts(isolated.database_url, ["intake", "processing"])
    assert heard == [channel("intake"), channel("processing")]


async def test_an_outbox_migrated_before_the_shared_ddl_moves_to_its_own_channel(
    isolated: Isolated, tmp_path: Path
) -> None:
    # The schema as deployed before: every migration up to the one including the shared DDL.
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(INTAKE_MIGRATIONS.glob("*.sql")):
        if DDL.name in path.read_text():
            break
        (before / path.name).write_text(path.read_text())
    conn = await asyncpg.connect(isolated.database_url)
    try:
        assert await migrate(conn, "intake", before) == [1, 2]
        await conn.execute("INSERT INTO intake.outbox (topic, key, value) VALUES ('t', 'k', 'v')")
        # Rows written then stay, with their creation time, for the relay to publish.
        # The shared DDL's migration (3) and every one after it.
        applied = await migrate(conn, "intake", INTAKE_MIGRATIONS)
        assert applied[0] == 3 and applied == list(range(3, 3 + len(applied)))
        assert await conn.fetchval("SELECT count(*) FROM intake.outbox") == 1
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'intake.outbox'::regclass "
                "AND NOT tgisinternal"
            )
            == 1
        )
    finally:
        await conn.close()
    assert await heard_after_inserts(isolated.database_url, ["intake"]) == [channel("intake")]


async def test_a_new_schema_gets_its_whole_outbox_from_the_shared_ddl(
    isolated: Isolated, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_outbox.sql").write_text(f"\\ir {DDL}\n")
    conn = await asyncpg.connect(isolated.database_url, server_settings={"search_path": "fresh"})
    listener = Listener()
    try:
        await migrate(conn, "fresh", migrations)
        await conn.add_listener(channel("fresh"), listener)
        await enqueue(conn, [OutboxMessage("t", b"k", b"v")])
        await asyncio.sleep(0.3)
        age = await conn.fetchval("SELECT clock_timestamp() - created_at FROM fresh.outbox")
    finally:
        await conn.close()
    assert listener.heard == [channel("fresh")]
    assert age.total_seconds() >= 0
