"""Tokens bind a caller to a unit; a remembered verification never outlives the token."""

from __future__ import annotations

import time

import pytest

from shared import auth

KEY = "k" * 32


def test_a_token_names_its_unit_and_role() -> None:
    token = auth.mint(KEY, unit="T001.H01", role="counter", subject="quầy 1")
    assert auth.verify(token, [KEY]) == auth.Caller("T001.H01", "counter", "quầy 1")


def test_any_configured_key_verifies_so_keys_can_rotate() -> None:
    token = auth.mint(KEY, unit="T001.H01", role="officer", subject="s")
    assert auth.verify(token, ["n" * 32, KEY]).role == "officer"


def test_a_token_signed_by_another_key_is_refused() -> None:
    token = auth.mint("x" * 32, unit="T001.H01", role="counter", subject="s")
    with pytest.raises(auth.InvalidToken, match="no configured key"):
        auth.verify(token, [KEY])


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = auth.mint(KEY, unit="T001.H01", role="counter", subject="s", ttl_s=60)
    assert auth.verify(token, [KEY]).unit == "T001.H01"  # verified, hence remembered
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(auth.InvalidToken, match="expired"):
        auth.verify(token, [KEY])
