"""The `motcua` command's own logic: which map a simulation uses, and the league table's ranks."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.reference import REFERENCE_DIR, load_reference
from tools import cli

REF = load_reference(REFERENCE_DIR)


def test_a_live_simulation_refuses_a_day_of_the_old_map_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["simulate", "--as-of", "2024-05-01", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--as-of 2024-05-01 is on the map vn63" in err
    assert "not in force today (vn34 since 2025-07-01)" in err


def test_history_as_of_a_day_starts_there_on_the_map_in_force_then(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "history.jsonl"
    command = ["simulate", "--write-import", str(out), "--as-of", "2024-05-06"]
    assert cli.main([*command, "--days", "5", "--per-day", "20"]) == 0
    assert "wrote 100 dossiers over 5 days from 2024-05-06" in capsys.readouterr().out
    lines = [json.loads(raw) for raw in out.read_text(encoding="utf-8").splitlines()]
    received = sorted(datetime.fromisoformat(line["received_at"]) for line in lines)
    assert (received[0].date().isoformat(), received[-1].date().isoformat()) == (
        "2024-05-06",
        "2024-05-10",
    )
    structures = {
        REF.admit(line["unit"], datetime.fromisoformat(line["received_at"])).structure
        for line in lines
    }
    assert structures == {"vn63"}


def test_history_cannot_start_in_the_future(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "history.jsonl"
    assert cli.main(["simulate", "--write-import", str(out), "--as-of", "2099-01-01"]) == 2
    assert "--as-of 2099-01-01 is not in the past" in capsys.readouterr().err
    assert not out.exists()


def entry(name: str, rank: int) -> dict[str, Any]:
    return {"name": name, "total": 80.0 - rank, "grade": "tốt", "rank": rank}


def test_provinces_rank_among_the_provinces_of_the_structure_named_in_the_header() -> None:
    table = {
        "scope": "province",
        "period": "2025",
        "structure": {"id": "vn34", "name": "34 tỉnh, thành phố", "provinces": 34},
        # A province without dossiers in the period has no entry, yet ranks stay out of 34.
        "entries": [entry("Tuyên Quang", 1), entry("Thành phố Hà Nội", 2)],
    }
    lines = cli.league_lines(table)
    assert lines[0] == "Chỉ số phục vụ (766) — province, kỳ 2025 — 34 tỉnh, thành phố"
    assert [line.split()[-1] for line in lines[1:]] == ["1/34", "2/34"]
    old = {**table, "period": "2023-Q3", "structure": {"name": "63 tỉnh", "provinces": 63}}
    assert cli.league_lines(old)[2].endswith("2/63")


def test_units_rank_among_the_units_in_the_table() -> None:
    table = {
        "scope": "unit",
        "period": "2026",
        "structure": {"id": "vn34", "name": "34 tỉnh, thành phố", "provinces": 34},
        "entries": [entry("Trung tâm Phục vụ hành chính công phường Ba Đình, Hà Nội", 1)],
    }
    assert cli.league_lines(table)[1].endswith(" 1/1")


def test_which_as_of_days_a_live_run_and_a_history_accept() -> None:
    today = date(2026, 1, 15)
    # A live run: any day of today's map, none of the old one.
    assert cli._as_of_refused(date(2025, 7, 1), today, history=False) is None
    assert cli._as_of_refused(today, today, history=False) is None
    refused = cli._as_of_refused(date(2025, 6, 30), today, history=False)
    assert refused is not None and "on the map vn63" in refused
    # A history: any past day, on whichever map was in force.
    assert cli._as_of_refused(date(2025, 6, 30), today, history=True) is None
    assert cli._as_of_refused(today, today, history=True) == (
        "--as-of 2026-01-15 is not in the past (today is 2026-01-15)"
    )
