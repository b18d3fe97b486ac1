"""The simulation's traffic over past working days, written as a historical import file."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.calendar import LOCAL_TZ, WorkingCalendar
from shared.reference import REFERENCE_DIR, ReferenceData, load_reference
from tools.simulate.plan import (
    DAY_PROFILE,
    FIRST_HOUR,
    REASONS,
    Network,
    Plan,
    dossier_rng,
    plan_dossier,
)

# The share of dossiers the counter refuses (mẫu 03): they never enter processing.
REFUSED_AT_RECEPTION = 0.02


def write_history(
    path: Path, *, days: int, per_day: int, seed: int, start: date, until: datetime
) -> int:
    """Traffic at every unit in force, each working day from `start` for `days` days (none on or
    after `until`'s day), as a historical import file; returns the line count.

    Each day's dossiers are received at the units in force that day, so a history that runs
    across 1 July 2025 moves from the old map's units to the new map's on that day. Steps after
    `until` are left out: those dossiers are still open.
    """
    reference = load_reference(REFERENCE_DIR)
    calendar = WorkingCalendar.vietnam(range(start.year - 1, until.year + 2))
    lines = 0
    last = min(start + timedelta(days=days), until.astimezone(LOCAL_TZ).date())
    network: Network | None = None
    day = start
    with path.open("w", encoding="utf-8") as out:
        while day < last:
            if calendar.is_working_day(day):
                network = _network_on(reference, day, network)
                for _ in range(per_day):
                    rng = dossier_rng(seed, lines)
                    plan = plan_dossier(rng, network.units, network)
                    received = _received_at(rng, day)
                    line: dict[str, Any] = {
                        **plan.body,
                        "unit": plan.unit,
                        "received_at": received.isoformat(),
                        "timeline": _history_steps(rng, received, plan, reference, until),
                    }
                    # Drawn last, so the other lines stay what the same seed always wrote.
                    if rng.random() < REFUSED_AT_RECEPTION:
                        del line["timeline"]
                        line["refused_at_reception"] = {"reason": REASONS["reception_refusal"]}
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
                    lines += 1
            day += timedelta(days=1)
    return lines


def _network_on(reference: ReferenceData, day: date, previous: Network | None) -> Network:
    """The units in force on `day`; the previous day's network while they are the same ones."""
    units = reference.units_at(day)
    if previous is not None and [u.code for u in previous.units] == sorted(u.code for u in units):
        return previous
    return Network.of(reference, reference.structure_at(day), units)


def _received_at(rng: random.Random, day: date) -> datetime:
    """A reception time on `day`, following the same day profile as the live arrivals."""
    hour = FIRST_HOUR + rng.choices(range(len(DAY_PROFILE)), weights=DAY_PROFILE)[0]
    return datetime(day.year, day.month, day.day, hour, rng.randint(0, 59), tzinfo=LOCAL_TZ)


def _history_steps(
    rng: random.Random,
    received: datetime,
    plan: Plan,
    reference: ReferenceData,
    until: datetime,
) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    at = received

    def step(kind: str, hours_later: float, **fields: Any) -> None:
        nonlocal at
        at += timedelta(hours=hours_later)
        steps.append({"type": kind, "at": at, **fields})

    if plan.withdraw:
        step("withdrawn", rng.randint(1, 6), reason=REASONS["withdrawal"])
        return _until(steps, until)
    step("processing_started", rng.randint(1, 6))
    if plan.transfer_to is not None:
        hours = rng.randint(1, 24)
        target = _in_force(reference, plan.transfer_to, at + timedelta(hours=hours))
        step("transferred", hours, to_unit=target, reason=REASONS["transfer"])
    for nth in range(1, plan.supplements + 1):
        step("supplement_requested", rng.randint(2, 30), reason=REASONS["supplement"])
        if nth == 2 and plan.apology:
            promised = (at + timedelta(days=7)).isoformat()
            step("apology_issued", 1, new_appointment_at=promised, reason=REASONS["apology"])
        step("supplement_received", rng.randint(4, 96))
    if plan.fee_vnd:
        step(
            "payment_requested", rng.randint(1, 24), amount_vnd=plan.fee_vnd, reason=REASONS["fee"]
        )
        step("payment_received", rng.randint(1, 48), amount_vnd=plan.fee_vnd)
    # Most finish within a few days; a tail runs late.
    step(
        "resolved",
        rng.choice([6, 20, 30, 50, 70, 100, 200, 400]),
        approved=plan.approve,
        result_electronic=plan.electronic,
        reason=None if plan.approve else REASONS["refusal"],
    )
    if plan.digitize_later:
        step("result_digitized", rng.randint(1, 8))
    if plan.approve or rng.random() < 0.5:
        step("returned", rng.randint(1, 72))
        if plan.rating is not None:
            step("rated", 5 / 60, satisfied=plan.rating)
    return _until(steps, until)


def _in_force(reference: ReferenceData, code: str, at: datetime) -> str:
    """The unit itself if it is in force at that instant, else the first unit that took its
    territory over (a transfer decided on 30 June 2025 and made on 1 July goes to the new map)."""
    if reference.map.unit_at(code, at) is not None:
        return code
    return reference.map.successors(code, at)[0].code


def _until(steps: list[dict[str, Any]], until: datetime) -> list[dict[str, Any]]:
    """The steps up to `until` (the dossier's story so far), their times as text."""
    return [{**s, "at": s["at"].isoformat()} for s in steps if s["at"] <= until]
