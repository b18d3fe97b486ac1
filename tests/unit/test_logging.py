from __future__ import annotations

import json
import logging

import pytest

from shared.logging import configure_logging, get_logger, mask_text


def test_mask_text_hides_twelve_digit_ids_only() -> None:
    assert mask_text("id 001099012345 ok") == "id 001********* ok"
    assert mask_text("phone 0912345678") == "phone 0912345678"
    assert mask_text("long 00109901234567") == "long 00109901234567"


def test_logs_never_carry_a_national_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test")
    get_logger("t").info("applicant 079203001234 refused", extra={"id": "079203001234"})
    logging.getLogger("stdlib").warning("from stdlib 079203001234")
    out = capsys.readouterr().out
    assert "079203001234" not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["message"] == "applicant 079********* refused"
    assert lines[0]["service"] == "test"
    assert "079*********" in lines[1]["message"]
