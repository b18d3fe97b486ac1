"""The outbox's pure parts: how events are written, each schema's own channel and leader lock,
and the relay listening on its schema's channel only."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from shared import outbox
from shared.outbox import (
    CHANNEL_PREFIX,
    DDL,
    OutboxMessage,
    OutboxRelay,
    channel,
    columns,
    enqueue,
    insert_sql,
)

MESSAGES = [
    OutboxMessage("dossier-events", b"k1", b"v1"),
    OutboxMessage("status-events", b"k2", b"v2"),
]


class RecordingConnection:
    def __init__(self) -> None:
        self.executed: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, query: str, *args: Any) -> str:
        self.executed.append((query, args))
        return "INSERT"


def test_events_are_written_by_one_statement_in_the_callers_order() -> None:
    assert columns(MESSAGES) == (
        ["dossier-events", "status-events"],
        [b"k1", b"k2"],
        [b"v1", b"v2"],
    )
    sql = insert_sql(4)
    assert re.findall(r"\$\d+", sql) == ["$4", "$5", "$6"]
    assert "WITH ORDINALITY" in sql
    assert sql.endswith("ORDER BY i")


async def test_enqueue_writes_nothing_for_no_event_and_one_statement_otherwise() -> None:
    conn = RecordingConnection()
    await enqueue(conn, [])  # type: ignore[arg-type]
    assert conn.executed == []
    await enqueue(conn, MESSAGES)  # type: ignore[arg-type]
    assert conn.executed == [(insert_sql(1), columns(MESSAGES))]


def test_each_schema_has_its_own_channel_and_the_ddl_notifies_it() -> None:
    assert channel("intake") == "motcua_outbox_intake"
    assert channel("intake") != channel("processing")
    # The trigger names the channel from the table's schema: one definition for all services.
    assert f"pg_notify('{CHANNEL_PREFIX}' || TG_TABLE_SCHEMA, '')" in DDL.read_text()


def test_the_leader_lock_is_stable_and_per_schema() -> None:
    # Replicas of two versions of the code must elect one leader: the key never changes.
    assert outbox._leader_key("intake") == 3784130798062075677
    assert outbox._leader_key("processing") == 2255633795029538753
    assert 0 < outbox._leader_key("x") < 2**63


class LeaderConnection:
    """A database where this relay wins the lock at once and the outbox is empty."""

    def __init__(self, relay: OutboxRelay) -> None:
        self.relay = relay
        self.channels: list[str] = []
        self.closed = False

    async def fetchval(self, query: str, *args: Any) -> bool:
        assert "pg_try_advisory_lock" in query
        return True

    async def add_listener(self, name: str, callback: Any) -> None:
        self.channels.append(name)
        self.relay._stopping = True  # enough: stop before connecting to Kafka

    async def fetchrow(self, query: str) -> dict[str, Any]:
        return {"n": 0, "oldest": None, "now": datetime.now(UTC)}

    async def close(self) -> None:
        self.closed = True


async def test_the_relay_listens_on_its_own_schemas_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relay = OutboxRelay("postgresql://unused", "intake", "127.0.0.1:1", publish_gate=None)
    conn = LeaderConnection(relay)
    dsns: list[tuple[str, Any]] = []

    async def connect(dsn: str, **options: Any) -> LeaderConnection:
        dsns.append((dsn, options))
        return conn

    monkeypatch.setattr(asyncpg, "connect", connect)
    await asyncio.wait_for(relay._lead(), 5)
    assert conn.channels == ["motcua_outbox_intake"]
    assert dsns == [("postgresql://unused", {"server_settings": {"search_path": "intake"}})]
    assert conn.closed
