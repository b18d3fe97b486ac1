"""`motcua simulate`'s pure parts: who receives, when dossiers arrive, what happens to them."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime
from pathlib import Path

from shared.calendar import LOCAL_TZ, WorkingCalendar
from shared.reference import REFERENCE_DIR, load_reference
from tools.importer import Planned, plan
from tools.simulate import (
    DAY_SECONDS,
    arrivals,
    choose_units,
    dossier_rng,
    expected_arrivals,
    plan_dossier,
    write_history,
)

REF = load_reference(REFERENCE_DIR)


def test_the_chosen_units_are_spread_across_provinces_and_the_only_receivers() -> None:
    units = choose_units(REF, 12, seed=5)
    assert len({u.province for u in units}) == 12
    assert units == choose_units(REF, 12, seed=5)
    assert units != choose_units(REF, 12, seed=6)
    codes = {u.code for u in units}
    for index in range(500):
        planned = plan_dossier(dossier_rng(5, index), units, REF)
        assert planned.unit in codes
        procedure = REF.procedures[planned.body["procedure_code"]]
        assert REF.offers(REF.units[planned.unit], procedure)


def test_the_same_seed_plans_the_same_dossiers_in_any_order() -> None:
    units = choose_units(REF, 60, seed=1)
    forward = [plan_dossier(dossier_rng(1, i), units, REF) for i in range(200)]
    backward = [plan_dossier(dossier_rng(1, i), units, REF) for i in reversed(range(200))]
    assert forward == backward[::-1]
    assert forward != [plan_dossier(dossier_rng(2, i), units, REF) for i in range(200)]


def test_plans_include_transfers_fees_and_second_supplementations_in_small_shares() -> None:
    units = choose_units(REF, 120, seed=3)
    plans = [plan_dossier(dossier_rng(3, i), units, REF) for i in range(4000)]
    assert 0.03 < sum(p.transfer_to is not None for p in plans) / len(plans) < 0.07
    assert 0.02 < sum(p.supplements == 2 for p in plans) / len(plans) < 0.04
    assert all(REF.procedures[p.body["procedure_code"]].fee_bearing for p in plans if p.fee_vnd)
    for p in plans:
        if p.transfer_to is not None:
            source, target = REF.units[p.unit], REF.units[p.transfer_to]
            assert (target.level, target.province != source.province) == (source.level, True)


def test_arrivals_average_the_rate_over_whole_days_with_peaks_and_a_lunch_dip() -> None:
    horizon = 200 * DAY_SECONDS
    times = list(arrivals(random.Random(9), 4.0, horizon))
    assert abs(len(times) / horizon - 4.0) < 0.1
    assert expected_arrivals(4.0, horizon) == 4.0 * horizon
    by_hour = Counter(int(t % DAY_SECONDS / DAY_SECONDS * 10) for t in times)
    assert by_hour[2] > 2 * by_hour[4]  # the 09:00 peak against 11:00
    assert by_hour[4] > 3 * by_hour[5]  # lunch
    assert by_hour[7] > by_hour[6]  # the afternoon peak at 14:00
    assert times == list(arrivals(random.Random(9), 4.0, horizon))


def test_the_import_file_passes_the_importers_checks(tmp_path: Path) -> None:
    out = tmp_path / "history.jsonl"
    until = datetime(2024, 7, 1, tzinfo=LOCAL_TZ)
    lines = write_history(out, days=14, per_day=60, seed=4, until=until)
    calendar = WorkingCalendar.vietnam(range(2022, 2026))
    steps: Counter[str] = Counter()
    raw_lines = out.read_text(encoding="utf-8").splitlines()
    assert len(raw_lines) == lines == 10 * 60
    for n, raw in enumerate(raw_lines, start=1):
        planned = plan(n, raw, REF, calendar, b"k")
        assert isinstance(planned, Planned), (raw, planned)
        body = json.loads(raw)
        kinds = [s["type"] for s in body.get("timeline", [])]
        steps.update(kinds)
        steps["refused at reception"] += "refused_at_reception" in body
        steps["second supplementation"] += kinds.count("supplement_requested") == 2
    for kind in ("payment_requested", "payment_received", "transferred", "apology_issued"):
        assert steps[kind] > 0, kind
    assert steps["second supplementation"] > 0
    assert 0 < steps["refused at reception"] < 0.05 * lines
