"""The index formulas against hand-computed examples."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.metrics.index import IndexConfig, Population, league, parse_period, score
from shared.calendar import LOCAL_TZ

CFG = IndexConfig.load()


def test_hand_computed_province() -> None:
    p = Population(
        in_period=200,
        on_time=170,
        received=120,
        received_online=42,
        received_reused=60,
        resolved=100,
        resolved_electronic=55,
        resolved_digitized=64,
        unsatisfied=6,
    )
    s = score("002", p, CFG)
    assert s.indicators["2.1.on_time"] == 17.0  # 170/200 × 20
    assert s.indicators["3.3.online"] == 8.4  # 35 % of the 50 % threshold × 12
    assert s.indicators["4.1.electronic"] == 3.3  # 55 % × 6
    assert s.indicators["4.2.digitization"] == 8.0  # 64 % / 80 % × 10
    assert s.indicators["4.3.reuse"] == 3.75  # 50 % / 80 % × 6
    # 5.4: 100 % − (15 % overdue + 3 % unsatisfied) = 82 %, of the 90 % threshold × 12
    assert s.indicators["5.4.satisfaction"] == 10.93
    assert s.indicators["1.publicity"] == 18.0
    assert s.indicators["3.5.payment"] == 0.0
    assert s.groups == {"1": 18.0, "2": 17.0, "3": 8.4, "4": 15.05, "5": 16.93}
    assert s.total == 75.38
    assert s.grade == "khá"


def test_zero_denominators_score_zero() -> None:
    s = score("x", Population(), CFG)
    assert s.indicators["2.1.on_time"] == 0
    assert s.indicators["3.3.online"] == 0
    assert s.indicators["5.4.satisfaction"] == 0
    assert s.total == 24.0  # only the configured inputs: publicity 18 + feedback 6
    assert s.grade == "yếu"


def test_thresholds_cap_at_full_points() -> None:
    p = Population(
        in_period=10,
        on_time=10,
        received=10,
        received_online=9,
        received_reused=10,
        resolved=10,
        resolved_electronic=10,
        resolved_digitized=10,
    )
    s = score("x", p, CFG)
    assert s.indicators["3.3.online"] == 12.0
    assert s.indicators["4.2.digitization"] == 10.0
    assert s.total == 90.0
    assert s.grade == "xuất sắc"


def test_league_ranks_ties_together() -> None:
    good = Population(in_period=10, on_time=10)
    worse = Population(in_period=10, on_time=5)
    table = league({"a": good, "b": good, "c": worse}, CFG)
    assert [(s.code, s.rank) for s in table] == [("a", 1), ("b", 1), ("c", 3)]


@pytest.mark.parametrize(
    ("label", "start", "end"),
    [
        ("2023-Q3", datetime(2023, 7, 1, tzinfo=LOCAL_TZ), datetime(2023, 10, 1, tzinfo=LOCAL_TZ)),
        ("2023-12", datetime(2023, 12, 1, tzinfo=LOCAL_TZ), datetime(2024, 1, 1, tzinfo=LOCAL_TZ)),
        ("2023", datetime(2023, 1, 1, tzinfo=LOCAL_TZ), datetime(2024, 1, 1, tzinfo=LOCAL_TZ)),
    ],
)
def test_periods_are_local_calendar_ranges(label: str, start: datetime, end: datetime) -> None:
    period = parse_period(label)
    assert (period.start, period.end) == (start, end)


def test_bad_period_is_refused() -> None:
    with pytest.raises(ValueError, match="2023-Q3"):
        parse_period("2023-Q5")
