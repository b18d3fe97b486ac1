"""`motcua simulate`'s pure parts on both maps: who receives, when dossiers arrive, what happens
to them, and the history it writes for the importer."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.calendar import LOCAL_TZ, WorkingCalendar
from shared.reference import REFERENCE_DIR, Unit, load_reference
from tools.importer import Planned, plan
from tools.simulate import (
    DAY_SECONDS,
    Network,
    arrivals,
    choose_units,
    dossier_rng,
    expected_arrivals,
    plan_dossier,
    write_history,
)

REF = load_reference(REFERENCE_DIR)
TODAY = Network.on(REF, date(2026, 1, 15))  # the 34 provinces, two levels
OLD = Network.on(REF, date(2024, 5, 1))  # the 63 provinces, three levels
CALENDAR = WorkingCalendar.vietnam(range(2022, 2028))


def test_todays_units_are_the_34_provinces_centers_and_their_communes_centers() -> None:
    assert (TODAY.structure.id, len(TODAY.provinces)) == ("vn34", 34)
    few = choose_units(TODAY, 12, seed=5)
    assert len({u.province for u in few}) == 12
    assert {u.level for u in few} == {"commune"}
    assert all(u.name.startswith("Trung tâm Phục vụ hành chính công") for u in few)
    assert few == choose_units(TODAY, 12, seed=5)
    assert few != choose_units(TODAY, 12, seed=6)
    # The second unit of each province is its provincial center.
    sixty = choose_units(TODAY, 60, seed=5)
    assert len({u.province for u in sixty}) == 34
    assert Counter(u.level for u in sixty) == {"commune": 34, "province": 26}
    assert all(REF.admit(u.code, date(2026, 1, 15)) == u for u in sixty)


def test_the_old_map_has_its_63_provinces_and_district_and_commune_departments() -> None:
    assert (OLD.structure.id, len(OLD.provinces)) == ("vn63", 63)
    units = choose_units(OLD, 70, seed=1)
    assert len({u.province for u in units}) == 63
    assert {u.level for u in units[:63]} <= {"district", "commune"}
    assert all(".H" in u.code for u in units[:63])
    assert all(u.level == "province" for u in units[63:])
    assert all(REF.admit(u.code, date(2024, 5, 1)) == u for u in units)


def test_the_chosen_units_are_the_only_receivers_of_procedures_they_offer() -> None:
    for network, day in ((TODAY, date(2026, 1, 15)), (OLD, date(2024, 5, 1))):
        units = choose_units(network, 40, seed=5)
        codes = {u.code for u in units}
        for index in range(400):
            planned = plan_dossier(dossier_rng(5, index), units, network)
            assert planned.unit in codes
            procedure = REF.procedures[planned.body["procedure_code"]]
            assert REF.offers(REF.admit(planned.competent, day), procedure)


def test_a_commune_center_receives_for_other_communes_of_its_province_on_todays_map() -> None:
    units = choose_units(TODAY, 120, seed=2)
    plans = [plan_dossier(dossier_rng(2, i), units, TODAY) for i in range(2000)]
    elsewhere = [p for p in plans if p.competent != p.unit]
    assert 0.05 < len(elsewhere) / len(plans) < 0.2
    for p in elsewhere:
        receiving, competent = REF.units[p.unit], REF.units[p.competent]
        assert (receiving.level, competent.level) == ("commune", "commune")
        assert receiving.province == competent.province
        assert p.body["competent_unit"] == p.competent
    assert all("competent_unit" not in p.body for p in plans if p.competent == p.unit)
    # Under the old map a dossier is received by the competent unit's own counter.
    old_units = choose_units(OLD, 120, seed=2)
    assert all(
        plan_dossier(dossier_rng(2, i), old_units, OLD).competent
        == plan_dossier(dossier_rng(2, i), old_units, OLD).unit
        for i in range(500)
    )


def test_the_same_seed_plans_the_same_dossiers_in_any_order() -> None:
    units = choose_units(TODAY, 60, seed=1)
    forward = [plan_dossier(dossier_rng(1, i), units, TODAY) for i in range(200)]
    backward = [plan_dossier(dossier_rng(1, i), units, TODAY) for i in reversed(range(200))]
    assert forward == backward[::-1]
    assert forward != [plan_dossier(dossier_rng(2, i), units, TODAY) for i in range(200)]


def test_plans_include_transfers_to_units_in_force_fees_and_second_supplementations() -> None:
    for network, day in ((TODAY, date(2026, 1, 15)), (OLD, date(2024, 5, 1))):
        units = choose_units(network, 120, seed=3)
        plans = [plan_dossier(dossier_rng(3, i), units, network) for i in range(4000)]
        assert 0.03 < sum(p.transfer_to is not None for p in plans) / len(plans) < 0.07
        assert 0.02 < sum(p.supplements == 2 for p in plans) / len(plans) < 0.04
        assert all(REF.procedures[p.body["procedure_code"]].fee_bearing for p in plans if p.fee_vnd)
        for p in plans:
            if p.transfer_to is not None:
                source, target = REF.admit(p.competent, day), REF.admit(p.transfer_to, day)
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


def receiver(body: dict[str, Any]) -> Unit:
    """The unit that received a line, in its version of the reception day."""
    return REF.admit(body["unit"], datetime.fromisoformat(body["received_at"]))


def history(tmp_path: Path, start: date, days: int, per_day: int, until: datetime) -> list[Any]:
    """The lines written, each checked as the importer checks it (and admitted on its day)."""
    out = tmp_path / f"history-{start}.jsonl"
    lines = write_history(out, days=days, per_day=per_day, seed=4, start=start, until=until)
    raw_lines = out.read_text(encoding="utf-8").splitlines()
    assert len(raw_lines) == lines
    bodies = []
    for n, raw in enumerate(raw_lines, start=1):
        planned = plan(n, raw, REF, CALENDAR, b"k")
        assert isinstance(planned, Planned), (raw, planned)
        body = json.loads(raw)
        received = datetime.fromisoformat(body["received_at"])
        REF.admit(body["unit"], received)
        for step in body.get("timeline", []):
            assert datetime.fromisoformat(step["at"]) <= until
            if step["type"] == "transferred":
                REF.admit(step["to_unit"], datetime.fromisoformat(step["at"]))
        bodies.append(body)
    return bodies


def test_history_as_of_2024_is_on_the_old_map_and_passes_the_importers_checks(
    tmp_path: Path,
) -> None:
    bodies = history(tmp_path, date(2024, 5, 6), 14, 60, datetime(2024, 7, 1, tzinfo=LOCAL_TZ))
    assert len(bodies) == 10 * 60  # two weeks of working days
    assert min(b["received_at"] for b in bodies).startswith("2024-05-06")
    assert max(b["received_at"] for b in bodies).startswith("2024-05-17")
    assert {receiver(b).structure for b in bodies} == {"vn63"}
    assert len({receiver(b).province for b in bodies}) > 55
    steps: Counter[str] = Counter()
    for body in bodies:
        kinds = [s["type"] for s in body.get("timeline", [])]
        steps.update(kinds)
        steps["refused at reception"] += "refused_at_reception" in body
        steps["second supplementation"] += kinds.count("supplement_requested") == 2
    for kind in ("payment_requested", "payment_received", "transferred", "apology_issued", "rated"):
        assert steps[kind] > 0, kind
    assert steps["second supplementation"] > 0
    assert 0 < steps["refused at reception"] < 0.05 * len(bodies)


def test_recent_history_is_on_todays_map_and_stops_at_the_present(tmp_path: Path) -> None:
    until = datetime(2026, 1, 20, 10, tzinfo=LOCAL_TZ)
    bodies = history(tmp_path, until.date() - timedelta(days=14), 30, 40, until)
    # Working days from 6 January up to the 19th: the history never reaches into today.
    assert len(bodies) == 10 * 40
    assert max(b["received_at"] for b in bodies).startswith("2026-01-19")
    units = [receiver(b) for b in bodies]
    assert {u.structure for u in units} == {"vn34"}
    assert {u.level for u in units} == {"province", "commune"}
    assert any("competent_unit" in b for b in bodies)
    # Dossiers received just before `until` are still open: no resolution yet.
    last_day = [b for b in bodies if b["received_at"].startswith("2026-01-19")]
    assert any("resolved" not in {s["type"] for s in b.get("timeline", [])} for b in last_day)


def test_a_history_across_1_july_2025_moves_from_the_old_units_to_the_new(
    tmp_path: Path,
) -> None:
    bodies = history(tmp_path, date(2025, 6, 23), 14, 30, datetime(2025, 8, 1, tzinfo=LOCAL_TZ))
    by_map = Counter((b["received_at"] < "2025-07-01", receiver(b).structure) for b in bodies)
    assert by_map == {(True, "vn63"): 6 * 30, (False, "vn34"): 4 * 30}
