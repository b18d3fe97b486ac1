"""Who receives, when dossiers arrive and what happens to each: pure, decided by the seed."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shared.admin_map import Structure
from shared.reference import Level, Procedure, ReferenceData, Unit
from tools.samples import personal_id, tax_code

DAY_SECONDS = 40.0
FIRST_HOUR = 7
# Arrivals per hour from 07:00 to 17:00, relative to the mean (they sum to 10, the mean is 1).
DAY_PROFILE = (0.6, 1.5, 1.8, 1.5, 0.7, 0.1, 0.9, 1.4, 1.1, 0.4)
FEES_VND = (20_000, 50_000, 100_000, 200_000)
# Under the two-level map a commune center receives dossiers whatever the applicant's commune in
# the province (Decree 118/2025/NĐ-CP): this share of its dossiers belong to another commune.
ELSEWHERE_IN_PROVINCE = 0.2
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


@dataclass(frozen=True)
class Network:
    """The one-stop units in force on one day, grouped the way the plans draw from them."""

    reference: ReferenceData
    structure: Structure
    units: tuple[Unit, ...]  # by code
    provinces: tuple[str, ...]
    _peers: dict[tuple[Level, str], tuple[Unit, ...]] = field(repr=False, compare=False)
    _offered: dict[Level, tuple[Procedure, ...]] = field(repr=False, compare=False)

    @classmethod
    def on(cls, reference: ReferenceData, at: datetime | date) -> Network:
        return cls.of(reference, reference.structure_at(at), reference.units_at(at))

    @classmethod
    def of(cls, reference: ReferenceData, structure: Structure, units: Sequence[Unit]) -> Network:
        ordered = tuple(sorted(units, key=lambda u: u.code))
        peers: dict[tuple[Level, str], list[Unit]] = {}
        for unit in ordered:
            peers.setdefault((unit.level, unit.province), []).append(unit)
        procedures = sorted(reference.procedures.values(), key=lambda p: p.code)
        # What a unit receives depends on its level and structure only.
        offered = {
            level: tuple(p for p in procedures if reference.offers(example, p))
            for level, example in {u.level: u for u in ordered}.items()
        }
        return cls(
            reference,
            structure,
            ordered,
            tuple(sorted({u.province for u in ordered})),
            {key: tuple(found) for key, found in peers.items()},
            offered,
        )

    def peers(self, level: Level, province: str) -> tuple[Unit, ...]:
        """The units in force of one level in one province."""
        return self._peers.get((level, province), ())

    def offered(self, unit: Unit) -> tuple[Procedure, ...]:
        """The procedures a unit's counters receive under the structure in force."""
        return self._offered[unit.level]


def choose_units(network: Network, n: int, seed: int) -> list[Unit]:
    """n units spread across provinces: one per province in turn, provinces and units shuffled.
    A province's first unit is a district or commune unit, its second the provincial center, so
    a handful of units are all local counters and a few dozen bring in the provincial centers."""
    rng = random.Random(f"{seed}/units")
    by_province: dict[str, list[Unit]] = {}
    for unit in network.units:
        by_province.setdefault(unit.province, []).append(unit)
    provinces = sorted(by_province)
    rng.shuffle(provinces)
    ranked: list[tuple[int, int, Unit]] = []
    for order, province in enumerate(provinces):
        units = by_province[province]
        rng.shuffle(units)
        # The provincial center, sorted last, becomes the province's second unit.
        units.sort(key=lambda u: u.level == "province")
        if len(units) > 1:
            units.insert(1, units.pop())
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

    unit: str  # the receiving unit
    competent: str  # the unit that processes it: the receiving one, or another of its province
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


def plan_dossier(rng: random.Random, units: Sequence[Unit], network: Network) -> Plan:
    """One dossier received at one of `units` (all in force in `network`)."""
    unit = rng.choice(units)
    procedure = rng.choice(network.offered(unit))
    competent = _competent_unit(rng, unit, network)
    approve = rng.random() < 0.9
    electronic = rng.random() < 0.55
    draw = rng.random()
    supplements = 2 if draw < 0.03 else 1 if draw < 0.18 else 0
    body = submission(rng, procedure)
    if competent is not unit:
        body["competent_unit"] = competent.code
    return Plan(
        unit=unit.code,
        competent=competent.code,
        body=body,
        withdraw=rng.random() < 0.03,
        transfer_to=_transfer_target(rng, competent, network) if rng.random() < 0.05 else None,
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


def _competent_unit(rng: random.Random, unit: Unit, network: Network) -> Unit:
    """The receiving unit, or under the two-level map now and then another commune center of
    the province (the applicant's), which then processes the dossier."""
    if network.structure.has_districts or unit.level != "commune":
        return unit
    if rng.random() >= ELSEWHERE_IN_PROVINCE:
        return unit
    others = [u for u in network.peers("commune", unit.province) if u.code != unit.code]
    return rng.choice(others) if others else unit


def _transfer_target(rng: random.Random, unit: Unit, network: Network) -> str:
    """A unit in force of the same level in another province."""
    provinces = [
        p for p in network.provinces if p != unit.province and network.peers(unit.level, p)
    ]
    return rng.choice(network.peers(unit.level, rng.choice(provinces))).code


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
