"""Access tokens of the province's identity provider (OIDC): who the caller is, unit and role.

A token is accepted when it is signed RS256 or ES256 by a key of the provider's JWKS, was issued
by the configured issuer for the configured audience, is within its validity (give or take the
clock skew allowed) and does not live longer than allowed (a token minted for a month is a
stolen-credential risk whatever its signature). The unit and the role come from configured
claims; the role's values may be the provider's own names, mapped to motcua's roles.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt

from shared.auth import Caller, InvalidToken, Role, is_unit_code
from shared.jwks import ALGORITHMS, JwksKeys

ROLES: Mapping[str, Role] = MappingProxyType({"counter": "counter", "officer": "officer"})
# Verified tokens remembered: a counter sends one token for many requests (see shared/auth.py).
CACHE_SIZE = 4096


class UnknownKey(InvalidToken):
    """The token names a key the provider's key set in hand does not hold (yet)."""


@dataclass(frozen=True, slots=True)
class OidcPolicy:
    """What an access token must say, and where it says the caller's unit and role."""

    issuer: str
    audience: str
    unit_claim: str = "motcua_unit"
    role_claim: str = "motcua_role"
    # The provider's role value → motcua's role; values not in it grant no role.
    role_values: Mapping[str, Role] = field(default_factory=lambda: ROLES)
    max_lifetime_s: int = 3600
    leeway_s: int = 60


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim of that name, or, failing that, reached by its dotted path (Keycloak puts
    client roles in `resource_access.<client>.roles`); None if absent."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def caller_of(claims: Mapping[str, Any], policy: OidcPolicy) -> Caller:
    """The caller named by verified claims; InvalidToken if they name no unit code or not
    exactly one role. Claim values are never echoed: they may be anything the provider holds."""
    unit = claim(claims, policy.unit_claim)
    if not is_unit_code(unit):
        raise InvalidToken("the token's unit is not a unit code")
    value = claim(claims, policy.role_claim)
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    roles = {
        policy.role_values[v] for v in values if isinstance(v, str) and v in policy.role_values
    }
    if len(roles) != 1:
        # Both roles in one token: which one acts would be a guess (a person who is both signs
        # in to each role's client).
        raise InvalidToken("token has no valid role" if not roles else "token has both roles")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("the token names no subject")
    return Caller(unit=unit, role=roles.pop(), subject=subject)


@dataclass(frozen=True, slots=True)
class _Verified:
    caller: Caller
    until: float  # exp + leeway
    kid: str
    key: jwt.PyJWK


class OidcVerifier:
    """Verifies the provider's access tokens against its key set."""

    def __init__(self, policy: OidcPolicy, keys: JwksKeys) -> None:
        self.policy = policy
        self.keys = keys
        self._verified: dict[str, _Verified] = {}

    def verify_known(self, token: str) -> Caller:
        """The token's caller, with the keys in hand (UnknownKey, and a refresh begun in the
        background, if it names another); InvalidToken otherwise.

        A verified token is remembered until it expires, and only while the key that verified
        it is still the provider's: a withdrawn key stops its tokens at the next refresh.
        """
        hit = self._verified.get(token)
        if hit is not None:
            if time.time() >= hit.until:
                del self._verified[token]
                raise InvalidToken("Signature has expired")
            if self.keys.get(hit.kid) is hit.key:
                return hit.caller
            del self._verified[token]  # its key was withdrawn or replaced: verified again
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        # Before any key is chosen: `none`, HS256 (with the public key as its secret) and the
        # rest never reach a verifier.
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidToken("the token is not signed RS256 or ES256")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("the token names no key (kid)")
        key = self.keys.get(kid)
        if key is None:
            self.keys.refresh_soon()
            raise UnknownKey("the token is signed by no key of the identity provider")
        caller, until = self._decode(token, key)
        if len(self._verified) >= CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = _Verified(caller, until, kid, key)
        return caller

    async def verify(self, token: str) -> Caller:
        """As verify_known, waiting (briefly, and not more often than the key set allows) for
        the provider's keys when the token names a key not in hand: a key rotated in."""
        try:
            return self.verify_known(token)
        except UnknownKey:
            if not await self.keys.refreshed():
                raise
        return self.verify_known(token)

    def _decode(self, token: str, key: jwt.PyJWK) -> tuple[Caller, float]:
        policy = self.policy
        try:
            # The key is bound to its own algorithm: a token claiming another is refused.
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                issuer=policy.issuer,
                audience=policy.audience,
                leeway=policy.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        expires, issued = float(claims["exp"]), float(claims["iat"])
        if expires - issued > policy.max_lifetime_s:
            raise InvalidToken("the token lives longer than the identity provider's tokens may")
        return caller_of(claims, policy), expires + policy.leeway_s
