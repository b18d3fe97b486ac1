"""Who receives, when dossiers arrive and what happens to each: pure, decided by the seed."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from shared.reference import Procedure, ReferenceData, Unit
from tools.samples import personal_id, tax_code

DAY_SECONDS = 40.0
FIRST_HOUR = 7
# Arrivals per hour from 07:00 to 17:00, relative to the mean (they sum to 10, the mean is 1).
DAY_PROFILE = (0.6, 1.5, 1.8, 1.5, 0.7, 0.1, 0.9, 1.4, 1.1, 0.4)
FEES_VND = (20_000, 50_000, 100_000, 200_000)
NAMES = {
    "citizen": ("Nguyễn Văn An", "Trần Thị Bình", "Lê Hoàng Cường", "Phạm Thị Dung"),
    "business": ("Công ty TNHH Minh Phát", "Công ty Cổ phần Sông Hồng", "HTX Nông nghiệp Tân An"),
}
REASONS = {
    "supplement": "Bổ sung bản sao có chứng thực",
    "transfer": "Chuyển cơ quan có thẩm quyền giải quyết (liên thông)",
    "apology": "Hồ sơ phải bổ sung lần hai, xin lỗi và hẹn lại ngày trả kết quả",
    "fee": "Phí, lệ phí giải quyết thủ tục hành chính",
    "refusal": "Không đủ điều kiện theo quy định",
    "withdrawal": "Người nộp rút hồ sơ",
    "reception_refusal": "Hồ sơ không đủ thành phần, giấy tờ theo quy định",
}


def choose_units(reference: ReferenceData, n: int, seed: int) -> list[Unit]:
    """n units spread across provinces: one per province in turn, provinces and units shuffled."""
    rng = random.Random(f"{seed}/units")
    by_province: dict[str, list[Unit]] = {}
    for unit in sorted(reference.units.values(), key=lambda u: u.code):
        by_province.setdefault(unit.province, []).append(unit)
    provinces = sorted(by_province)
    rng.shuffle(provinces)
    ranked: list[tuple[int, int, Unit]] = []
    for order, province in enumerate(provinces):
        units = by_province[province]
        rng.shuffle(units)
        ranked += [(turn, order, unit) for turn, unit in enumerate(units)]
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [unit for *_, unit in ranked[:n]]


def intensity(t: float) -> float:
    """The day profile at t seconds into the simulation (relative to the mean rate)."""
    hour = int((t % DAY_SECONDS) / DAY_SECONDS * len(DAY_PROFILE))
    return DAY_PROFILE[hour]


def arrivals(rng: random.Random, rate: float, duration: float) -> Iterator[float]:
    """Arrival times (seconds from the start) with mean `rate`, shaped by the day profile.

    Thinning (Lewis–Shedler): a Poisson process at the peak rate, each arrival kept with
    probability profile/peak, is a Poisson process with the profile's intensity.
    """
    peak = max(DAY_PROFILE)
    t = 0.0
    while (t := t + rng.expovariate(rate * peak)) < duration:
        if rng.random() * peak < intensity(t):
            yield t


def expected_arrivals(rate: float, duration: float) -> float:
    """The mean number of arrivals within `duration` seconds (the progress bar's total)."""
    hour = DAY_SECONDS / len(DAY_PROFILE)
    days, rest = divmod(duration, DAY_SECONDS)
    partial = sum(w * min(max(rest - i * hour, 0.0), hour) for i, w in enumerate(DAY_PROFILE))
    return rate * (days * DAY_SECONDS + partial)


def dossier_rng(seed: int, index: int) -> random.Random:
    # A string seed is hashed with SHA-512: the same generator in every process and run.
    return random.Random(f"{seed}/{index}")


@dataclass(frozen=True)
class Plan:
    """What will happen to one dossier, decided up front."""

    unit: str  # the receiving unit, competent for the procedure
    body: dict[str, Any]  # the submission, as `POST /v1/dossiers` takes it
    withdraw: bool
    transfer_to: str | None  # liên thông: a unit of the same level in another province
    supplements: int  # 0, 1 or 2 requests; a second one makes the dossier late at once
    apology: bool  # after the second request, which makes the dossier overdue
    fee_vnd: int  # 0: no fee requested
    approve: bool
    electronic: bool
    digitize_later: bool  # a paper result digitized after resolution
    rating: bool | None
    pauses: tuple[float, ...]  # the officers' delays, as fractions of --pace


def plan_dossier(rng: random.Random, units: Sequence[Unit], reference: ReferenceData) -> Plan:
    unit = rng.choice(units)
    procedure = rng.choice([p for p in reference.procedures.values() if reference.offers(unit, p)])
    approve = rng.random() < 0.9
    electronic = rng.random() < 0.55
    draw = rng.random()
    supplements = 2 if draw < 0.03 else 1 if draw < 0.18 else 0
    return Plan(
        unit=unit.code,
        body=submission(rng, procedure),
        withdraw=rng.random() < 0.03,
        transfer_to=_transfer_target(rng, unit, reference) if rng.random() < 0.05 else None,
        supplements=supplements,
        apology=supplements == 2 and rng.random() < 0.7,
        fee_vnd=rng.choice(FEES_VND) if procedure.fee_bearing and approve else 0,
        approve=approve,
        electronic=electronic,
        digitize_later=approve
        and procedure.result_is_paper
        and not electronic
        and rng.random() < 0.3,
        rating=None if rng.random() < 0.3 else rng.random() < 0.85,
        pauses=tuple(rng.random() for _ in range(8)),
    )


def _transfer_target(rng: random.Random, unit: Unit, reference: ReferenceData) -> str:
    peers = [
        u.code
        for u in reference.units.values()
        if u.level == unit.level and u.province != unit.province
    ]
    return rng.choice(peers)


def submission(rng: random.Random, procedure: Procedure) -> dict[str, Any]:
    """A submission the procedure's counters accept: valid IDs, a realistic channel."""
    business = procedure.field.startswith("Thành lập") and rng.random() < 0.7
    kind = "business" if business else "citizen"
    # Online submission needs a procedure offered online (level 3 or 4).
    weights = [5, 4, 1] if procedure.online_level >= 3 else [9, 0, 1]
    digitized = rng.random() < 0.7
    return {
        "procedure_code": procedure.code,
        "channel": rng.choices(["in_person", "online", "postal"], weights=weights)[0],
        "applicant": {
            "kind": kind,
            "id_number": tax_code(rng) if business else personal_id(rng),
            "name": rng.choice(NAMES[kind]),
        },
        "components": [
            {"code": c.code, "digitized": digitized, "reused": rng.random() < 0.3}
            for c in procedure.components
        ],
    }
