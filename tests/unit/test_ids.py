from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.vn import mst

from shared.ids import keyed_hash, personal_id_problem, tax_code_problem, uuid7

TODAY = date(2026, 11, 27)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("001099012345", None),
        ("079203001234", None),  # born 2003, century digit 2
        ("00109901234", "12 digits"),
        ("003099012345", "the first three digits are not one of the 63 province codes"),
        ("001299012345", "the birth year (fourth to sixth digits) is in the future"),  # 2099
        ("001399012345", "in the future"),  # 2099 too: 2 and 3 are both the 2000s
        ("001426012345", "in the future"),  # 2126
        ("00109901234a", "12 digits"),
    ],
)
def test_personal_id_structure(value: str, reason: str | None) -> None:
    problem = personal_id_problem(value, TODAY)
    if reason is None:
        assert problem is None
    else:
        assert problem is not None and reason in problem


@given(st.from_regex(r"[0-9]{12}", fullmatch=True))
def test_a_personal_id_problem_never_echoes_the_id(value: str) -> None:
    # The reason reaches 422 bodies, import reports and logs: it names the wrong part, never the
    # digits, so it is one of a few fixed sentences whatever the ID.
    assert personal_id_problem(value, TODAY) in {
        None,
        "the first three digits are not one of the 63 province codes",
        "the birth year (fourth to sixth digits) is in the future",
    }


@given(st.from_regex(r"[0-9]{10}(-[0-9]{3})?", fullmatch=True) | st.text(max_size=16))
def test_a_tax_code_problem_never_echoes_the_code(value: str) -> None:
    assert tax_code_problem(value) in {
        None,
        "must be 10 digits, optionally followed by -001 to -999 for a branch",
        "the check digit (tenth digit) does not match",
        "branch suffix must be between -001 and -999",
    }


@given(st.from_regex(r"\d{10}", fullmatch=True))
def test_tax_code_check_digit_agrees_with_stdnum(code: str) -> None:
    assert (tax_code_problem(code) is None) == mst.is_valid(code)


def test_tax_code_branches() -> None:
    assert tax_code_problem("0100109106-001") is None
    assert tax_code_problem("0100109106-000") is not None
    assert tax_code_problem("0100109106-01") is not None


def test_uuid7_is_time_ordered() -> None:
    ids = [uuid7() for _ in range(50)]
    assert all(i.version == 7 for i in ids)
    assert [i.int >> 80 for i in ids] == sorted(i.int >> 80 for i in ids)


def test_keyed_hash_links_without_revealing() -> None:
    a = keyed_hash("001099012345", b"k1")
    assert a == keyed_hash("001099012345", b"k1")
    assert a != keyed_hash("001099012345", b"k2")
    assert "001099012345" not in a
