"""How long the index takes (`GET /v1/index`'s work: the units' populations in PostgreSQL, then
their provinces on the period's map and the league in Python) over a year of dossiers judged as
of the period's end (metrics.fact_versions), with years of history before it.

    .venv/bin/python -m bench.index_bench --dossiers 1000000 --years 3

Starts a throwaway PostgreSQL only, migrates the metrics schema, and fills it in SQL: `--dossiers`
received each year through 2025, over `--years` years, at 100 district units of 10 provinces of
the old map until 30 June 2025 and at 100 commune centers of 10 provinces of the new map from
1 July 2025, each with the versions the service would keep (received; resolved for 95 %, a third
of them late, the rest still open; rated for a third of the resolved) and its latest facts
(metrics.dossiers), then times each query a few times (the median is reported).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import asyncpg
import motcua_local

from services.metrics.index import IndexConfig, Period, league, parse_period
from services.metrics.provinces import by_province, ranking
from services.metrics.store import MIGRATIONS, SCHEMA, MetricsStore
from shared.db import prepare
from shared.reference import REFERENCE_DIR, ReferenceData, load_reference

# The new map's first day (Vietnam time): receptions move from the old units to the new.
NEW_MAP_FROM = datetime.fromisoformat("2025-07-01T00:00:00+07:00")

# One dossier's versions: received at r (open), then ended one to nine days later (a third of
# them past the appointment), then rated for a third of those. 5 % stay open.
_FILL = """
WITH received AS (
    SELECT n,
           md5(n::text)::uuid AS id,
           timestamptz '2025-01-01 08:00+07' - ($2::int - 1) * interval '365 days'
             + (n::float / $1::int * 364) * interval '1 day' AS r
    FROM generate_series(1, $1::int * $2::int) AS n
), units AS (
    SELECT n, id, r,
           CASE WHEN r < $5 THEN ($3::text[])[1 + n % 100] ELSE ($4::text[])[1 + n % 100] END
             AS unit
    FROM received
), d AS (
    -- The province column is the code's own (T{pp}...), as the service writes it.
    SELECT n, id, r, unit, substr(unit, 2, 2) AS province FROM units
)
INSERT INTO fact_versions (id, valid_from, valid_to, receiving_unit, competent_unit,
    receiving_province, competent_province, channel, received_at, appointment_at, ended_at,
    timeliness, supplement_requests, supplement_requested_at, components_reused, approved,
    result_electronic, digitized, satisfied, rated_at)
SELECT id, r, CASE WHEN n % 20 = 0 THEN NULL ELSE r + (1 + n % 9) * interval '1 day' END,
       unit, unit, province, province, (ARRAY['online', 'in_person', 'postal'])[1 + n % 3],
       r, r + interval '5 days', NULL::timestamptz, NULL::text, 0, NULL::timestamptz, n % 2,
       NULL::boolean, false, false, NULL::boolean, NULL::timestamptz
FROM d
UNION ALL
SELECT id, r + (1 + n % 9) * interval '1 day',
       CASE WHEN n % 3 = 0 THEN r + (1 + n % 9) * interval '1 day' + interval '2 hours' END,
       unit, unit, province, province, (ARRAY['online', 'in_person', 'postal'])[1 + n % 3],
       r, r + interval '5 days', r + (1 + n % 9) * interval '1 day',
       CASE WHEN 1 + n % 9 > 5 THEN 'late' ELSE 'early' END, 0, NULL, n % 2, true,
       n % 4 <> 0, n % 4 <> 0 AND n % 3 <> 0, NULL, NULL
FROM d WHERE n % 20 <> 0
UNION ALL
SELECT id, r + (1 + n % 9) * interval '1 day' + interval '2 hours', NULL,
       unit, unit, province, province, (ARRAY['online', 'in_person', 'postal'])[1 + n % 3],
       r, r + interval '5 days', r + (1 + n % 9) * interval '1 day',
       CASE WHEN 1 + n % 9 > 5 THEN 'late' ELSE 'early' END, 0, NULL, n % 2, true,
       n % 4 <> 0, n % 4 <> 0 AND n % 3 <> 0, n % 5 <> 0,
       r + (1 + n % 9) * interval '1 day' + interval '2 hours'
FROM d WHERE n % 20 <> 0 AND n % 3 = 0
"""
# Each dossier's latest facts: its current version.
_FILL_DOSSIERS = """
INSERT INTO dossiers (id, receiving_unit, competent_unit, receiving_province, competent_province,
    channel, status, received_at, appointment_at, ended_at, timeliness, elapsed_working_days,
    supplement_requests, supplement_requested_at, components_total, components_digitized,
    components_reused, approved, result_electronic, digitized, overdue, satisfied, rated_at,
    last_event_at)
SELECT id, receiving_unit, competent_unit, receiving_province, competent_province, channel,
       CASE WHEN ended_at IS NULL THEN 4 ELSE 9 END, received_at, appointment_at, ended_at,
       timeliness, NULL, supplement_requests, supplement_requested_at, 1, 1, components_reused,
       approved, result_electronic, digitized, false, satisfied, rated_at, valid_from
FROM fact_versions WHERE valid_to IS NULL
"""


def bench_units(reference: ReferenceData) -> tuple[list[str], list[str]]:
    """100 district units of the old map (10 in each of its first 10 provinces with as many),
    and 100 commune centers of the new map likewise: real codes, as the service receives them."""
    old: list[str] = []
    new: list[str] = []
    for found, day, level in ((old, date(2025, 6, 30), "district"), (new, NEW_MAP_FROM, "commune")):
        units = sorted(
            (u for u in reference.units_at(day) if u.level == level), key=lambda u: u.code
        )
        by_province: dict[str, list[str]] = {}
        for unit in units:
            by_province.setdefault(unit.province, []).append(unit.code)
        for province in [p for p in sorted(by_province) if len(by_province[p]) >= 10][:10]:
            found.extend(by_province[province][:10])
    return old, new


async def measure(dossiers: int, years: int, repeat: int, explain: bool) -> dict[str, float]:
    reference = load_reference(REFERENCE_DIR)
    base = Path(tempfile.mkdtemp(prefix="motcua-index-bench-"))
    postgres = motcua_local.Postgres(base / "postgres", motcua_local.free_port())
    postgres.start()
    try:
        url = postgres.create_database("index_bench")
        pool = await prepare(url, SCHEMA, MIGRATIONS, 2)
        try:
            started = time.perf_counter()
            old, new = bench_units(reference)
            await pool.execute(_FILL, dossiers, years, old, new, NEW_MAP_FROM)
            await pool.execute(_FILL_DOSSIERS)
            # As autovacuum leaves a table that has been in use a while.
            await pool.execute("VACUUM ANALYZE fact_versions")
            await pool.execute("VACUUM ANALYZE dossiers")
            versions = await pool.fetchval("SELECT count(*) FROM fact_versions")
            print(
                f"filled {versions} versions of {dossiers * years} dossiers ({years} years) in "
                f"{time.perf_counter() - started:.1f} s"
            )
            store = MetricsStore(pool, reference.province_of)
            config = IndexConfig.load()
            latest = datetime.fromisoformat("2026-01-15T00:00:00+07:00")
            cases: dict[str, tuple[Literal["unit", "province"], str]] = {
                "2025, provinces (closed year)": ("province", "2025"),
                "2025, units (closed year)": ("unit", "2025"),
                "2025-Q2, provinces (closed quarter)": ("province", "2025-Q2"),
                "2026, provinces (running year, to 15 January)": ("province", "2026"),
            }
            if years >= 2:
                cases[f"{2026 - years}, provinces (the oldest year)"] = (
                    "province",
                    str(2026 - years),
                )
                cases[f"{2026 - years}-Q2, provinces (the oldest year's Q2)"] = (
                    "province",
                    f"{2026 - years}-Q2",
                )
            if explain:
                await _explain(pool, store, parse_period("2025"), latest)
            out: dict[str, float] = {}
            for name, (scope, label) in cases.items():
                period = parse_period(label)
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    # As services/metrics/workflow.standings: units, then their provinces.
                    on = ranking(reference, period)
                    populations = await store.populations(
                        period.start, period.end, min(period.end, latest)
                    )
                    if scope == "province":
                        populations = by_province(populations, reference, on)
                    league(populations, config)
                    times.append(time.perf_counter() - t0)
                out[name] = statistics.median(times)
                print(f"{name}: median {out[name] * 1000:.0f} ms of {repeat}", flush=True)
            return out
        finally:
            await pool.close()
    finally:
        postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


async def _explain(
    pool: asyncpg.Pool, store: MetricsStore, period: Period, latest: datetime
) -> None:
    """Print PostgreSQL's plans of the index's queries for `period` (with their timings)."""
    statements: list[tuple[str, tuple[object, ...]]] = []

    class Spy:
        async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
            statements.append((sql, args))
            return []

    spying = MetricsStore(Spy(), store.province_of)  # type: ignore[arg-type]
    await spying.populations(period.start, period.end, min(period.end, latest))
    for sql, args in statements:
        for row in await pool.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args):
            print(row[0])
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", dest="dossiers", type=int, default=1_000_000, help="a year")
    parser.add_argument("--years", type=int, default=3, help="years of history, ending in 2025")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--explain", action="store_true", help="print the plans for 2025")
    args = parser.parse_args()
    asyncio.run(measure(args.dossiers, args.years, args.repeat, args.explain))


if __name__ == "__main__":
    main()
