"""The officers' API refuses, as a 422, every instant PostgreSQL could not store (issue 14.4)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from services.processing.api import INSTANT_RANGE, Instant, _after

instant: TypeAdapter[datetime] = TypeAdapter(Instant)


def cursor(at: str, ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at}|{ident}".encode()).decode()


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T12:00:00"]
)
def test_instants_at_the_edges_of_the_calendar_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match=INSTANT_RANGE):
        instant.validate_python(text)


@pytest.mark.parametrize("text", ["0001-01-02T00:00:00+14:00", "9999-12-30T23:59:59-14:00"])
def test_the_bounds_convert_to_utc_whatever_their_offset(text: str) -> None:
    value = instant.validate_python(text)
    assert value.astimezone(UTC).year in (1, 9999)


def test_a_cursor_names_the_last_dossier_seen() -> None:
    ident = uuid.uuid4()
    at = datetime(2026, 3, 2, 8, 30, tzinfo=timezone(timedelta(hours=7)))
    assert _after(cursor(at.isoformat(), ident)) == (at, ident)
    assert _after(None) is None


@pytest.mark.parametrize(
    "value",
    [
        cursor("0001-01-01T00:00:00+14:00", uuid.uuid4()),
        base64.urlsafe_b64encode(b"2026-03-02T08:30:00+07:00|not-a-uuid").decode(),
        cursor("2026-03-02T08:30:00+07:00", uuid.uuid4())[:-4],
        "not-a-cursor",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_cursor_no_page_gave_is_a_422_on_the_cursor(value: str) -> None:
    with pytest.raises(RequestValidationError) as refused:
        _after(value)
    (error,) = refused.value.errors()
    assert error["loc"] == ("query", "cursor")
    assert value not in str(error)
