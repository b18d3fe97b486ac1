"""Logs are JSON lines that never carry a national ID, tax or phone number in clear."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from shared.logging import configure_logging, get_logger, mask_text


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """configure_logging writes to the stdout of the moment (here pytest's capture, closed after
    the test): later tests must not log into it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_mask_text_is_the_free_text_masking() -> None:
    assert mask_text("id 001099012345 ok") == "id 001********* ok"
    assert mask_text("MST 0100109106-001, CMND 025123456") == "MST 010*******-***, CMND 025******"
    assert mask_text("dossier T01.X00004-261008-0975 on 2025-07-01") == (
        "dossier T01.X00004-261008-0975 on 2025-07-01"
    )


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


def test_logs_mask_ids_with_separators_in_fields_and_exceptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("test")
    try:
        raise ValueError("bad tax code 0100109106-001")
    except ValueError:
        get_logger("t").exception(
            "refused", reason="CCCD 079 203 001 234", nested={"cmnd": ["025.123.456"]}
        )
    out = capsys.readouterr().out
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert line["reason"] == "CCCD 079 *** *** ***"
    assert line["nested"] == {"cmnd": ["025.***.***"]}
    assert "010*******-***" in line["exception"]
    for clear in ("0100109106", "203 001 234", "123.456"):
        assert clear not in out
