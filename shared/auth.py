"""Signed bearer tokens that bind a caller (a counter or an officer) to one unit.

HS256 JWTs verified against the configured keys (several, so keys can rotate). The unit comes from
the token only, never from a request body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import jwt

Role = Literal["counter", "officer"]
ISSUER = "motcua"


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
        if role not in ("counter", "officer") or not isinstance(claims["unit"], str):
            raise InvalidToken("token has no valid unit and role")
        return Caller(unit=claims["unit"], role=role, subject=str(claims["sub"]))
    raise InvalidToken("signature matches no configured key")
