"""Signed bearer tokens that bind a caller (a counter or an officer) to one unit.

HS256 JWTs verified against the configured keys (several, so keys can rotate). The unit comes from
the token only, never from a request body, and must be a code of the unit scheme
(docs/reference-data.md); whether the reference data knows it is the service's check
(`shared.bearer`).
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from typing import Literal

import jwt

Role = Literal["counter", "officer"]
ISSUER = "motcua"
# The one-stop unit codes of docs/reference-data.md: a provincial center T{pp}, a district unit
# T{pp}.H{ddd} and a commune unit T{pp}.H{ddd}.X{ccccc} of a map with districts, a commune center
# T{pp}.X{ccccc} of the two-level map. ASCII digits only (`\d` would take any Unicode digit).
UNIT_CODE = re.compile(r"T[0-9]{2}(?:\.H[0-9]{3}(?:\.X[0-9]{5})?|\.X[0-9]{5})?")


def is_unit_code(value: object) -> bool:
    """Whether a value is written as a one-stop unit code (known or not to the reference data)."""
    return isinstance(value, str) and UNIT_CODE.fullmatch(value) is not None


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or signed by no configured key."""


@dataclass(frozen=True, slots=True)
class Caller:
    unit: str
    role: Role
    subject: str


def mint(key: str, *, unit: str, role: Role, subject: str, ttl_s: int = 8 * 3600) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "unit": unit,
        "role": role,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, key, algorithm="HS256")


def verify(token: str, keys: list[str]) -> Caller:
    """The token's caller; raises InvalidToken.

    A counter sends the same token all day, and checking its signature was a tenth of intake's
    CPU per request: a verified token is remembered (bounded) with its expiry, which is checked
    again on every use. A failed verification is never remembered.
    """
    caller, expires = _verified(token, tuple(keys))
    if time.time() >= expires:
        raise InvalidToken("Signature has expired")
    return caller


@functools.lru_cache(maxsize=4096)
def _verified(token: str, keys: tuple[str, ...]) -> tuple[Caller, float]:
    for key in keys:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "unit", "role", "sub"]},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        role = claims["role"]
        if role not in ("counter", "officer"):
            raise InvalidToken("token has no valid role")
        # Checked once per token (the verification is remembered), never echoed: it may be
        # anything a forger wrote.
        if not is_unit_code(claims["unit"]):
            raise InvalidToken("the token's unit is not a unit code")
        caller = Caller(unit=claims["unit"], role=role, subject=str(claims["sub"]))
        return caller, float(claims["exp"])
    raise InvalidToken("signature matches no configured key")
