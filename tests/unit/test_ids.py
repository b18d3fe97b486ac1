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
        ("003099012345", "province code 003"),
        ("001299012345", "in the future"),  # 2099
        ("00109901234a", "12 digits"),
    ],
)
def test_personal_id_structure(value: str, reason: str | None) -> None:
    problem = personal_id_problem(value, TODAY)
    if reason is None:
        assert problem is None
    else:
        assert problem is not None and reason in problem


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
