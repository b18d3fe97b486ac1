"""`motcua import` on the real stack: whole lines or nothing, original times, safe to re-run."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import Stack
from tests.harness import REPO, eventually
from tests.pii_sweep import LEDGER
from tests.unit.test_importer import line

pytestmark = pytest.mark.integration


async def motcua(stack: Stack, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        *args,
        env={**os.environ, **stack.env.env()},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode is not None
    await asyncio.to_thread(LEDGER.typed_files, *args)
    LEDGER.said("command line output", f"motcua {args[0]}", f"{out.decode()}\n{err.decode()}")
    return proc.returncode, out.decode(), err.decode()


def history(n: int) -> list[str]:
    lines = []
    for i in range(n):
        day = 3 + i % 4  # Monday 3 to Thursday 6 July 2023
        timeline: list[dict[str, Any]] = [
            {"type": "processing_started", "at": f"2023-07-0{day}T10:00:00+07:00"}
        ]
        if i % 5 == 0:
            timeline.append(
                {"type": "withdrawn", "at": f"2023-07-0{day}T11:00:00+07:00", "reason": "rút"}
            )
        else:
            timeline.append(
                {
                    "type": "resolved",
                    "at": f"2023-07-{day + 2 * (i % 3):02d}T15:00:00+07:00",
                    "approved": True,
                    "result_electronic": i % 2 == 0,
                }
            )
        lines.append(
            line(
                received_at=f"2023-07-0{day}T09:{i % 60:02d}:00+07:00",
                code=f"T02.H024-2307{day:02d}-{i:04d}",
                timeline=timeline,
            )
        )
    return lines


async def test_import_history_then_again(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "july.jsonl"
    bad = [
        line(applicant={"kind": "citizen", "id_number": "003085001234", "name": "X"}),
        line(
            code="T02.H024-230703-9999",
            timeline=[{"type": "returned", "at": "2023-07-04T09:00:00+07:00"}],
        ),
        "{broken",
    ]
    source.write_text("\n".join([*history(50), *bad]) + "\n", encoding="utf-8")

    code, out, err = await motcua(stack, "import", str(source))
    assert code == 0, err
    assert "accepted 50, rejected 3, already imported 0" in out
    assert "100.0%" in err
    rejected = [json.loads(r) for r in (tmp_path / "july.jsonl.rejected").read_text().splitlines()]
    assert [r["line"] for r in rejected] == [51, 52, 53]
    assert "003085001234" not in (tmp_path / "july.jsonl.rejected").read_text()

    conn = await asyncpg.connect(stack.env.database_url)
    try:

        async def all_processed() -> bool:
            n = await conn.fetchval(
                "SELECT count(*) FROM processing.dossiers WHERE code LIKE 'T02.H024-2307%'"
            )
            return bool(n == 50)

        await eventually(all_processed, what="50 imported dossiers in processing")
        rows = await conn.fetch(
            "SELECT status, count(*) AS n FROM processing.dossiers "
            "WHERE code LIKE 'T02.H024-2307%' GROUP BY status"
        )
        statuses = {r["status"]: r["n"] for r in rows}
        assert statuses == {7: 10, 9: 40}  # withdrawn, resolved
        # Original times: nothing in processing is dated today.
        assert await conn.fetchval(
            "SELECT max(received_at) FROM processing.dossiers WHERE code LIKE 'T02.H024-2307%'"
        ) < await conn.fetchval("SELECT '2023-08-01'::timestamptz")
        timeline_before = await conn.fetchval("SELECT count(*) FROM processing.timeline")

        # The month shows in the index for July 2023, judged by event time.
        async with httpx.AsyncClient(base_url=stack.metrics.url, timeout=10) as client:

            async def indexed() -> bool:
                table = (
                    await client.get("/v1/index", params={"scope": "unit", "period": "2023-07"})
                ).json()
                return any(e["code"] == "T02.H024" for e in table["entries"])

            await eventually(indexed, what="T02.H024 in the July 2023 index")

        code, out, _ = await motcua(stack, "import", str(source))
        assert "accepted 0, rejected 3, already imported 50" in out
        await asyncio.sleep(2)
        assert await conn.fetchval("SELECT count(*) FROM processing.timeline") == timeline_before
    finally:
        await conn.close()
