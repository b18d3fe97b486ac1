"""The live simulation: counters and officers acting on each dossier over the HTTP APIs."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.progress import Progress
from shared.reference import REFERENCE_DIR, load_reference
from tools.simulate.plan import (
    REASONS,
    Network,
    Plan,
    arrivals,
    choose_units,
    dossier_rng,
    plan_dossier,
)
from tools.simulate.tokens import SignInRefused, TokenSource

WAIT_SECONDS = 30.0  # how long to wait for the other service to catch up (Kafka in between)
# The summary lists outcomes in the order they happen to a dossier.
ORDER = (
    "received",
    "withdrawn",
    "transferred",
    "supplemented",
    "second supplementation (late)",
    "apology",
    "payment requested",
    "paid",
    "approved",
    "refused",
    "result digitized",
    "returned",
    "rated",
)


@dataclass
class Outcome:
    counts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def note(self, what: str) -> None:
        self.counts[what] += 1

    def fail(self, what: str) -> None:
        self.errors[what] += 1

    def summary(self) -> str:
        rank = {name: n for n, name in enumerate(ORDER)}
        done = sorted(self.counts.items(), key=lambda kv: (rank.get(kv[0], len(ORDER)), kv[0]))
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        return "simulation: " + ", ".join(f"{k} {v}" for k, v in done) + f"\nerrors: {errors}"


class Simulation:
    def __init__(
        self,
        intake: str,
        processing: str,
        *,
        tokens: TokenSource,
        seed: int,
        units: int,
        pace: float,
    ) -> None:
        self.tokens = tokens
        self.seed = seed
        self.pace = pace  # seconds of simulation per working step
        self.outcome = Outcome()
        self.intake = httpx.AsyncClient(base_url=intake, timeout=30)
        self.processing = httpx.AsyncClient(base_url=processing, timeout=30)
        # Today's map: the services receive only at the units in force at the reception instant.
        self.network = Network.on(load_reference(REFERENCE_DIR), now())
        self.units = choose_units(self.network, units, seed)

    async def close(self) -> None:
        await self.intake.aclose()
        await self.processing.aclose()
        await self.tokens.close()

    async def run(self, rate: float, duration: float, progress: Progress | None) -> Outcome:
        lives: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        schedule = arrivals(random.Random(f"{self.seed}/arrivals"), rate, duration)
        for index, at in enumerate(schedule):
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            plan = plan_dossier(dossier_rng(self.seed, index), self.units, self.network)
            task = asyncio.create_task(self.life(plan))
            lives.add(task)
            task.add_done_callback(lives.discard)
            if progress is not None:
                progress.advance()
        if lives:
            await asyncio.gather(*lives)
        return self.outcome

    async def life(self, plan: Plan) -> None:
        try:
            await self._life(plan)
        except httpx.HTTPError as exc:
            self.outcome.fail(type(exc).__name__)
        except SignInRefused as exc:
            self.outcome.fail(f"sign-in refused ({exc})")

    async def _life(self, plan: Plan) -> None:
        r = await self.intake.post(
            "/v1/dossiers", json=plan.body, headers=await self.tokens.headers(plan.unit, "counter")
        )
        if not self._ok(r, "submission"):
            return
        self.outcome.note("received")
        receipt = r.json()
        case = _Case(receipt["dossier_id"], plan, receipt["competent_unit"], iter(plan.pauses))
        if not await self._processing_shows(case, "received"):
            return
        await self._pause(case)
        if not plan.withdraw:
            await self._process(case)
        elif await self._counter(case, "withdrawal", {"reason": REASONS["withdrawal"]}):
            self.outcome.note("withdrawn")

    async def _process(self, case: _Case) -> None:
        plan = case.plan
        if not await self._officer(case, "start"):
            return
        if plan.transfer_to is not None:
            body = {"to_unit": plan.transfer_to, "reason": REASONS["transfer"]}
            if not await self._officer(case, "transfer", body):
                return
            # From now on the dossier is the new unit's: only its officers can act on it.
            case.competent = plan.transfer_to
            self.outcome.note("transferred")
            await self._pause(case)
        for nth in range(1, plan.supplements + 1):
            if not await self._supplementation(case, nth):
                return
        if plan.fee_vnd and not await self._payment(case):
            return
        await self._pause(case)
        await self._resolution(case)

    async def _supplementation(self, case: _Case, nth: int) -> bool:
        if not await self._officer(case, "supplement-request", {"reason": REASONS["supplement"]}):
            return False
        if nth == 2:
            # A second request counts as overdue at once (index rule): an apology is allowed.
            self.outcome.note("second supplementation (late)")
            if case.plan.apology and await self._officer(case, "apology", _apology()):
                self.outcome.note("apology")
        await self._pause(case)
        if not await self._counter(case, "supplement"):
            return False
        self.outcome.note("supplemented")
        return await self._processing_shows(case, "processing")

    async def _payment(self, case: _Case) -> bool:
        fee = case.plan.fee_vnd
        if not await self._officer(
            case, "payment-request", {"amount_vnd": fee, "reason": REASONS["fee"]}
        ):
            return False
        self.outcome.note("payment requested")
        await self._pause(case)
        if not await self._counter(case, "payment", {"amount_vnd": fee}):
            return False
        self.outcome.note("paid")
        return await self._processing_shows(case, "processing")

    async def _resolution(self, case: _Case) -> None:
        plan = case.plan
        resolution = {
            "approved": plan.approve,
            "result_electronic": plan.electronic,
            "reason": None if plan.approve else REASONS["refusal"],
        }
        if not await self._officer(case, "resolution", resolution):
            return
        self.outcome.note("approved" if plan.approve else "refused")
        if plan.digitize_later and await self._officer(case, "result-digitization"):
            self.outcome.note("result digitized")
        if not await self._counter(case, "result-return"):
            return
        self.outcome.note("returned")
        if plan.rating is not None and await self._counter(
            case, "rating", {"satisfied": plan.rating}
        ):
            self.outcome.note("rated")

    async def _officer(self, case: _Case, action: str, body: dict[str, Any] | None = None) -> bool:
        """An officer of the unit that holds the dossier now acts through processing."""
        r = await self.processing.post(
            f"/v1/dossiers/{case.id}/{action}",
            json=body,
            headers=await self.tokens.headers(case.competent, "officer"),
        )
        return self._ok(r, action)

    async def _counter(self, case: _Case, action: str, body: dict[str, Any] | None = None) -> bool:
        """The receiving unit's counter acts through intake, retried while its view has not
        caught up with processing yet (409: intake learns processing's statuses via Kafka)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            r = await self.intake.post(
                f"/v1/dossiers/{case.id}/{action}",
                json=body,
                headers=await self.tokens.headers(case.plan.unit, "counter"),
            )
            if r.status_code != 409 or time.monotonic() > deadline:
                return self._ok(r, action)
            await asyncio.sleep(0.1)

    async def _processing_shows(self, case: _Case, status: str) -> bool:
        """Wait until processing shows the dossier in this status (it learns of it via Kafka)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            r = await self.processing.get(
                f"/v1/dossiers/{case.id}",
                headers=await self.tokens.headers(case.competent, "officer"),
            )
            if r.status_code == 200 and r.json()["status_name"] == status:
                return True
            await asyncio.sleep(0.1)
        self.outcome.fail(f"processing never showed {status}")
        return False

    async def _pause(self, case: _Case) -> None:
        await asyncio.sleep(self.pace * next(case.pauses, 0.5))

    def _ok(self, response: httpx.Response, action: str) -> bool:
        if response.is_success:
            return True
        self.outcome.fail(f"{action} {response.status_code}")
        return False


@dataclass
class _Case:
    """One dossier in flight: the unit that holds it now, and the officers' remaining delays."""

    id: str
    plan: Plan
    competent: str
    pauses: Iterator[float]


def _apology() -> dict[str, str]:
    return {
        "new_appointment_at": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
        "reason": REASONS["apology"],
    }


def now() -> datetime:
    return datetime.now(UTC)
