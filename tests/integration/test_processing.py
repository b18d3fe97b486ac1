"""Processing on the real broker and database: exactly-once state under duplicates, replays,
kill -9 and rebalances; the officers' API; the overdue watch."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import shutil
import signal
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import TypeAdapter

from services.processing import domain
from shared.admin_map import latest_map_file
from shared.contract import (
    DossierOverdue,
    DossierStatusChanged,
    SupplementReceived,
    Topics,
    decode_status_event,
    new_event_fields,
)
from shared.reference import REFERENCE_DIR, load_reference
from tests.conftest import Isolated, Services
from tests.factories import (
    CAL,
    HAI_VAN,
    THU_DAU_MOT,
    db_state,
    interleave,
    lifecycles,
    produce,
    received,
)
from tests.harness import counter_token, eventually, group_caught_up, officer_token, scrape
from tools.samples import sample_submission

pytestmark = pytest.mark.integration
_stored = TypeAdapter(domain.Dossier)


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
    # Not only the counts: every dossier's state is the one the rules give for its events.
    expected = {}
    for events in per_dossier:
        dossier = None
        for event in events:
            dossier = domain.apply(dossier, event, CAL).dossier
        assert dossier is not None
        expected[dossier.id] = dossier
    conn = await asyncpg.connect(isolated.database_url)
    try:
        stored = {
            r["id"]: _stored.validate_json(r["state"])
            for r in await conn.fetch("SELECT id, state FROM processing.dossiers")
        }
    finally:
        await conn.close()
    assert stored == expected


async def test_officers_api_lists_filters_and_refuses_illegal_actions(
    isolated: Isolated, services: Services
) -> None:
    proc = services.create("processing", MOTCUA_OVERDUE_INTERVAL_S="0.3").start()
    now = datetime.now(UTC)
    fresh = [received(HAI_VAN, now - timedelta(minutes=i)) for i in range(7)]
    # Received three weeks ago with 1 working day: overdue now.
    late = received(HAI_VAN, now - timedelta(days=21), days=1)
    elsewhere = received(THU_DAU_MOT, now)
    await produce(
        isolated.platform.kafka.bootstrap,
        Topics(isolated.topic_prefix).dossier_events,
        [*fresh, late, elsewhere],
    )
    headers = officer_token(HAI_VAN)
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


async def test_the_officers_list_refuses_instants_postgresql_cannot_hold(
    services: Services,
) -> None:
    """Issue 14.4: a date or a cursor out of range is the caller's error (422), never a 500."""
    proc = services.start("processing")
    headers = officer_token(HAI_VAN)

    def cursor(at: str) -> str:
        return base64.urlsafe_b64encode(f"{at}|{uuid.uuid4()}".encode()).decode()

    async with httpx.AsyncClient(base_url=proc.url, timeout=30) as client:
        for param, value in [
            ("received_from", "0001-01-01T00:00:00+14:00"),
            ("received_to", "9999-12-31T23:59:59-14:00"),
            ("received_from", "0001-01-01T00:00:00"),
            ("cursor", cursor("0001-01-01T00:00:00+14:00")),
            ("cursor", cursor("9999-12-31T23:59:59-14:00")),
            ("cursor", "not-a-cursor"),
        ]:
            refused = await client.get("/v1/dossiers", params={param: value}, headers=headers)
            assert refused.status_code == 422, (param, value, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
            (error,) = refused.json()["errors"]
            assert error["field"] == f"query.{param}"
            assert value not in refused.text  # a submitted value is never echoed
        # The bounds themselves reach PostgreSQL and find nothing.
        for param, value in [
            ("received_from", "0001-01-02T00:00:00+14:00"),
            ("received_to", "9999-12-30T23:59:59-14:00"),
            ("cursor", cursor("0001-01-02T00:00:00+14:00")),
        ]:
            listed = await client.get("/v1/dossiers", params={param: value}, headers=headers)
            assert listed.status_code == 200, (param, value, listed.text)
            assert listed.json()["items"] == []
        apology = await client.post(
            f"/v1/dossiers/{uuid.uuid4()}/apology",
            json={"new_appointment_at": "0001-01-01T00:00:00+14:00", "reason": "quá hạn"},
            headers=headers,
        )
        assert apology.status_code == 422
        assert apology.json()["errors"][0]["field"] == "new_appointment_at"


async def test_payment_and_transfer_through_both_apis_reach_metrics(
    isolated: Isolated, services: Services
) -> None:
    """A counter and officers, each through their own API: a fee is requested, paid at the
    counter in two parts, and the dossier approved; another dossier is transferred to a unit of
    another province, which then owns it (and its place in the open gauge) and resolves it."""
    intake = services.start("intake")
    proc = services.start("processing")
    metrics = services.start("metrics")
    rng = random.Random(5)
    desk_unit, body = sample_submission(rng)
    counter = counter_token(desk_unit)
    async with (
        httpx.AsyncClient(base_url=intake.url, timeout=30) as desk,
        httpx.AsyncClient(base_url=proc.url, timeout=30) as office,
    ):
        ids = []
        for _ in range(2):
            r = await desk.post("/v1/dossiers", json=body, headers=counter)
            assert r.status_code == 201, r.text
            ids.append(r.json()["dossier_id"])
        fee, moved = ids
        unit = r.json()["competent_unit"]
        officer = officer_token(unit)
        reference = load_reference(REFERENCE_DIR)
        province = reference.units[unit].province
        to_unit = next(
            u.code
            for u in reference.units_at(datetime.now(UTC))
            if u.level == "commune" and u.province != province
        )

        async def in_processing() -> bool:
            got = [await office.get(f"/v1/dossiers/{i}", headers=officer) for i in ids]
            return all(g.status_code == 200 for g in got)

        await eventually(in_processing, what="both dossiers in processing")
        assert (await office.post(f"/v1/dossiers/{fee}/start", headers=officer)).status_code == 200
        asked = await office.post(
            f"/v1/dossiers/{fee}/payment-request",
            json={"amount_vnd": 100_000, "reason": "Lệ phí cấp giấy"},
            headers=officer,
        )
        assert asked.json()["status_name"] == "payment_requested", asked.text
        early = await office.post(
            f"/v1/dossiers/{fee}/resolution", json={"approved": True}, headers=officer
        )
        assert early.status_code == 409
        assert early.json()["detail"] == "100000 VND requested for this dossier is not paid yet"

        async def counter_sees_the_request() -> bool:
            r = await desk.get(f"/v1/dossiers/{fee}", headers=counter)
            return bool(r.json()["status_name"] == "payment_requested")

        await eventually(counter_sees_the_request, what="the counter's read model")
        for amount in (40_000, 60_000):
            paid = await desk.post(
                f"/v1/dossiers/{fee}/payment", json={"amount_vnd": amount}, headers=counter
            )
            assert paid.status_code == 202, paid.text
        bad = await desk.post(
            f"/v1/dossiers/{fee}/payment", json={"amount_vnd": 0}, headers=counter
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"

        async def paid_in_full() -> bool:
            r = await office.get(f"/v1/dossiers/{fee}", headers=officer)
            return bool(r.json()["status_name"] == "processing")

        await eventually(paid_in_full, what="payment applied")
        slip = (await office.get(f"/v1/dossiers/{fee}", headers=officer)).json()["timeline"]
        assert [t["note"] for t in slip[-3:]] == [
            "payment of 100000 VND requested: Lệ phí cấp giấy",
            "partial payment: 40000 of 100000 VND",
            "payment received: 60000 VND",
        ]
        approved = await office.post(
            f"/v1/dossiers/{fee}/resolution", json={"approved": True}, headers=officer
        )
        assert approved.json()["status_name"] == "resolved", approved.text

        unknown = await office.post(
            f"/v1/dossiers/{moved}/transfer",
            json={"to_unit": "NOPE", "reason": "liên thông"},
            headers=officer,
        )
        assert unknown.status_code == 422
        assert unknown.json()["type"].endswith("/unknown-unit")
        # Phường Hòa Hiệp Bắc's one-stop department ended with the map of 30 June 2025.
        ended = await office.post(
            f"/v1/dossiers/{moved}/transfer",
            json={"to_unit": "T48.H490.X20194", "reason": "liên thông"},
            headers=officer,
        )
        assert ended.status_code == 422
        assert ended.json()["successors"] == [
            {
                "code": "T48.X20194",
                "name": "Trung tâm Phục vụ hành chính công phường Hải Vân, Đà Nẵng",
            }
        ]
        before = (await office.get(f"/v1/dossiers/{moved}", headers=officer)).json()
        handed = await office.post(
            f"/v1/dossiers/{moved}/transfer",
            json={"to_unit": to_unit, "reason": "Liên thông cấp tỉnh"},
            headers=officer,
        )
        assert handed.status_code == 200, handed.text
        assert (await office.get(f"/v1/dossiers/{moved}", headers=officer)).status_code == 404
        theirs = await office.get(f"/v1/dossiers/{moved}", headers=officer_token(to_unit))
        after = theirs.json()
        assert (after["competent_unit"], after["receiving_unit"]) == (to_unit, desk_unit)
        assert after["appointment_at"] == before["appointment_at"]
        assert after["timeline"][-1]["note"] == (
            f"transferred from {unit} to {to_unit}: Liên thông cấp tỉnh"
        )

    async def gauge_moved() -> bool:
        samples = await scrape(metrics.url)
        return (
            samples.get(f'motcua_dossiers_open{{deadline="within",unit="{to_unit}"}}') == 1
            and samples.get(f'motcua_dossiers_open{{deadline="within",unit="{unit}"}}', 0) == 0
            and samples.get(f'motcua_dossiers_resolved_total{{decision="approved",unit="{unit}"}}')
            == 1
        )

    await eventually(gauge_moved, what="metrics follow the transfer and the approval")


async def test_a_second_supplementation_request_is_noticed_overdue_at_once(
    isolated: Isolated, services: Services
) -> None:
    """Days before its appointment, a dossier asked for a supplement twice is overdue (index
    rule): the watch reports it once, officers find it under `overdue`, may apologise, and the
    open gauge counts it overdue."""
    proc = services.create("processing", MOTCUA_OVERDUE_INTERVAL_S="0.3").start()
    metrics = services.start("metrics")
    topic = Topics(isolated.topic_prefix).dossier_events
    unit = HAI_VAN
    first = received(unit, datetime.now(UTC) - timedelta(minutes=5), days=10)
    ident = first.dossier_id
    await produce(isolated.platform.kafka.bootstrap, topic, [first])
    headers = officer_token(unit)
    async with httpx.AsyncClient(base_url=proc.url, timeout=30) as client:

        async def status_is(name: str) -> bool:
            r = await client.get(f"/v1/dossiers/{ident}", headers=headers)
            return r.status_code == 200 and r.json()["status_name"] == name

        async def ask() -> None:
            r = await client.post(
                f"/v1/dossiers/{ident}/supplement-request",
                json={"reason": "Thiếu bản sao"},
                headers=headers,
            )
            assert r.status_code == 200, r.text

        await eventually(lambda: status_is("received"), what="the dossier in processing")
        await ask()
        back = SupplementReceived(
            **new_event_fields(datetime.now(UTC), ident, unit, unit, actor="counter")
        )
        await produce(isolated.platform.kafka.bootstrap, topic, [back])
        await eventually(lambda: status_is("processing"), what="the supplement applied")
        listed = await client.get("/v1/dossiers", params={"overdue": True}, headers=headers)
        assert listed.json()["items"] == []
        await ask()

        async def notices() -> int:
            slip = (await client.get(f"/v1/dossiers/{ident}", headers=headers)).json()
            return [t["note"] for t in slip["timeline"]].count("overdue")

        # Overdue at once, but the watch (a tick every 0.3 s) waits until the dossier has been
        # quiet for MOTCUA_OVERDUE_QUIET_S (5 s): a history still arriving is not judged.
        await asyncio.sleep(1.5)
        assert await notices() == 0

        async def noticed() -> bool:
            return await notices() == 1

        await eventually(noticed, what="the watch's overdue notice")
        listed = await client.get("/v1/dossiers", params={"overdue": True}, headers=headers)
        assert [d["id"] for d in listed.json()["items"]] == [str(ident)]
        sorry = await client.post(
            f"/v1/dossiers/{ident}/apology",
            json={
                "new_appointment_at": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
                "reason": "Yêu cầu bổ sung lần hai",
            },
            headers=headers,
        )
        assert sorry.status_code == 200, sorry.text

    async def counted_overdue() -> bool:
        samples = await scrape(metrics.url)
        return (
            samples.get(f'motcua_dossiers_open{{deadline="overdue",unit="{unit}"}}') == 1
            and samples.get(f'motcua_dossiers_open{{deadline="within",unit="{unit}"}}', 0) == 0
        )

    await eventually(counted_overdue, what="the open gauge counting it overdue")
    await asyncio.sleep(1.5)  # more watch ticks: still one notice
    published = [e for e in await status_events(isolated) if e.type == "DossierOverdue"]
    assert [e.dossier_id for e in published] == [ident]


def map_with_new_communes(shipped: Path, *, valid_from: dict[str, date]) -> dict[str, Any]:
    """A newer data version of the shipped map: communes of Đà Nẵng created inside the
    two-level structure (code -> first day in force), as a later arrangement would bring them."""
    document: dict[str, Any] = json.loads(shipped.read_text(encoding="utf-8"))
    document["version"] = "2026.01.1"
    for code, day in valid_from.items():
        document["communes"].append(
            {
                "structure": "vn34",
                "code": code,
                "name": f"Phường Thử Nghiệm {code}",
                "short_name": f"Thử Nghiệm {code}",
                "type": "Phường",
                "province": "48",
                "valid_from": day.isoformat(),
            }
        )
    return document


async def test_a_new_map_data_version_is_taken_on_sighup(
    isolated: Isolated, services: Services, tmp_path: Path
) -> None:
    """Administrative geography is data: a commune created after start becomes a transfer target
    once the operator drops a new data version into maps/ and reloads, without a restart; its
    dates hold (one in force only from next month is refused); a broken file keeps the map."""
    reference = tmp_path / "reference"
    shutil.copytree(REFERENCE_DIR, reference)
    proc = services.create("processing", MOTCUA_REFERENCE_DIR=str(reference)).start()
    unit = HAI_VAN
    dossier = received(unit, datetime.now(UTC))
    await produce(
        isolated.platform.kafka.bootstrap, Topics(isolated.topic_prefix).dossier_events, [dossier]
    )
    headers = officer_token(unit)
    url = f"/v1/dossiers/{dossier.dossier_id}/transfer"
    new, coming = "T48.X99001", "T48.X99002"
    today = datetime.now(UTC).date()
    newer = map_with_new_communes(
        latest_map_file(reference / "maps"),
        valid_from={"99001": today - timedelta(days=30), "99002": today + timedelta(days=30)},
    )
    newer_file = reference / "maps" / "vietnam-2026.01.1.json"

    async def transfer(to_unit: str) -> httpx.Response:
        body = {"to_unit": to_unit, "reason": "Đơn vị mới sau sắp xếp"}
        return await client.post(url, json=body, headers=headers)

    async with httpx.AsyncClient(base_url=proc.url, timeout=30) as client:

        async def arrived() -> bool:
            r = await client.get(f"/v1/dossiers/{dossier.dossier_id}", headers=headers)
            return r.status_code == 200

        await eventually(arrived, what="the dossier in processing")
        before = await transfer(new)
        assert before.status_code == 422
        assert before.json()["type"].endswith("/unknown-unit")

        newer_file.write_text("{ broken", encoding="utf-8")
        proc.signal(signal.SIGHUP)

        async def failed() -> bool:
            return "reference reload failed" in proc.logs()

        await eventually(failed, what="the failed reload logged")
        assert (await transfer(new)).status_code == 422

        newer_file.write_text(json.dumps(newer, ensure_ascii=False), encoding="utf-8")
        proc.signal(signal.SIGHUP)

        async def reloaded() -> bool:
            return "reference reloaded" in proc.logs()

        await eventually(reloaded, what="the reload logged")
        assert "2026.01.1" in proc.logs()
        not_yet = await transfer(coming)
        assert not_yet.status_code == 422
        assert not_yet.json()["type"].endswith("/unit-not-in-force")
        assert not_yet.json()["successors"] == []
        moved = await transfer(new)
        assert moved.status_code == 200, moved.text
        assert moved.json()["competent_unit"] == new
        # The new unit's officers are known to the reloaded map, and the dossier is theirs.
        theirs = await client.get(f"/v1/dossiers/{dossier.dossier_id}", headers=officer_token(new))
        assert theirs.status_code == 200, theirs.text
