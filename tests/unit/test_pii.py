"""ID-like numbers typed into free text are masked; codes, dates and amounts are left alone."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from shared.pii import mask, mask_bytes, mask_value
from shared.text import FreeText, Note, Reason, Text


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("CCCD 079203001234 của ông A", "CCCD 079********* của ông A"),
        ("CCCD: 079 203 001 234.", "CCCD: 079 *** *** ***."),
        ("số 079.203.001.234, đã kiểm tra", "số 079.***.***.***, đã kiểm tra"),
        ("số 079-203-001-234", "số 079-***-***-***"),
        ("số 0792 0300 1234", "số 079* **** ****"),
        ("số 079.2.03.001234", "số 079.*.**.******"),
        ("CMND 025123456 cấp ngày 01/07/2015", "CMND 025****** cấp ngày 01/07/2015"),
        ("MST 0100109106", "MST 010*******"),
        ("MST 0100109106-001 (chi nhánh)", "MST 010*******-*** (chi nhánh)"),
        ("MST 0100 109 106", "MST 010* *** ***"),
        ("(079203001234)", "(079*********)"),
        ("079203001234 0100109106", "079********* 010*******"),
        ("gọi 0912345678", "gọi 091*******"),
    ],
)
def test_id_like_numbers_are_masked_with_or_without_separators(typed: str, shown: str) -> None:
    assert mask(typed) == shown


@pytest.mark.parametrize(
    "kept",
    [
        "hồ sơ T01.X00004-261008-0975 tại T02.H024.X00691",
        "hồ sơ H15.50.05.13-261008-0975",
        "thủ tục 1.001193 và 1.002189.000.00.00.H12",
        "nhận lúc 2025-07-01 08:00:00.123456+07:00 hoặc 2025-07-01T08:00:00Z",
        "hẹn ngày 01/07/2025, 01.07.2025 hoặc 20250701",
        "phí 150.000.000 đồng",
        "phí 1.500.000.000",
        "phí 1500000000 đ",
        "phí 250000000 VNĐ",
        "phí VND 250000000",
        "phí 1 500 000 000 đồng",
        "dossier 0192f3a4-5b6c-7d8e-9f01-234567890123",
        "elapsed 0.123456789012",
        "from 192.168.100.200 and 203.113.131.101:443",
        "Nghị định 13/2023/NĐ-CP, điều 12",
        "079*********",
    ],
)
def test_codes_dates_and_amounts_stay(kept: str) -> None:
    assert mask(kept) == kept


def test_an_id_beside_an_amount_is_masked_and_the_amount_kept() -> None:
    assert mask("nộp 150.000.000 đồng, CCCD 079203001234") == (
        "nộp 150.000.000 đồng, CCCD 079*********"
    )
    assert mask("150.000.000 079203001234") == "150.000.000 079*********"
    # An ID is no amount even next to "đồng": it does not end in 000.
    assert mask("MST 8012345678 đồng thời") == "MST 801******* đồng thời"


_WORDS = st.sampled_from(["", "Ông ", "CCCD: ", "MST ", "(", "số "])
_ENDS = st.sampled_from(["", " ", ".", ", đã nộp", ")", " - ", "\n"])


# How people group each kind when they type it: CMND, tax code or phone, CCCD (PPP G YY SSSSSS).
_GROUPINGS = {
    9: [(9,), (3, 3, 3)],
    10: [(10,), (4, 3, 3), (3, 3, 4), (2, 4, 4)],
    12: [(12,), (3, 3, 3, 3), (4, 4, 4), (3, 1, 2, 6)],
}


@st.composite
def _typed_ids(draw: st.DrawFn) -> tuple[str, str]:
    """An ID of 9, 10 or 12 digits, whole or in groups split by one kind of separator."""
    length = draw(st.sampled_from(sorted(_GROUPINGS)))
    digits = draw(st.text("0123456789", min_size=length, max_size=length))
    # IDs ending in 000 and typed like amounts are the documented exception.
    if digits.endswith("000") and not digits.startswith("0"):
        digits = digits[:-1] + "1"
    sizes = draw(st.sampled_from(_GROUPINGS[length]))
    separator = draw(st.sampled_from([" ", ".", "-"]))
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    typed = separator.join(digits[a : a + n] for a, n in zip(starts, sizes, strict=True))
    return digits, draw(_WORDS) + typed + draw(_ENDS)


@settings(max_examples=500)
@given(_typed_ids())
def test_no_typed_id_survives_in_clear(case: tuple[str, str]) -> None:
    digits, text = case
    masked = mask(text)
    assert digits not in re.sub(r"[ .\-]", "", masked)
    assert len(masked) == len(text)  # the text keeps its shape (and its length limits)
    assert mask(masked) == masked


def test_bytes_keep_what_is_not_utf8_and_what_holds_no_id() -> None:
    key = b"0192f3a4-5b6c-7d8e-9f01-234567890123"
    assert mask_bytes(key) is key
    assert mask_bytes(b"\xff079203001234\xfe") == b"\xff079*********\xfe"


def test_values_are_masked_in_nested_structures_keys_included() -> None:
    assert mask_value({"079203001234": ["MST 0100109106", 42, ("0912345678",)]}) == {
        "079*********": ["MST 010*******", 42, ("091*******",)]
    }


class _Body(BaseModel):
    reason: Reason
    note: Note | None = None
    criteria: list[FreeText] = Field(default_factory=list)
    for_what: FreeText = Field(default="", max_length=20)
    id_number: Text


def test_free_text_types_mask_at_validation_and_id_fields_do_not() -> None:
    body = _Body(
        reason="CCCD 079 203 001 234 không khớp",
        note="MST 0100109106-001",
        criteria=["nhân viên gọi 0912345678"],
        for_what="lệ phí 079203001234",
        id_number="079203001234",
    )
    assert body.reason == "CCCD 079 *** *** *** không khớp"
    assert body.note == "MST 010*******-***"
    assert body.criteria == ["nhân viên gọi 091*******"]
    assert body.for_what == "lệ phí 079*********"
    assert body.id_number == "079203001234"  # hashed by intake, never stored in clear


def test_free_text_keeps_its_length_and_nul_rules() -> None:
    with pytest.raises(ValidationError) as error:
        _Body(reason="", for_what="x" * 21, id_number="1", criteria=["a\x00"])
    kinds = {(e["loc"][0], e["type"]) for e in error.value.errors()}
    assert kinds == {
        ("reason", "string_too_short"),
        ("for_what", "string_too_long"),
        ("criteria", "nul_character"),
    }
