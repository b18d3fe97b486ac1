"""`motcua simulate`: counters and officers of many units at work, over the real HTTP APIs.

Counters submit dossiers (valid personal IDs and tax codes, realistic channels and procedures) at a
steady rate; officers of the competent units act on them through the processing API after short
delays (time is compressed: a working day of a dossier's life takes seconds), some asking for a
supplement, some refusing, some late, digitizing results; applicants rate at the counter. It can
also write a month of the same traffic as a historical import file instead.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from services.intake.samples import sample_submission
from shared.auth import mint
from shared.calendar import LOCAL_TZ, WorkingCalendar
from shared.progress import Progress
from shared.reference import REFERENCE_DIR, load_reference


@dataclass
class Outcome:
    counts: Counter[str] = field(default_factory=Counter)

    def note(self, what: str) -> None:
        self.counts[what] += 1


@dataclass(frozen=True)
class Plan:
    """What will happen to one dossier: decided up front from the seed, so runs are repeatable."""

    supplement: bool
    approve: bool
    electronic: bool
    digitize_later: bool
    rating: bool | None
    withdraw: bool


def plan_for(rng: random.Random) -> Plan:
    return Plan(
        supplement=rng.random() < 0.15,
        approve=rng.random() < 0.9,
        electronic=rng.random() < 0.55,
        digitize_later=rng.random() < 0.3,
        rating=None if rng.random() < 0.3 else rng.random() < 0.85,
        withdraw=rng.random() < 0.03,
    )


class Simulation:
    def __init__(
        self, intake: str, processing: str, *, key: str, seed: int, units: int, pace: float
    ) -> None:
        self.rng = random.Random(seed)
        self.key = key
        self.pace = pace  # seconds of simulation per working step
        self.outcome = Outcome()
        self.intake = httpx.AsyncClient(base_url=intake, timeout=30)
        self.processing = httpx.AsyncClient(base_url=processing, timeout=30)
        reference = load_reference(REFERENCE_DIR)
        pool = sorted(reference.units)
        self.units = set(self.rng.sample(pool, min(units, len(pool))))

    def _token(self, unit: str, role: str) -> dict[str, str]:
        token = mint(
            self.key,
            unit=unit,
            role="counter" if role == "counter" else "officer",
            subject=f"sim-{role}-{unit}",
        )
        return {"Authorization": f"Bearer {token}"}

    async def close(self) -> None:
        await self.intake.aclose()
        await self.processing.aclose()

    async def _wait_known(self, dossier: str, unit: str) -> bool:
        for _ in range(100):
            r = await self.processing.get(f"/v1/dossiers/{dossier}", headers=self._token(unit, "o"))
            if r.status_code == 200:
                return True
            await asyncio.sleep(0.1)
        return False

    async def _counter_after(
        self, dossier: str, unit: str, action: str, status: str, body: dict[str, Any] | None = None
    ) -> bool:
        """A counter action once the counter's view shows the status (it follows processing)."""
        for _ in range(100):
            seen = await self.intake.get(
                f"/v1/dossiers/{dossier}", headers=self._token(unit, "counter")
            )
            if seen.json().get("status_name") == status:
                r = await self.intake.post(
                    f"/v1/dossiers/{dossier}/{action}",
                    json=body,
                    headers=self._token(unit, "counter"),
                )
                return r.status_code == 202
            await asyncio.sleep(0.1)
        return False

    async def life(self, unit: str, body: dict[str, Any], plan: Plan) -> None:
        response = await self.intake.post(
            "/v1/dossiers", json=body, headers=self._token(unit, "counter")
        )
        if response.status_code != 201:
            self.outcome.note(f"refused {response.status_code}")
            return
        self.outcome.note("received")
        receipt = response.json()
        dossier, competent = receipt["dossier_id"], receipt["competent_unit"]
        officer = self._token(competent, "officer")
        if not await self._wait_known(dossier, competent):
            self.outcome.note("not seen by processing")
            return
        await asyncio.sleep(self.pace * self.rng.random())
        if plan.withdraw:
            await self.intake.post(
                f"/v1/dossiers/{dossier}/withdrawal",
                json={"reason": "Người nộp rút hồ sơ"},
                headers=self._token(unit, "counter"),
            )
            self.outcome.note("withdrawn")
            return
        await self.processing.post(f"/v1/dossiers/{dossier}/start", headers=officer)
        if plan.supplement:
            await self.processing.post(
                f"/v1/dossiers/{dossier}/supplement-request",
                json={"reason": "Bổ sung bản sao có chứng thực"},
                headers=officer,
            )
            await asyncio.sleep(self.pace * self.rng.random())
            if await self._counter_after(dossier, unit, "supplement", "supplement_requested"):
                self.outcome.note("supplemented")
            await self._wait_status(dossier, competent, "processing")
        await asyncio.sleep(self.pace * self.rng.random())
        resolution = {
            "approved": plan.approve,
            "result_electronic": plan.electronic,
            "reason": None if plan.approve else "Không đủ điều kiện theo quy định",
        }
        r = await self.processing.post(
            f"/v1/dossiers/{dossier}/resolution", json=resolution, headers=officer
        )
        if r.status_code != 200:
            self.outcome.note(f"resolution {r.status_code}")
            return
        self.outcome.note("approved" if plan.approve else "refused")
        if plan.approve and not plan.electronic and plan.digitize_later:
            await self.processing.post(
                f"/v1/dossiers/{dossier}/result-digitization", headers=officer
            )
        if await self._counter_after(dossier, unit, "result-return", "resolved"):
            self.outcome.note("returned")
        if plan.rating is not None:
            await self.intake.post(
                f"/v1/dossiers/{dossier}/rating",
                json={"satisfied": plan.rating},
                headers=self._token(unit, "counter"),
            )

    async def _wait_status(self, dossier: str, unit: str, status: str) -> None:
        for _ in range(100):
            r = await self.processing.get(f"/v1/dossiers/{dossier}", headers=self._token(unit, "o"))
            if r.json().get("status_name") == status:
                return
            await asyncio.sleep(0.1)

    async def run(self, rate: float, duration: float, progress: Progress | None) -> Outcome:
        lives: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < duration:
            due = int(elapsed * rate) + 1
            while sent < due:
                unit, body = self._submission()
                task = asyncio.create_task(self.life(unit, body, plan_for(self.rng)))
                lives.add(task)
                task.add_done_callback(lives.discard)
                sent += 1
                if progress is not None:
                    progress.advance()
            await asyncio.sleep(0.02)
        if lives:
            await asyncio.gather(*lives, return_exceptions=True)
        return self.outcome

    def _submission(self) -> tuple[str, dict[str, Any]]:
        for _ in range(50):
            unit, body = sample_submission(self.rng)
            if unit in self.units:
                return unit, body
        return sample_submission(self.rng)


def write_history(path: Path, *, days: int, per_day: int, seed: int, until: datetime) -> int:
    """A month (or any span) of traffic as a historical import file; returns the line count."""
    rng = random.Random(seed)
    calendar = WorkingCalendar.vietnam(range(until.year - 2, until.year + 2))
    lines = 0
    day = (until - timedelta(days=days)).astimezone(LOCAL_TZ).date()
    with path.open("w", encoding="utf-8") as out:
        while day < until.astimezone(LOCAL_TZ).date():
            if calendar.is_working_day(day):
                for _ in range(per_day):
                    unit, body = sample_submission(rng)
                    received = datetime(
                        day.year,
                        day.month,
                        day.day,
                        rng.randint(7, 16),
                        rng.randint(0, 59),
                        tzinfo=LOCAL_TZ,
                    )
                    body.update(
                        unit=unit,
                        received_at=received.isoformat(),
                        timeline=_history_steps(rng, received, plan_for(rng)),
                    )
                    out.write(json.dumps(body, ensure_ascii=False) + "\n")
                    lines += 1
            day += timedelta(days=1)
    return lines


def _history_steps(rng: random.Random, received: datetime, plan: Plan) -> list[dict[str, Any]]:
    at = received + timedelta(hours=rng.randint(1, 6))
    if plan.withdraw:
        return [{"type": "withdrawn", "at": at.isoformat(), "reason": "Người nộp rút hồ sơ"}]
    steps: list[dict[str, Any]] = [{"type": "processing_started", "at": at.isoformat()}]
    if plan.supplement:
        at += timedelta(hours=rng.randint(2, 30))
        steps.append({"type": "supplement_requested", "at": at.isoformat(), "reason": "Bổ sung"})
        at += timedelta(hours=rng.randint(4, 96))
        steps.append({"type": "supplement_received", "at": at.isoformat()})
    # Most finish within a few days; a tail runs late.
    at += timedelta(hours=rng.choice([6, 20, 30, 50, 70, 100, 200, 400]))
    steps.append(
        {
            "type": "resolved",
            "at": at.isoformat(),
            "approved": plan.approve,
            "result_electronic": plan.electronic,
            "reason": None if plan.approve else "Không đủ điều kiện",
        }
    )
    if plan.approve or rng.random() < 0.5:
        at += timedelta(hours=rng.randint(1, 72))
        steps.append({"type": "returned", "at": at.isoformat()})
        if plan.rating is not None:
            steps.append(
                {
                    "type": "rated",
                    "at": (at + timedelta(minutes=5)).isoformat(),
                    "satisfied": plan.rating,
                }
            )
    return steps


def now() -> datetime:
    return datetime.now(UTC)
