"""The caller named by an HTTP bearer token, or the 401/403 problem that refuses it."""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import FastAPI

from shared.auth import Caller, InvalidToken, Role, verify
from shared.oidc import OidcVerifier
from shared.probes import CLUSTER_PATHS
from shared.problems import PROBLEM_CONTENT, Problem, complete_openapi
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


# RFC 6750 challenges: how a client learns that a bearer token is wanted, and what was wrong.
_NO_TOKEN = {"WWW-Authenticate": 'Bearer realm="motcua"'}
_BAD_TOKEN = {"WWW-Authenticate": 'Bearer realm="motcua", error="invalid_token"'}
_WRONG_ROLE = {"WWW-Authenticate": 'Bearer realm="motcua", error="insufficient_scope"'}


def _token(authorization: str | None) -> str:
    if authorization is None or not authorization.lower().startswith("bearer "):
        raise Problem(
            401,
            "Unauthorized",
            "Send `Authorization: Bearer <token>`",
            kind="unauthorized",
            headers=_NO_TOKEN,
        )
    return authorization[7:].strip()


def _unauthorized(exc: InvalidToken) -> Problem:
    return Problem(
        401, "Unauthorized", f"Invalid token: {exc}", kind="unauthorized", headers=_BAD_TOKEN
    )


def _admitted(caller: Caller, role: Role, units: Container[str] | None) -> Caller:
    if units is not None and caller.unit not in units:
        # Not echoed: the claim is the signer's, and the answer is the same for any unknown one.
        raise _unauthorized(InvalidToken("its unit is not in the reference data"))
    if caller.role != role:
        raise Problem(
            403,
            "Forbidden",
            f"This API is for the {role} role",
            kind="forbidden",
            headers=_WRONG_ROLE,
        )
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


@dataclass(frozen=True)
class Gate:
    """One service's door: the role its routes serve, against the units the map knows now
    (`units` is read at each call: a SIGHUP reload replaces the map)."""

    role: Role
    authenticator: Authenticator
    units: Callable[[], Container[str]]

    @classmethod
    def opened(
        cls,
        role: Role,
        authenticator: Authenticator | None,
        keys: Sequence[str],
        units: Callable[[], Container[str]],
    ) -> Gate:
        """The gate, its provider's keys being fetched already (call it on the running event
        loop: the first token then finds them). No authenticator given: these development keys
        and the MOTCUA_OIDC_* of the environment."""
        if authenticator is None:
            authenticator = Authenticator.of_environment(keys)
        authenticator.prefetch()
        return cls(role, authenticator, units)

    async def sign_in(self, authorization: str | None) -> Caller:
        """The caller of a unit the map knows, in this gate's role; 401/403 otherwise. A token
        signed by a key the identity provider has just rotated in waits for its key set."""
        return await signed_in_caller(
            authorization, self.authenticator, self.role, units=self.units()
        )


def document_bearer(app: FastAPI, role: Role) -> None:
    """Say in the OpenAPI document that every route but the probes wants a bearer token of
    `role` (the routes read the header themselves: FastAPI cannot see it), so that /docs offers
    to authorize and generated clients send it."""

    def complete(schema: dict[str, Any]) -> None:
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": f"An access token of the {role} role whose unit claim names a unit of"
            " the administrative map: the province's identity provider's (RS256/ES256), or"
            " outside production a development token (`motcua token`).",
        }
        refusals = {
            "401": "No token, or not a valid one",
            "403": f"Not a token of the {role} role",
        }
        for path, operations in schema.get("paths", {}).items():
            if path in CLUSTER_PATHS:
                continue
            for operation in operations.values():
                operation["security"] = [{"bearer": []}]
                responses = operation.setdefault("responses", {})
                for code, description in refusals.items():
                    responses.setdefault(
                        code, {"description": description, "content": PROBLEM_CONTENT}
                    )

    complete_openapi(app, complete)
