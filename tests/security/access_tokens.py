"""Bearer tokens for the access control suite: a valid one, and every kind of forgery."""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt

from shared.auth import ISSUER
from shared.settings import DEV_TOKEN_KEY

# Long enough for HS256 (PyJWT warns under 32 bytes), and configured on no service.
OTHER_KEY = "a-key-that-no-motcua-service-is-configured-with"


def claims(
    unit: str, role: str, subject: str = "access-suite", ttl_s: int = 3600
) -> dict[str, Any]:
    """What a token of the development issuer carries (shared.auth.mint's claims)."""
    now = int(time.time())
    return {
        "iss": ISSUER,
        "sub": subject,
        "unit": unit,
        "role": role,
        "iat": now,
        "exp": now + ttl_s,
    }


def sign(payload: dict[str, Any], key: str = DEV_TOKEN_KEY, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(unit: str, role: str, ttl_s: int = 3600) -> dict[str, str]:
    """The headers of a valid token: the forgeries below differ from it in one thing only."""
    return bearer(sign(claims(unit, role, ttl_s=ttl_s)))


def _segment(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _without(name: str) -> Callable[[str, str], str]:
    def forge(unit: str, role: str) -> str:
        payload = claims(unit, role)
        del payload[name]
        return sign(payload)

    return forge


def _with(**changes: Any) -> Callable[[str, str], str]:
    def forge(unit: str, role: str) -> str:
        return sign({**claims(unit, role), **changes})

    return forge


def _alg_none(unit: str, role: str) -> str:
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims(unit, role))}."


def _payload_swapped(unit: str, role: str) -> str:
    # A genuine token of another unit, its payload replaced: the signature no longer matches.
    header, _, signature = sign(claims("T79.X25747", role)).split(".")
    return f"{header}.{_segment(claims(unit, role))}.{signature}"


def _signature_flipped(unit: str, role: str) -> str:
    header, payload, signature = sign(claims(unit, role)).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{header}.{payload}.{flipped}"


def _hs512(unit: str, role: str) -> str:
    # By hand: PyJWT warns (an error under -W error) at HS512 with a key this short.
    signing_input = f"{_segment({'alg': 'HS512', 'typ': 'JWT'})}.{_segment(claims(unit, role))}"
    digest = hmac.digest(DEV_TOKEN_KEY.encode(), signing_input.encode(), "sha512")
    return f"{signing_input}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def _now() -> int:
    return int(time.time())


# Each forgery of a token for `unit` and `role`; every service must answer 401 to each.
FORGERIES: dict[str, Callable[[str, str], str]] = {
    "signature of another token": _payload_swapped,
    "signature altered": _signature_flipped,
    "alg none, no signature": _alg_none,
    "signed with a key not configured": lambda unit, role: sign(claims(unit, role), OTHER_KEY),
    "HS512 with the configured key": _hs512,
    "expired": lambda unit, role: sign({**claims(unit, role), "exp": _now() - 60}),
    "not yet valid (nbf)": lambda unit, role: sign({**claims(unit, role), "nbf": _now() + 3600}),
    "issued in the future (iat)": lambda unit, role: sign(
        {**claims(unit, role), "iat": _now() + 3600}
    ),
    "wrong issuer": _with(iss="https://idp.example/realms/other"),
    "no issuer": _without("iss"),
    "no expiry": _without("exp"),
    "no unit claim": _without("unit"),
    "no role claim": _without("role"),
    "no sub claim": _without("sub"),
    "role not a role": _with(role="superuser"),
    "role a list": lambda unit, role: sign({**claims(unit, role), "role": [role]}),
    "malformed unit (old synthetic code)": _with(unit="T001.H01.X01"),
    "malformed unit (quote)": lambda unit, role: sign({**claims(unit, role), "unit": unit + '"'}),
    "malformed unit (newline)": lambda unit, role: sign(
        {**claims(unit, role), "unit": unit + "\nT01"}
    ),
    "malformed unit (lower case)": lambda unit, role: sign(
        {**claims(unit, role), "unit": unit.lower()}
    ),
    "malformed unit (a number)": _with(unit=1),
    "malformed unit (a list)": lambda unit, role: sign({**claims(unit, role), "unit": [unit]}),
    "unknown unit (province)": _with(unit="T00"),
    "unknown unit (commune center)": _with(unit="T99.X99999"),
    "garbage": lambda unit, role: "garbage",
    "three garbage segments": lambda unit, role: "a.b.c",
    "a JSON payload, unsigned": lambda unit, role: json.dumps(claims(unit, role)),
}

# Authorization headers that are not a bearer token at all.
NOT_BEARER: dict[str, dict[str, str]] = {
    "scheme alone": {"Authorization": "Bearer"},
    "basic credentials": {"Authorization": "Basic " + base64.b64encode(b"counter:pw").decode()},
    "token without a scheme": {"Authorization": sign(claims("T01.X00004", "counter"))},
}
