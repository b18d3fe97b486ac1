"""Tokens bind a caller to a unit of the scheme; a remembered verification never outlives the
token; a unit the reference data does not know is refused as a forged token is."""

from __future__ import annotations

import time

import jwt
import pytest

from shared import auth
from shared.bearer import Authenticator, bearer_caller
from shared.problems import Problem

KEY = "k" * 32
BA_DINH = "T01.X00004"  # phường Ba Đình's center, Hà Nội, from 1 July 2025


def test_a_token_names_its_unit_and_role() -> None:
    token = auth.mint(KEY, unit=BA_DINH, role="counter", subject="quầy 1")
    assert auth.verify(token, [KEY]) == auth.Caller(BA_DINH, "counter", "quầy 1")


def test_any_configured_key_verifies_so_keys_can_rotate() -> None:
    token = auth.mint(KEY, unit=BA_DINH, role="officer", subject="s")
    assert auth.verify(token, ["n" * 32, KEY]).role == "officer"


def test_a_token_signed_by_another_key_is_refused() -> None:
    token = auth.mint("x" * 32, unit=BA_DINH, role="counter", subject="s")
    with pytest.raises(auth.InvalidToken, match="no configured key"):
        auth.verify(token, [KEY])


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = auth.mint(KEY, unit=BA_DINH, role="counter", subject="s", ttl_s=60)
    assert auth.verify(token, [KEY]).unit == BA_DINH  # verified, hence remembered
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(auth.InvalidToken, match="expired"):
        auth.verify(token, [KEY])


@pytest.mark.parametrize(
    "code",
    ["T01", "T02.H024", "T02.H024.X00688", "T01.X00004", "T96.X32248"],
)
def test_every_shape_of_the_unit_scheme_is_a_unit_code(code: str) -> None:
    assert auth.is_unit_code(code)


@pytest.mark.parametrize(
    "claim",
    [
        "T001.H01.X01",  # the synthetic map's, gone
        "T1",
        "T01.H24",
        "T01.X0004",
        "T01.X00004.H001",
        "T01.X00004\n",
        "T01.X00004 ",
        'T01"',
        "t01",
        "T٠١",  # Arabic-Indic digits: `\d` would take them
        "",
        7,
        None,
        ["T01"],
    ],
)
def test_a_token_whose_unit_is_not_a_unit_code_is_refused(claim: object) -> None:
    now = int(time.time())
    claims = {"iss": "motcua", "sub": "s", "role": "counter", "iat": now, "exp": now + 60}
    token = jwt.encode({**claims, "unit": claim}, KEY, algorithm="HS256")
    with pytest.raises(auth.InvalidToken, match="unit"):
        auth.verify(token, [KEY])


def bearer(unit: str, role: auth.Role = "counter") -> str:
    return f"Bearer {auth.mint(KEY, unit=unit, role=role, subject='s')}"


def test_the_bearer_is_refused_401_when_the_reference_data_does_not_know_its_unit() -> None:
    known = {BA_DINH, "T02.H024"}
    assert bearer_caller(bearer(BA_DINH), [KEY], "counter", units=known).unit == BA_DINH
    # A unit that ended (Hà Giang's city, 30 June 2025) is still known: it may read its dossiers.
    assert bearer_caller(bearer("T02.H024"), [KEY], "counter", units=known).unit == "T02.H024"
    with pytest.raises(Problem) as refused:
        bearer_caller(bearer("T99.X99999"), [KEY], "counter", units=known)
    assert (refused.value.status, refused.value.kind) == (401, "unauthorized")
    assert "T99" not in refused.value.detail
    # Unknown first, role second: a forged unit never learns which role it would need.
    with pytest.raises(Problem) as refused:
        bearer_caller(bearer("T99.X99999", "officer"), [KEY], "counter", units=known)
    assert refused.value.status == 401
    with pytest.raises(Problem) as forbidden:
        bearer_caller(bearer(BA_DINH, "officer"), [KEY], "counter", units=known)
    assert forbidden.value.status == 403


def test_an_authenticator_without_a_provider_verifies_the_development_keys() -> None:
    authenticator = Authenticator([KEY])
    assert bearer_caller(bearer(BA_DINH), authenticator, "counter").unit == BA_DINH
    with pytest.raises(Problem) as refused:
        bearer_caller(
            f"Bearer {auth.mint('x' * 32, unit=BA_DINH, role='counter', subject='s')}",
            authenticator,
            "counter",
        )
    assert refused.value.status == 401


def test_with_neither_keys_nor_a_provider_no_token_is_accepted() -> None:
    with pytest.raises(Problem) as refused:
        bearer_caller(bearer(BA_DINH), Authenticator([]), "counter")
    assert refused.value.status == 401
    assert "no key and no identity provider" in refused.value.detail
