"""Processing on the real broker and database: exactly-once state under duplicates, replays,
kill -9 and rebalances; the officers' API; the overdue watch."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from shared.contract import (
    DossierEvent,
    DossierOverdue,
    DossierStatusChanged,
    Topics,
    decode_status_event,
)
from tests.conftest import Isolated, Services
from tests.factories import lifecycle, produce, received
from tests.harness import eventually, group_caught_up, officer_token

pytestmark = pytest.mark.integration


async def db_state(url: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM processing.dossiers) AS dossiers, "
            "(SELECT count(*) FROM processing.dossiers WHERE ended_at IS NOT NULL) AS resolved, "
            "(SELECT count(*) FROM processing.timeline) AS timeline"
        )
        assert row is not None
        return int(row["dossiers"]), int(row["resolved"]), int(row["timeline"])
    finally:
        await conn.close()


async def status_events(isolated: Isolated) -> list[DossierStatusChanged | DossierOverdue]:
    consumer = AIOKafkaConsumer(
        Topics(isolated.topic_prefix).status_events,
        bootstrap_servers=isolated.platform.kafka.bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    events: list[DossierStatusChanged | DossierOverdue] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                return events
            events += [decode_status_event(r.value) for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()


def lifecycles(n: int, seed: int) -> list[list[DossierEvent]]:
    rng = random.Random(seed)
    # Recent: none of them is overdue, so the overdue watch adds nothing to the timelines.
    start = datetime.now(UTC) - timedelta(hours=12)
    return [lifecycle(rng, f"T0{rng.choice(['01', '79', '48'])}.H01", start) for _ in range(n)]


def interleave(per_dossier: list[list[DossierEvent]]) -> list[DossierEvent]:
    """All events, each dossier's in order, dossiers interleaved as on a real topic."""
    out: list[DossierEvent] = []
    for step in range(3):
        out += [events[step] for events in per_dossier]
    return out


async def test_duplicates_and_replays_change_nothing(
    isolated: Isolated, services: Services
) -> None:
    topic = Topics(isolated.topic_prefix).dossier_events
    events = interleave(lifecycles(200, seed=1))
    services.create("processing").start()
    await produce(isolated.platform.kafka.bootstrap, topic, events)

    async def done() -> bool:
        return await db_state(isolated.database_url) == (200, 200, 600)

    await eventually(done, what="200 dossiers resolved")
    # Every event again (a producer retry storm), then the whole log replayed by a new group.
    await produce(isolated.platform.kafka.bootstrap, topic, events)
    services.created[0].stop()
    services.create("processing", MOTCUA_CONSUMER_GROUP="replay").start()

    async def replay_consumed() -> bool:
        return await group_caught_up(isolated.platform.kafka.bootstrap, "replay", topic)

    await eventually(replay_consumed, what="the replaying group at the end of the log")
    assert await db_state(isolated.database_url) == (200, 200, 600)
    statuses = await status_events(isolated)
    # One status event per applied event; the graceful stop of the first instance let its relay
    # finish, so not even an at-least-once duplicate reached the topic.
    assert len({e.event_id for e in statuses}) == 600
    assert len(statuses) == 600


async def test_kill_9_mid_batch_and_two_instances_in_one_group_keep_state_exact(
    isolated: Isolated, services: Services
) -> None:
    topic = Topics(isolated.topic_prefix).dossier_events
    per_dossier = lifecycles(1500, seed=2)
    first = services.create("processing", MOTCUA_MAX_BATCH="50").start()
    second = services.create("processing", MOTCUA_MAX_BATCH="50")
    producing = asyncio.create_task(
        produce(isolated.platform.kafka.bootstrap, topic, interleave(per_dossier))
    )

    async def some_applied() -> bool:
        return (await db_state(isolated.database_url))[2] > 300

    await eventually(some_applied, what="work in flight")
    second.start()  # a rebalance in the middle of the load
    first.kill()  # kill -9 mid-batch
    await producing
    first.start()  # and back: a second rebalance
    second.stop()  # a graceful leave: a third

    async def exact() -> bool:
        return await db_state(isolated.database_url) == (1500, 1500, 4500)

    await eventually(exact, within=120, what="every dossier resolved exactly once")
    await asyncio.sleep(2)
    assert await db_state(isolated.database_url) == (1500, 1500, 4500)


async def test_officers_api_lists_filters_and_refuses_illegal_actions(
    isolated: Isolated, services: Services
) -> None:
    proc = services.create("processing", MOTCUA_OVERDUE_INTERVAL_S="0.3").start()
    now = datetime.now(UTC)
    fresh = [received("T048.H02", now - timedelta(minutes=i)) for i in range(7)]
    # Received three weeks ago with 1 working day: overdue now.
    late = received("T048.H02", now - timedelta(days=21), days=1)
    elsewhere = received("T079.H01", now)
    await produce(
        isolated.platform.kafka.bootstrap,
        Topics(isolated.topic_prefix).dossier_events,
        [*fresh, late, elsewhere],
    )
    headers = officer_token("T048.H02")
    async with httpx.AsyncClient(base_url=proc.url, timeout=30) as client:

        async def all_there() -> bool:
            r = await client.get("/v1/dossiers", params={"limit": 200}, headers=headers)
            return len(r.json()["items"]) == 8

        await eventually(all_there, what="8 dossiers listed")
        pages, cursor = [], None
        while True:
            params: dict[str, str | int] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/dossiers", params=params, headers=headers)).json()
            pages.append([d["id"] for d in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        flat = [i for p in pages for i in p]
        assert len(flat) == len(set(flat)) == 8
        overdue = (
            await client.get("/v1/dossiers", params={"overdue": True}, headers=headers)
        ).json()["items"]
        assert [d["id"] for d in overdue] == [str(late.dossier_id)]
        assert (
            await client.get(f"/v1/dossiers/{elsewhere.dossier_id}", headers=headers)
        ).status_code == 404

        target = fresh[0].dossier_id
        bad = await client.post(
            f"/v1/dossiers/{target}/resolution", json={"approved": False}, headers=headers
        )
        assert bad.status_code == 409
        assert bad.json()["detail"] == "a refusal needs a reason"
        nul = await client.post(
            f"/v1/dossiers/{target}/stop", json={"reason": "a\u0000b"}, headers=headers
        )
        assert nul.status_code == 422  # PostgreSQL text cannot hold U+0000: refused up front
        assert nul.json()["errors"] == [
            {"field": "reason", "reason": "must not contain the NUL character"}
        ]
        ok = await client.post(f"/v1/dossiers/{target}/start", headers=headers)
        assert ok.json()["status_name"] == "processing"
        again = await client.post(f"/v1/dossiers/{target}/start", headers=headers)
        assert again.status_code == 409
        assert "processing" in again.json()["detail"]
        stopped = await client.post(
            f"/v1/dossiers/{target}/stop",
            json={"reason": "Người nộp không bổ sung"},
            headers=headers,
        )
        assert stopped.json()["status_name"] == "stopped"
        assert (await client.get("/v1/dossiers", params={"status": 8}, headers=headers)).json()[
            "items"
        ][0]["id"] == str(target)

        # The overdue watch reported the late dossier once; the officer apologises.
        async def noticed() -> bool:
            slip = (await client.get(f"/v1/dossiers/{late.dossier_id}", headers=headers)).json()
            return any(t["note"] == "overdue" for t in slip["timeline"])

        await eventually(noticed, what="overdue noticed")
        new_date = (now + timedelta(days=5)).isoformat()
        sorry = await client.post(
            f"/v1/dossiers/{late.dossier_id}/apology",
            json={"new_appointment_at": new_date, "reason": "Cần xác minh thực địa"},
            headers=headers,
        )
        assert sorry.status_code == 200, sorry.text
        assert sorry.json()["apology_issued_at"] is not None
        not_late = await client.post(
            f"/v1/dossiers/{fresh[1].dossier_id}/apology",
            json={"new_appointment_at": new_date, "reason": "x"},
            headers=headers,
        )
        assert not_late.status_code == 409
    await asyncio.sleep(1.5)  # several more watch ticks
    overdue_notices = [
        e for e in await status_events(isolated) if type(e).__name__ == "DossierOverdue"
    ]
    assert [e.dossier_id for e in overdue_notices] == [late.dossier_id]
