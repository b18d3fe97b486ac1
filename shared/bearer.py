"""The caller named by an HTTP bearer token, or the 401/403 problem that refuses it."""

from __future__ import annotations

from collections.abc import Container, Sequence

import jwt

from shared.auth import Caller, InvalidToken, Role, verify
from shared.oidc import OidcVerifier
from shared.problems import Problem
from shared.settings import IdentitySettings, ServiceSettings


class Authenticator:
    """Sends a token to its verifier: the development keys (HS256) or the identity provider
    (RS256/ES256, shared/oidc.py). Either may be absent: production has no HS256 keys
    (`ServiceSettings.token_key_list`), development usually no provider."""

    def __init__(self, keys: Sequence[str] = (), oidc: OidcVerifier | None = None) -> None:
        self.keys = list(keys)
        self.oidc = oidc

    @classmethod
    def of(cls, settings: ServiceSettings) -> Authenticator:
        return cls(settings.token_key_list, settings.oidc_verifier())

    @classmethod
    def of_environment(cls, keys: Sequence[str]) -> Authenticator:
        """These HS256 keys and the identity provider of the MOTCUA_OIDC_* environment."""
        return cls(keys, IdentitySettings().oidc_verifier())

    def prefetch(self) -> None:
        """Begin fetching the provider's keys (in the background, on the running event loop), so
        that the first caller does not wait for them."""
        if self.oidc is not None:
            self.oidc.keys.refresh_soon()

    def verify_known(self, token: str) -> Caller:
        """The token's caller with the keys in hand (no waiting); InvalidToken otherwise."""
        provider = self._provider_of(token)
        return verify(token, self.keys) if provider is None else provider.verify_known(token)

    async def verify(self, token: str) -> Caller:
        """As verify_known, waiting for the provider's keys when the token names one not in hand."""
        provider = self._provider_of(token)
        return verify(token, self.keys) if provider is None else await provider.verify(token)

    def _provider_of(self, token: str) -> OidcVerifier | None:
        """The identity provider if it verifies this token; None if the development keys do.
        With one verifier only there is nothing to read; with both, the header's algorithm
        decides (each checks it again: an HS256 token never meets the provider's public keys)."""
        if self.oidc is None:
            if not self.keys:
                raise InvalidToken("no token is accepted: no key and no identity provider")
            return None
        if not self.keys:
            return self.oidc
        try:
            hs256 = jwt.get_unverified_header(token).get("alg") == "HS256"
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        return None if hs256 else self.oidc


def _token(authorization: str | None) -> str:
    if authorization is None or not authorization.lower().startswith("bearer "):
        raise Problem(
            401, "Unauthorized", "Send `Authorization: Bearer <token>`", kind="unauthorized"
        )
    return authorization[7:].strip()


def _unauthorized(exc: InvalidToken) -> Problem:
    return Problem(401, "Unauthorized", f"Invalid token: {exc}", kind="unauthorized")


def _admitted(caller: Caller, role: Role, units: Container[str] | None) -> Caller:
    if units is not None and caller.unit not in units:
        # Not echoed: the claim is the signer's, and the answer is the same for any unknown one.
        raise Problem(
            401,
            "Unauthorized",
            "Invalid token: its unit is not in the reference data",
            kind="unauthorized",
        )
    if caller.role != role:
        raise Problem(403, "Forbidden", f"This API is for the {role} role", kind="forbidden")
    return caller


def bearer_caller(
    authorization: str | None,
    keys: list[str] | Authenticator,
    role: Role,
    *,
    units: Container[str] | None = None,
) -> Caller:
    """The caller of one unit named by a bearer token of the given role; 401/403 otherwise.

    `keys`: HS256 keys, or an Authenticator (a token naming a provider's key not in hand yet is
    401 here: `signed_in_caller` waits for it). `units`: the unit codes the reference data knows
    (every code ever, ended ones included: a unit that ended may still read its dossiers;
    whether it may receive is the reception's check). A token naming a unit outside them is 401,
    as one naming no unit code at all.
    """
    token = _token(authorization)
    try:
        if isinstance(keys, Authenticator):
            caller = keys.verify_known(token)
        else:
            caller = verify(token, keys)
    except InvalidToken as exc:
        raise _unauthorized(exc) from exc
    return _admitted(caller, role, units)


async def signed_in_caller(
    authorization: str | None,
    authenticator: Authenticator,
    role: Role,
    *,
    units: Container[str] | None = None,
) -> Caller:
    """As bearer_caller, waiting (briefly) for the identity provider's keys when the token is
    signed by a key it has just rotated in."""
    token = _token(authorization)
    try:
        caller = await authenticator.verify(token)
    except InvalidToken as exc:
        raise _unauthorized(exc) from exc
    return _admitted(caller, role, units)
