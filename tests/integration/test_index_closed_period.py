"""A closed period's index never moves (invariant 9): each dossier is judged on its facts as they
stood at the period's end, in PostgreSQL, whatever came after, after a restart or a rebuild.

Period: 2026-Q2 (1 April – 30 June 2026, Asia/Ho_Chi_Minh); June and July 2026 have no public
holiday. Each dossier has a unit of its own, so each unit's 2.1 rate is that dossier's verdict.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.metrics.domain import StatusEvent, fold
from services.metrics.index import IndexConfig, Population, league, parse_period
from services.metrics.store import (
    _COLUMNS,
    MIGRATIONS,
    SCHEMA,
    MetricsStore,
    _facts,
    _row,
    _upsert,
)
from services.metrics.workflow import count_events
from services.processing import domain
from shared.contract import (
    DossierEvent,
    DossierRated,
    DossierResolved,
    DossierStopped,
    DossierTransferred,
    DossierWithdrawn,
    PaymentReceived,
    PaymentRequested,
    ResultDigitized,
    SupplementReceived,
    SupplementRequested,
    new_event_fields,
)
from shared.db import Connection, prepare
from tests.conftest import Isolated
from tests.factories import Overdue, received, status_events

pytestmark = pytest.mark.integration
Q2 = parse_period("2026-Q2")
Q3 = parse_period("2026-Q3")
CONFIG = IndexConfig.load()
# Each case's own unit: a commune center of Hà Nội on the map in force in 2026, so each unit's
# 2.1 rate is that case's verdict (the store takes unit codes as they come).
U = {
    "Q2A": "T01.X00004",
    "Q2B": "T01.X00008",
    "Q2C": "T01.X00025",
    "Q2D": "T01.X00070",
    "Q2E": "T01.X00082",
    "Q2F": "T01.X00091",
    "Q2G": "T01.X00097",
    "Q3X": "T01.X00103",
    "Q2R": "T01.X00118",
    "Q2S": "T01.X00127",
    "Q2T": "T01.X00136",
    "Q2U": "T01.X00145",
    "Q2V": "T01.X00160",
    "P0": "T01.X00166",
    "P1": "T01.X00175",
    "P2": "T01.X00190",
    "P3": "T01.X00199",
}


def at(m: int, d: int, h: int = 10) -> datetime:
    return datetime(2026, m, d, h, tzinfo=Q2.start.tzinfo)


class Life:
    """One dossier's events, in time order, as counters, officers and the overdue watch would
    produce them."""

    def __init__(self, unit: str, when: datetime, days: int) -> None:
        self.unit = unit
        self.first = received(unit, when, days=days)
        self.events: list[DossierEvent | Overdue] = [self.first]

    def _fields(self, when: datetime) -> dict[str, object]:
        return new_event_fields(when, self.first.dossier_id, self.unit, self.unit, actor="o")

    def ask(self, when: datetime) -> Life:
        self.events.append(SupplementRequested(**self._fields(when), payload={"reason": "thiếu"}))
        return self

    def back(self, when: datetime) -> Life:
        self.events.append(SupplementReceived(**self._fields(when)))
        return self

    def resolve(self, when: datetime, electronic: bool = True) -> Life:
        payload = {"approved": True, "result_electronic": electronic}
        self.events.append(DossierResolved(**self._fields(when), payload=payload))
        return self

    def digitize(self, when: datetime) -> Life:
        self.events.append(ResultDigitized(**self._fields(when)))
        return self

    def stop(self, when: datetime) -> Life:
        self.events.append(DossierStopped(**self._fields(when), payload={"reason": "dừng"}))
        return self

    def transfer(self, when: datetime, to_unit: str) -> Life:
        payload = {"to_unit": to_unit, "reason": "liên thông"}
        self.events.append(DossierTransferred(**self._fields(when), payload=payload))
        return self

    def rate(self, when: datetime, satisfied: bool) -> Life:
        self.events.append(DossierRated(**self._fields(when), payload={"satisfied": satisfied}))
        return self

    def withdraw(self, when: datetime) -> Life:
        self.events.append(DossierWithdrawn(**self._fields(when), payload={"reason": "rút"}))
        return self

    def bill(self, when: datetime) -> Life:
        payload = {"amount_vnd": 50_000, "reason": "lệ phí"}
        self.events.append(PaymentRequested(**self._fields(when), payload=payload))
        return self

    def pay(self, when: datetime) -> Life:
        self.events.append(PaymentReceived(**self._fields(when), payload={"amount_vnd": 50_000}))
        return self

    def overdue(self, when: datetime) -> Life:
        self.events.append(Overdue(when))
        return self


def lives() -> dict[str, Life]:
    return {
        # Received Monday 22 June, 3 working days: due Thursday 25 June, open on 30 June, so
        # overdue at Q2's end. In July a supplementation request, and the supplement back after
        # 10 working days, push its appointment to 9 July: judged on that, it looked on time.
        U["Q2A"]: Life(U["Q2A"], at(6, 22), 3).ask(at(7, 2)).back(at(7, 16)),
        # Due 6 July (10 working days), one request 24 → 25 June (due 7 July): on time at Q2's end.
        # A second request in July makes it overdue from then on, not in Q2.
        U["Q2B"]: Life(U["Q2B"], at(6, 22), 10).ask(at(6, 24)).back(at(6, 25)).ask(at(7, 2)),
        # Late at Q2's end and resolved in July after a pause that moved its appointment past the
        # end: still late in Q2.
        U["Q2C"]: Life(U["Q2C"], at(6, 22), 3).ask(at(7, 2)).back(at(7, 16)).resolve(at(7, 17)),
        # Waiting at Q2's end for a supplement asked in time in March; stopped in August, the
        # request's instant (March) becomes its end. In Q2 it was open, waiting, on time: it
        # stays in Q2's population.
        U["Q2D"]: Life(U["Q2D"], at(3, 23), 5).ask(at(3, 24)).stop(at(8, 3)),
        # Overdue at Q2's end at unit Q2E, transferred to Q2F in July: Q2's verdict stays Q2E's.
        U["Q2E"]: Life(U["Q2E"], at(6, 1), 3).transfer(at(7, 6), U["Q2F"]),
        # Resolved in June with a paper result, the result digitized in July: not digitized
        # in Q2 (4.1 and 4.2 judge Q2's resolutions as they stood at its end).
        # Received on 1 July: Q2 is over once it is known (judged at its end from then on).
        U["Q3X"]: Life(U["Q3X"], at(7, 1, 9), 3),
        U["Q2G"]: Life(U["Q2G"], at(6, 1), 3)
        .resolve(at(6, 3), electronic=False)
        .digitize(at(7, 6)),
    }


Events = list[StatusEvent]


def split(per_dossier: list[Events], before: datetime) -> tuple[Events, Events]:
    early = [e for events in per_dossier for e in events if e.occurred_at < before]
    late = [e for events in per_dossier for e in events if e.occurred_at >= before]
    return early, late


def table(populations: dict[str, Population]) -> list[tuple[str, float, dict[str, float]]]:
    return [(s.code, s.total, s.indicators) for s in league(populations, CONFIG)]


async def q2(store: MetricsStore) -> dict[str, Population]:
    latest = await store.latest_event_at()
    assert latest is not None
    return await store.populations(Q2.start, Q2.end, min(Q2.end, latest))


async def test_q2_is_judged_at_its_end(isolated: Isolated) -> None:
    per_dossier = [status_events(life.events) for life in lives().values()]
    early, late = split(per_dossier, at(7, 1, 12))
    pool = await prepare(isolated.database_url, SCHEMA, MIGRATIONS, 2)
    try:
        store = MetricsStore(pool, lambda unit: unit.split(".")[0])
        await count_events(store, early)
        before = await q2(store)
        await count_events(store, late)
        after = await q2(store)
        q3 = await store.populations(Q3.start, Q3.end, at(8, 3))
    finally:
        await pool.close()

    # Hand-judged at 1 July 00:00.
    on_time = {code: p.on_time for code, p in after.items() if p.in_period}
    in_period = {code: p.in_period for code, p in after.items() if p.in_period}
    assert in_period == dict.fromkeys(
        [U["Q2A"], U["Q2B"], U["Q2C"], U["Q2D"], U["Q2E"], U["Q2G"]], 1
    )
    assert on_time == {
        U["Q2A"]: 0,  # overdue on 30 June
        U["Q2B"]: 1,  # one request, due 7 July
        U["Q2C"]: 0,  # overdue on 30 June
        U["Q2D"]: 1,  # waiting for a supplement asked in time
        U["Q2E"]: 0,  # due 4 June, open
        U["Q2G"]: 1,  # resolved 3 June, due 4 June: early
    }
    assert U["Q2F"] not in after
    assert (after[U["Q2G"]].resolved, after[U["Q2G"]].resolved_digitized) == (1, 0)
    assert table(after) == table(before)
    # A running period is judged on the latest facts: in Q3 the transfer made Q2E's dossier
    # Q2F's, and the second request made Q2B's late.
    assert U["Q2E"] not in q3
    assert q3[U["Q2F"]].in_period == 1
    assert q3[U["Q2B"]].on_time == 0


async def test_restart_and_rebuild_give_the_same_table(isolated: Isolated) -> None:
    per_dossier = [status_events(life.events) for life in lives().values()]
    everything = [e for events in per_dossier for e in events]
    pool = await prepare(isolated.database_url, SCHEMA, MIGRATIONS, 2)
    try:
        store = MetricsStore(pool, lambda unit: unit.split(".")[0])
        for event in everything:  # one event a batch, as a slow live consumer sees them
            await count_events(store, [event])
        live = table(await q2(store))
        # A restart: a new store on the same database, duplicates redelivered.
        restarted = MetricsStore(pool, lambda unit: unit.split(".")[0])
        await count_events(restarted, everything)
        after_restart = table(await q2(restarted))
        # A rebuild: everything forgotten, then the whole log in one batch.
        await restarted.reset()
        await count_events(restarted, everything)
        rebuilt = table(await q2(restarted))
        versions = await pool.fetchval("SELECT count(*) FROM fact_versions")
    finally:
        await pool.close()
    assert live == after_restart == rebuilt
    assert live  # not vacuous
    assert versions > len(per_dossier)


async def test_facts_counted_before_versions_keep_their_index(isolated: Isolated) -> None:
    # A database from before migration 004: its dossiers get one version since reception.
    per_dossier = [status_events(life.events) for life in lives().values()]
    pool = await prepare(isolated.database_url, SCHEMA, MIGRATIONS, 2)
    try:
        store = MetricsStore(pool, lambda unit: unit.split(".")[0])
        await count_events(store, [e for events in per_dossier for e in events])
        await pool.execute("DELETE FROM fact_versions")
        sql = (MIGRATIONS / "004_fact_versions.sql").read_text()
        insert = sql.index("INSERT INTO fact_versions")
        await pool.execute(sql[insert : sql.index(";", insert) + 1])
        rows = await pool.fetch("SELECT id, valid_from, received_at, valid_to FROM fact_versions")
    finally:
        await pool.close()
    assert len(rows) == len(per_dossier)
    assert all(r["valid_from"] == r["received_at"] and r["valid_to"] is None for r in rows)


async def _old_pod_apply(conn: Connection, events: Events) -> None:
    """What a metrics pod from before migration 004 does, still running during a rollout: it
    folds each dossier from its `dossiers` row and writes the row, never a version."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO processed_events (event_id) SELECT unnest($1::uuid[])",
            [e.event_id for e in events],
        )
        by_dossier: dict[object, Events] = {}
        for event in events:
            by_dossier.setdefault(event.dossier_id, []).append(event)
        known = {
            r["id"]: _facts(r)
            for r in await conn.fetch(
                f"SELECT {_COLUMNS} FROM dossiers WHERE id = ANY($1::uuid[]) FOR UPDATE",
                list(by_dossier),
            )
        }
        rows = []
        for dossier_id, dossier_events in by_dossier.items():
            facts, _ = fold(known.get(dossier_id), list(dossier_events))
            rows.append(_row(facts, lambda unit: unit.split(".")[0]))
        await _upsert(conn, rows)


async def test_changes_by_pods_without_versions_are_caught_up(isolated: Isolated) -> None:
    # A rolling upgrade: migration 004 has run, old pods still count some events.
    # Q2R's dossier is received by a new pod, resolved on time by an old one (3 June, due 4
    # June); Q2S's is received and resolved by old pods only. A new pod then counts July events.
    r = status_events(
        Life(U["Q2R"], at(6, 1), 3).resolve(at(6, 3), electronic=False).digitize(at(7, 6)).events
    )
    s = status_events(
        Life(U["Q2S"], at(6, 1), 3).resolve(at(6, 3), electronic=False).digitize(at(7, 6)).events
    )
    # Q2T's is changed by old pods only after a new pod received it (a request after its
    # appointment, the supplement back) and never again by a new pod: its version stays as it
    # was (a catch-up happens on a dossier's next event; a rebuild after the rollout is exact),
    # which here gives the same verdict (overdue on 4 June, open).
    t = status_events(Life(U["Q2T"], at(6, 1), 3).ask(at(6, 8)).back(at(6, 9)).events)
    pool = await prepare(isolated.database_url, SCHEMA, MIGRATIONS, 2)
    try:
        store = MetricsStore(pool, lambda unit: unit.split(".")[0])
        await count_events(store, [r[0], t[0]])
        async with pool.acquire() as conn:
            await _old_pod_apply(conn, [r[1], *s[:2], *t[1:]])
        await count_events(store, [r[2], s[2]])
        caught_up = await q2(store)
        await store.reset()  # the exact versions, from the log
        await count_events(store, [*r, *s, *t])
        rebuilt = await q2(store)
    finally:
        await pool.close()
    assert {code: (p.in_period, p.on_time, p.resolved) for code, p in caught_up.items()} == {
        U["Q2R"]: (1, 1, 1),  # resolved early in Q2, not still open
        U["Q2S"]: (1, 1, 1),  # in Q2's population at all
        U["Q2T"]: (1, 0, 0),  # never touched again by a new pod: its version is right anyway
    }
    assert table(caught_up) == table(rebuilt)


async def test_receptions_count_from_the_latest_facts(isolated: Isolated) -> None:
    # Reception-side indicators read what never changes after the reception, from `dossiers`:
    # a dossier an old pod received (no version at all, no later event) is received in Q2 too.
    u = status_events(Life(U["Q2U"], at(6, 1), 3).events)
    pool = await prepare(isolated.database_url, SCHEMA, MIGRATIONS, 2)
    try:
        store = MetricsStore(pool, lambda unit: unit.split(".")[0])
        await count_events(store, status_events(Life(U["Q2V"], at(7, 1), 3).events))  # Q2 is over
        async with pool.acquire() as conn:
            await _old_pod_apply(conn, u)
        populations = await q2(store)
    finally:
        await pool.close()
    assert (populations[U["Q2U"]].received, populations[U["Q2U"]].received_online) == (1, 1)


async def test_the_index_can_skip_the_history_before_the_period(isolated: Isolated) -> None:
    # The as-of query states the bound of migration 004's index the same way, so PostgreSQL can
    # use it (seq scans off: on a table this small it would rather read it all).
    statements: list[tuple[str, tuple[object, ...]]] = []

    class Spy:
        async def fetch(self, sql: str, *args: object) -> list[object]:
            statements.append((sql, args))
            return []

    spy = MetricsStore(Spy(), lambda unit: unit)  # type: ignore[arg-type]
    await spy.populations(Q2.start, Q2.end, Q2.end)
    pool = await prepare(isolated.database_url, SCHEMA, MIGRATIONS, 1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET enable_seqscan = off")
            plans = [
                "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))
                for sql, args in statements
            ]
    finally:
        await pool.close()
    assert "fact_versions_matters" in plans[0], plans[0]
    assert "dossiers_received" in plans[1], plans[1]


# --------------------------------------------------------------------------- property

UNITS = (U["P1"], U["P2"], U["P3"])
STEPS = (
    "ask",
    "back",
    "resolve",
    "resolve_paper",
    "digitize",
    "stop",
    "transfer",
    "rate_satisfied",
    "rate_unsatisfied",
    "withdraw",
    "bill",
    "pay",
    "overdue",
)


@st.composite
def histories(draw: st.DrawFn) -> list[Events]:
    """Random dossiers received in June and July, with random officers', counters' and the
    overdue watch's steps (those the state machine refuses are left out), as their status
    events; a step may come at the same instant as the one before."""
    out = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        # Mostly around Q2's end, where later events could move it.
        hours = draw(st.integers(min_value=-24 * 40, max_value=24 * 10))
        when = Q2.end + timedelta(hours=hours)
        life = Life(draw(st.sampled_from(UNITS)), when, draw(st.sampled_from([1, 3, 5, 10])))
        for step in draw(st.lists(st.sampled_from(STEPS), max_size=8)):
            gap = st.integers(min_value=1, max_value=24 * 8)
            when += timedelta(hours=draw(st.one_of(st.just(0), gap)))
            before = list(life.events)
            if step.startswith("rate"):
                life.rate(when, satisfied=step == "rate_satisfied")
            elif step in ("withdraw", "bill", "pay", "overdue"):
                getattr(life, step)(when)
            elif step == "ask":
                life.ask(when)
            elif step == "back":
                life.back(when)
            elif step in ("resolve", "resolve_paper"):
                life.resolve(when, electronic=step == "resolve")
            elif step == "digitize":
                life.digitize(when)
            elif step == "stop":
                life.stop(when)
            else:
                others = [u for u in UNITS if u != life.unit]
                life.transfer(when, draw(st.sampled_from(others)))
            try:
                status_events(life.events)
            except domain.Rejected:
                life.events = before
        out.append(status_events(life.events))
    return out


async def _closed_q2_never_moves(
    url: str, per_dossier: list[Events], split_after: timedelta, batch: int
) -> None:
    # A dossier received just after Q2's end: Q2 is closed in what is known before the split.
    sentinel = status_events(Life(U["P0"], Q2.end + timedelta(hours=1), 3).events)
    everything = sorted(
        [*sentinel, *(e for events in per_dossier for e in events)], key=lambda e: e.occurred_at
    )
    early, late = split([everything], Q2.end + timedelta(hours=2) + split_after)
    pool = await prepare(url, SCHEMA, MIGRATIONS, 2)
    try:
        store = MetricsStore(pool, lambda unit: unit.split(".")[0])
        await store.reset()
        await count_events(store, early)
        before = table(await q2(store))
        for n in range(0, len(late), batch):  # later events, in batches of any size
            await count_events(store, late[n : n + batch])
        after = table(await q2(store))
        await store.reset()  # a rebuild: the whole log again, in one batch
        await count_events(store, everything)
        rebuilt = table(await q2(store))
    finally:
        await pool.close()
    assert before == after == rebuilt


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    per_dossier=histories(),
    split_after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
    batch=st.integers(min_value=1, max_value=5),
)
def test_a_closed_period_never_moves(
    isolated: Isolated, per_dossier: list[Events], split_after: timedelta, batch: int
) -> None:
    asyncio.run(_closed_q2_never_moves(isolated.database_url, per_dossier, split_after, batch))
