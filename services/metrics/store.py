"""SQL of the metrics service: the only module that talks to its PostgreSQL schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from services.metrics.domain import CounterKey, DossierFacts
from services.metrics.index import Population
from shared.contract import Channel, DossierStatus, Timeliness
from shared.db import Connection

SCHEMA = "metrics"
MIGRATIONS = Path(__file__).parent / "migrations"

_FIELDS = (
    "id",
    "receiving_unit",
    "competent_unit",
    "channel",
    "status",
    "received_at",
    "appointment_at",
    "ended_at",
    "timeliness",
    "elapsed_working_days",
    "supplement_requests",
    "supplement_requested_at",
    "components_total",
    "components_digitized",
    "components_reused",
    "approved",
    "result_electronic",
    "digitized",
    "overdue",
    "satisfied",
    "rated_at",
    "last_event_at",
)
_COLUMNS = ", ".join(_FIELDS)


def _facts(row: asyncpg.Record) -> DossierFacts:
    values = {name: row[name] for name in _FIELDS}
    values["channel"] = Channel(values["channel"])
    values["status"] = DossierStatus(values["status"])
    values["timeliness"] = (
        None if values["timeliness"] is None else Timeliness(values["timeliness"])
    )
    return DossierFacts(**values)


def _row(f: DossierFacts, province_of: Callable[[str], str | None]) -> dict[str, Any]:
    return {
        "id": str(f.id),  # str: a loaded id is asyncpg's own UUID type, unknown to orjson
        "receiving_unit": f.receiving_unit,
        "competent_unit": f.competent_unit,
        "channel": f.channel.value,
        "status": int(f.status),
        "received_at": f.received_at,
        "appointment_at": f.appointment_at,
        "ended_at": f.ended_at,
        "timeliness": None if f.timeliness is None else f.timeliness.value,
        "elapsed_working_days": f.elapsed_working_days,
        "supplement_requests": f.supplement_requests,
        "supplement_requested_at": f.supplement_requested_at,
        "components_total": f.components_total,
        "components_digitized": f.components_digitized,
        "components_reused": f.components_reused,
        "approved": f.approved,
        "result_electronic": f.result_electronic,
        "digitized": f.digitized,
        "overdue": f.overdue,
        "satisfied": f.satisfied,
        "rated_at": f.rated_at,
        "last_event_at": f.last_event_at,
        # The unit code's own province, no longer read by the index (which places a unit by the
        # period: provinces.py); still written for pods of the previous version during an upgrade.
        "receiving_province": province_of(f.receiving_unit),
        "competent_province": province_of(f.competent_unit),
    }


_ALL_COLUMNS = f"{_COLUMNS}, receiving_province, competent_province"
# The batch's rows travel as one JSON document that PostgreSQL turns back into rows of the
# table's own type: orjson writes it in C, where binding 22 typed arrays cost the replay twice
# the client CPU per row (the parsing happens in the database, on the other core).
_UPSERT = (
    f"INSERT INTO dossiers ({_ALL_COLUMNS}) "
    f"SELECT {_ALL_COLUMNS} FROM json_populate_recordset(NULL::dossiers, $1::json) "
    "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{f} = EXCLUDED.{f}" for f in _FIELDS[1:])
)


async def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """One statement for the whole batch."""
    await conn.execute(_UPSERT, orjson.dumps(rows).decode())


_VERSION_COLUMNS = (
    "id, valid_from, valid_to, receiving_unit, competent_unit, receiving_province, "
    "competent_province, channel, received_at, appointment_at, ended_at, timeliness, "
    "supplement_requests, supplement_requested_at, components_reused, approved, "
    "result_electronic, digitized, satisfied, rated_at"
)


def _version_rows(
    versions: Sequence[DossierFacts], province_of: Callable[[str], str | None]
) -> list[dict[str, Any]]:
    """One dossier's new versions, each valid until the next one's event time."""
    rows = []
    for n, f in enumerate(versions):
        row = _row(f, province_of)
        row["valid_from"] = f.last_event_at
        row["valid_to"] = versions[n + 1].last_event_at if n + 1 < len(versions) else None
        rows.append(row)
    return rows


# Each dossier's latest facts, locked for the batch, and whether its current version still says
# what they say. During a rolling upgrade, pods from before migration 004 keep updating
# `dossiers` without writing versions; the new code folds from the `dossiers` row, so such a
# change would never get a version (a dossier resolved by an old pod would stay open in
# fact_versions forever): the row then first gets a catch-up version of its own.
_JUDGED_COLUMNS = _VERSION_COLUMNS.split(", ")[3:]
_KNOWN = (
    "SELECT " + ", ".join(f"d.{c}" for c in _FIELDS) + ", "
    f"d.status <> {int(DossierStatus.REFUSED_AT_RECEPTION)} AND v.id IS NULL AS unversioned, "
    "v.id IS NOT NULL AND "
    f"({', '.join(f'd.{c}' for c in _JUDGED_COLUMNS)}) IS DISTINCT FROM "
    f"({', '.join(f'v.{c}' for c in _JUDGED_COLUMNS)}) AS stale "
    "FROM dossiers d LEFT JOIN fact_versions v ON v.id = d.id AND v.valid_to IS NULL "
    "WHERE d.id = ANY($1::uuid[]) ORDER BY d.id FOR UPDATE OF d"
)


async def _add_versions(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Close each dossier's current version where its first new one begins (or replace it when
    both begin at the same instant), then insert the new ones: three statements a batch."""
    firsts: dict[str, datetime] = {}
    for row in rows:
        firsts.setdefault(row["id"], row["valid_from"])
    ids, starts = list(firsts), list(firsts.values())
    await conn.execute(
        "DELETE FROM fact_versions v USING unnest($1::uuid[], $2::timestamptz[]) AS n(id, f) "
        "WHERE v.id = n.id AND v.valid_to IS NULL AND v.valid_from = n.f",
        ids,
        starts,
    )
    await conn.execute(
        "UPDATE fact_versions v SET valid_to = n.f "
        "FROM unnest($1::uuid[], $2::timestamptz[]) AS n(id, f) "
        "WHERE v.id = n.id AND v.valid_to IS NULL",
        ids,
        starts,
    )
    await conn.execute(
        f"INSERT INTO fact_versions ({_VERSION_COLUMNS}) SELECT {_VERSION_COLUMNS} "
        "FROM json_populate_recordset(NULL::fact_versions, $1::json)",
        orjson.dumps(rows).decode(),
    )


# Until when a version can count in any period: while it is in force (until `valid_to`), and
# while its dossier's processing runs (until `ended_at`) or, ended, up to its rating. The
# expression of the `fact_versions_matters` index, written the same way for the planner to use it.
_MATTERS_UNTIL = (
    "least(coalesce(valid_to, 'infinity'::timestamptz), "
    "greatest(coalesce(ended_at, 'infinity'::timestamptz), rated_at))"
)


@dataclass(frozen=True, slots=True)
class Known:
    """A dossier's latest facts as stored, and whether its history lacks a version of them
    (written by a pod from before migration 004: see `_KNOWN`)."""

    facts: DossierFacts
    unversioned: bool  # no version at all
    stale: bool  # a current version that no longer says what the facts say


class Counting:
    """One transaction counting a batch: claim the event ids, lock and read the dossiers'
    facts, save the new facts, versions and counter sums."""

    def __init__(self, conn: Connection, province_of: Callable[[str], str | None]) -> None:
        self._conn = conn
        self._province_of = province_of

    async def claim(self, event_ids: Sequence[UUID], count: int) -> set[UUID] | None:
        """Record the ids; returns those never seen before, or None when that is all `count`
        of them (nearly always: the ids need not travel back, and decoding them was a few
        percent of a replay)."""
        fresh: list[UUID] | None = await self._conn.fetchval(
            "WITH fresh AS (INSERT INTO processed_events (event_id) "
            "SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id) "
            "SELECT CASE WHEN count(*) = $2 THEN NULL "
            "ELSE coalesce(array_agg(event_id), '{}') END FROM fresh",
            list(event_ids),
            count,
        )
        return None if fresh is None else set(fresh)

    async def known(self, dossier_ids: Sequence[UUID]) -> dict[UUID, Known]:
        """The dossiers' stored facts, locked until the transaction ends."""
        return {
            r["id"]: Known(_facts(r), r["unversioned"], r["stale"])
            for r in await self._conn.fetch(_KNOWN, list(dossier_ids))
        }

    async def save(
        self,
        facts: Sequence[DossierFacts],
        versions: Sequence[Sequence[DossierFacts]],
        sums: dict[CounterKey, int],
    ) -> None:
        """Write the dossiers' new facts, their new versions (a list per dossier, in order) and
        add the sums to the counters."""
        await _upsert(self._conn, [_row(f, self._province_of) for f in facts])
        rows = [row for one in versions for row in _version_rows(one, self._province_of)]
        if rows:
            await _add_versions(self._conn, rows)
        # Zero sums are written too: a gauge that went up and down inside one batch still
        # gets its series, as it would have across two batches.
        changed = sorted(sums.items())
        if changed:
            await self._conn.execute(
                "INSERT INTO counters (name, unit, label, value) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) "
                "ON CONFLICT (name, unit, label) DO UPDATE "
                "SET value = counters.value + EXCLUDED.value",
                [k.name for k, _ in changed],
                [k.unit for k, _ in changed],
                [k.label for k, _ in changed],
                [v for _, v in changed],
            )


class MetricsStore:
    def __init__(self, pool: asyncpg.Pool, province_of: Callable[[str], str | None]) -> None:
        self.pool = pool
        self.province_of = province_of

    @asynccontextmanager
    async def counting(self) -> AsyncIterator[Counting]:
        """One transaction: everything it saved, or nothing."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield Counting(conn, self.province_of)

    async def counters(self) -> dict[CounterKey, int]:
        rows = await self.pool.fetch("SELECT name, unit, label, value FROM counters")
        return {CounterKey(r["name"], r["unit"], r["label"]): r["value"] for r in rows}

    async def reset(self) -> None:
        """Forget everything (before a rebuild from the log)."""
        await self.pool.execute("TRUNCATE dossiers, fact_versions, counters, processed_events")

    async def latest_event_at(self) -> datetime | None:
        value: datetime | None = await self.pool.fetchval("SELECT max(last_event_at) FROM dossiers")
        return value

    async def populations(
        self, start: datetime, end: datetime, at: datetime
    ) -> dict[str, Population]:
        """The index populations of every unit for [start, end), judged at `at`: each dossier as
        its facts stood then (the period's end for a closed period, the latest event for a
        running one), so events dated after a closed period never change it. By unit code as
        received or transferred: which province a unit counts to depends on the period
        (services/metrics/provinces.py), so it is decided after the query, not stored."""
        competent = "competent_unit"
        receiving = "receiving_unit"
        # The version in force at `at`: every event dated before the period's end counts, and
        # while the period runs, every event up to the latest (dated `at`) too.
        cutoff = end if at >= end else at + timedelta(microseconds=1)
        as_of = "valid_from < $4 AND (valid_to IS NULL OR valid_to >= $4)"
        in_period = "received_at < $2 AND (ended_at IS NULL OR ended_at >= $1)"
        # Only a version in force at the judging instant, of a dossier not ended before the
        # period or rated in it, counts anywhere below: the indexed bound lets PostgreSQL skip
        # the history before the period (migration 004's `fact_versions_matters`), whatever its
        # length. (The earlier of the start and the judging instant: exact for a period not yet
        # begun at the latest event too.)
        matters = f"{_MATTERS_UNTIL} >= $5"
        processed = await self.pool.fetch(
            f"SELECT {competent} AS code, "
            f"count(*) FILTER (WHERE {in_period}) AS in_period, "
            f"count(*) FILTER (WHERE {in_period} AND ("
            "  (ended_at < $2 AND timeliness IN ('early', 'on_time')) OR "
            # Open at the judging instant: on time until the appointment, or while waiting for
            # a supplement asked for in time (its instant is the end, DOMAIN.md); never once
            # asked twice (overdue at once, index rule).
            "  ((ended_at IS NULL OR ended_at >= $2) AND supplement_requests <= 1 AND ("
            "   appointment_at >= $3 OR supplement_requested_at <= appointment_at)))) AS on_time, "
            "count(*) FILTER (WHERE approved IS NOT NULL AND ended_at >= $1 AND ended_at < $2) "
            "  AS resolved, "
            "count(*) FILTER (WHERE approved IS NOT NULL AND ended_at >= $1 AND ended_at < $2 "
            "  AND result_electronic) AS resolved_electronic, "
            "count(*) FILTER (WHERE approved IS NOT NULL AND ended_at >= $1 AND ended_at < $2 "
            "  AND digitized) AS resolved_digitized, "
            "count(*) FILTER (WHERE rated_at >= $1 AND rated_at < $2 AND NOT satisfied) "
            "  AS unsatisfied "
            f"FROM fact_versions WHERE {matters} AND received_at < $2 AND {as_of} "
            f"AND {competent} IS NOT NULL GROUP BY 1",
            start,
            end,
            at,
            cutoff,
            min(start, cutoff),
        )
        # What reception-side indicators read never changes after the reception (channel,
        # receiving unit, reused components), and a dossier received in the period exists at its
        # end (or, while it runs, by the latest event): the latest facts say it, by the
        # `dossiers_received` index. Refused at reception: in no population.
        received = await self.pool.fetch(
            f"SELECT {receiving} AS code, count(*) AS received, "
            "count(*) FILTER (WHERE channel = 'online') AS received_online, "
            "count(*) FILTER (WHERE components_reused > 0) AS received_reused "
            "FROM dossiers WHERE received_at >= $1 AND received_at < $2 "
            f"AND status <> {int(DossierStatus.REFUSED_AT_RECEPTION)} "
            f"AND {receiving} IS NOT NULL GROUP BY 1",
            start,
            end,
        )
        out: dict[str, Population] = {}
        for row in [*processed, *received]:
            population = out.setdefault(row["code"], Population())
            for name, value in dict(row).items():
                if name != "code":
                    setattr(population, name, int(value))
        return out
