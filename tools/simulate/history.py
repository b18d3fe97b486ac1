"""The simulation's traffic over past working days, written as a historical import file."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.calendar import LOCAL_TZ, WorkingCalendar
from shared.reference import REFERENCE_DIR, load_reference
from tools.simulate.plan import (
    DAY_PROFILE,
    FIRST_HOUR,
    REASONS,
    Plan,
    dossier_rng,
    plan_dossier,
)

# The share of dossiers the counter refuses (mẫu 03): they never enter processing.
REFUSED_AT_RECEPTION = 0.02


def write_history(path: Path, *, days: int, per_day: int, seed: int, until: datetime) -> int:
    """`days` of traffic at every unit as a historical import file; returns the line count."""
    reference = load_reference(REFERENCE_DIR)
    units = list(reference.units.values())
    calendar = WorkingCalendar.vietnam(range(until.year - 2, until.year + 2))
    lines = 0
    day = (until - timedelta(days=days)).astimezone(LOCAL_TZ).date()
    with path.open("w", encoding="utf-8") as out:
        while day < until.astimezone(LOCAL_TZ).date():
            if calendar.is_working_day(day):
                for _ in range(per_day):
                    rng = dossier_rng(seed, lines)
                    plan = plan_dossier(rng, units, reference)
                    received = _received_at(rng, day)
                    line: dict[str, Any] = {
                        **plan.body,
                        "unit": plan.unit,
                        "received_at": received.isoformat(),
                        "timeline": _history_steps(rng, received, plan),
                    }
                    # Drawn last, so the other lines stay what the same seed always wrote.
                    if rng.random() < REFUSED_AT_RECEPTION:
                        del line["timeline"]
                        line["refused_at_reception"] = {"reason": REASONS["reception_refusal"]}
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
                    lines += 1
            day += timedelta(days=1)
    return lines


def _received_at(rng: random.Random, day: date) -> datetime:
    """A reception time on `day`, following the same day profile as the live arrivals."""
    hour = FIRST_HOUR + rng.choices(range(len(DAY_PROFILE)), weights=DAY_PROFILE)[0]
    return datetime(day.year, day.month, day.day, hour, rng.randint(0, 59), tzinfo=LOCAL_TZ)


def _history_steps(rng: random.Random, received: datetime, plan: Plan) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    at = received

    def step(kind: str, hours_later: float, **fields: Any) -> None:
        nonlocal at
        at += timedelta(hours=hours_later)
        steps.append({"type": kind, "at": at.isoformat(), **fields})

    if plan.withdraw:
        step("withdrawn", rng.randint(1, 6), reason=REASONS["withdrawal"])
        return steps
    step("processing_started", rng.randint(1, 6))
    if plan.transfer_to is not None:
        step(
            "transferred", rng.randint(1, 24), to_unit=plan.transfer_to, reason=REASONS["transfer"]
        )
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
    return steps
