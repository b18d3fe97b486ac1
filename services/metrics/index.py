"""The real-time service-quality index: pure formulas over counted populations (DOMAIN.md).

Every indicator is rounded to 2 decimals; a zero denominator scores 0. Points, thresholds, grade
bands and the inputs events cannot tell (publicity, online payment, feedback) are configuration.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from shared.calendar import LOCAL_TZ

DEFAULT_CONFIG = Path(__file__).parent / "index_config.json"
GROUPS = ("1", "2", "3", "4", "5")


@dataclass(frozen=True)
class Indicator:
    group: str
    points: float
    threshold: float


@dataclass(frozen=True)
class IndexConfig:
    indicators: dict[str, Indicator]
    grades: list[tuple[float, str]]
    inputs: dict[str, dict[str, float]]

    @classmethod
    def load(cls, path: Path = DEFAULT_CONFIG) -> IndexConfig:
        doc = json.loads(path.read_text(encoding="utf-8"))
        indicators = {k: Indicator(**v) for k, v in doc["indicators"].items()}
        grades = sorted(((float(m), str(g)) for m, g in doc["grades"]), reverse=True)
        inputs = {
            k: {c: float(v) for c, v in table.items() if not c.startswith("_")}
            for k, table in doc["inputs"].items()
            if not k.startswith("_")
        }
        return cls(indicators, grades, inputs)

    def input_rate(self, indicator: str, code: str) -> float:
        table = self.inputs.get(indicator, {})
        return table.get(code, table.get("default", 0.0))

    def grade(self, total: float) -> str:
        for minimum, name in self.grades:
            if total >= minimum:
                return name
        return self.grades[-1][1]


@dataclass
class Population:
    """Counts for one unit or province over a period (the project's documented populations)."""

    in_period: int = 0  # open at any moment of the period (2.1, 5.4)
    on_time: int = 0
    received: int = 0  # received in the period (3.3, 4.3)
    received_online: int = 0
    received_reused: int = 0
    resolved: int = 0  # resolved in the period (4.1, 4.2)
    resolved_electronic: int = 0
    resolved_digitized: int = 0
    unsatisfied: int = 0  # rated unsatisfied in the period (5.4)


@dataclass
class Score:
    code: str
    indicators: dict[str, float] = field(default_factory=dict)
    groups: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    grade: str = ""
    rank: int = 0


def rate(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def points(value: float, indicator: Indicator) -> float:
    """Full points at or above the threshold, proportional below it."""
    if indicator.threshold <= 0:
        return indicator.points
    return round(min(value / indicator.threshold, 1.0) * indicator.points, 2)


def rates(p: Population, cfg: IndexConfig, code: str) -> dict[str, float]:
    overdue_rate = rate(p.in_period - p.on_time, p.in_period)
    complaint_rate = rate(p.unsatisfied, p.in_period)
    return {
        "1.publicity": cfg.input_rate("1.publicity", code),
        "2.1.on_time": rate(p.on_time, p.in_period),
        "3.3.online": rate(p.received_online, p.received),
        "3.5.payment": cfg.input_rate("3.5.payment", code),
        "4.1.electronic": rate(p.resolved_electronic, p.resolved),
        "4.2.digitization": rate(p.resolved_digitized, p.resolved),
        "4.3.reuse": rate(p.received_reused, p.received),
        "5.3.feedback": cfg.input_rate("5.3.feedback", code),
        "5.4.satisfaction": max(0.0, 1.0 - (overdue_rate + complaint_rate)) if p.in_period else 0.0,
    }


def score(code: str, p: Population, cfg: IndexConfig) -> Score:
    result = Score(code)
    for name, value in rates(p, cfg, code).items():
        indicator = cfg.indicators[name]
        result.indicators[name] = points(value, indicator)
    for group in GROUPS:
        result.groups[group] = round(
            sum(v for k, v in result.indicators.items() if cfg.indicators[k].group == group), 2
        )
    result.total = round(sum(result.groups.values()), 2)
    result.grade = cfg.grade(result.total)
    return result


def league(populations: dict[str, Population], cfg: IndexConfig) -> list[Score]:
    """Scores ranked by total (ties share a rank), best first."""
    scores = sorted(
        (score(c, p, cfg) for c, p in populations.items()), key=lambda s: (-s.total, s.code)
    )
    previous, rank = None, 0
    for position, s in enumerate(scores, start=1):
        if s.total != previous:
            rank, previous = position, s.total
        s.rank = rank
    return scores


# --------------------------------------------------------------------------- periods

_PERIOD = re.compile(r"(?P<y>\d{4})(?:-(?:Q(?P<q>[1-4])|(?P<m>0[1-9]|1[0-2])))?")


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime
    end: datetime


def parse_period(label: str) -> Period:
    """`2023` (the year; to date while it runs), `2023-Q3` (a quarter) or `2023-07` (a month)."""
    match = _PERIOD.fullmatch(label)
    if match is None:
        raise ValueError("period must look like 2023, 2023-Q3 or 2023-07")
    year = int(match["y"])
    if match["q"]:
        first = 3 * (int(match["q"]) - 1) + 1
        start, end = date(year, first, 1), _month_after(year, first + 2)
    elif match["m"]:
        month = int(match["m"])
        start, end = date(year, month, 1), _month_after(year, month)
    else:
        start, end = date(year, 1, 1), date(year + 1, 1, 1)
    return Period(label, _local_midnight(start), _local_midnight(end))


def _month_after(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1)


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), LOCAL_TZ)
