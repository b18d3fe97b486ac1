"""Where the simulated counters and officers get their access tokens.

`DevelopmentTokens` mints HS256 tokens with a development key, as `motcua token` does.
`KeycloakTokens` signs each simulated clerk in at a Keycloak realm set up by
deploy/local/keycloak.py: a user per unit and role, created through the admin API the first time
it is needed (its unit and role as the user attributes the realm puts into access tokens), then
signed in with its password; tokens are kept until shortly before they expire.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from shared.auth import Role, mint

# The demo realm (deploy/local/keycloak.py creates it): its name, the client the counters' and
# officers' applications sign in as, and the user attributes its mappers put into access tokens
# as claims of the same names.
REALM = "motcua"
CLIENT = "motcua-apps"
UNIT_ATTRIBUTE = "motcua_unit"
ROLE_ATTRIBUTE = "motcua_role"
# Sign in again this long before a token expires: a request may take that long to arrive.
RENEW_BEFORE_S = 30.0


class TokenSource(Protocol):
    async def headers(self, unit: str, role: Role) -> dict[str, str]:
        """The Authorization header of a clerk of `unit` in `role`."""
        ...

    async def close(self) -> None: ...


class DevelopmentTokens:
    def __init__(self, key: str) -> None:
        self.key = key

    async def headers(self, unit: str, role: Role) -> dict[str, str]:
        token = mint(self.key, unit=unit, role=role, subject=f"sim-{role}-{unit}")
        return {"Authorization": f"Bearer {token}"}

    async def close(self) -> None:
        return None


class SignInRefused(Exception):
    """Keycloak refused to create a clerk or to sign one in; the message says what it answered."""


@dataclass
class _Held:
    token: str
    renew_at: float


class KeycloakTokens:
    def __init__(
        self,
        url: str,
        admin_password: str,
        *,
        realm: str = REALM,
        client: str = CLIENT,
        admin: str = "admin",
        password: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.realm = realm
        self.client = client
        self._admin = (admin, admin_password)
        self._admin_token: _Held | None = None
        # Every clerk this run signs in has it (an existing one is given it).
        self._password = password or secrets.token_urlsafe(18)
        self._held: dict[tuple[str, Role], _Held] = {}
        self._locks: dict[tuple[str, Role], asyncio.Lock] = {}
        self._http = httpx.AsyncClient(timeout=30)

    async def close(self) -> None:
        await self._http.aclose()

    async def headers(self, unit: str, role: Role) -> dict[str, str]:
        who = (unit, role)
        held = self._held.get(who)
        if held is None or held.renew_at <= time.monotonic():
            async with self._locks.setdefault(who, asyncio.Lock()):
                held = self._held.get(who)
                if held is None or held.renew_at <= time.monotonic():
                    held = self._held[who] = await self._sign_in(unit, role)
        return {"Authorization": f"Bearer {held.token}"}

    async def _sign_in(self, unit: str, role: Role) -> _Held:
        username = clerk_username(unit, role)
        answer = await self._password_grant(username)
        if answer.status_code == 401:  # no such clerk yet (or another run's password)
            await self._provision(unit, role)
            answer = await self._password_grant(username)
        if answer.status_code != 200:
            raise SignInRefused(f"{username}: {answer.status_code} {answer.text[:300]}")
        return _held(answer.json())

    async def _password_grant(self, username: str) -> httpx.Response:
        return await self._http.post(
            f"{self.url}/realms/{self.realm}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": self.client,
                "username": username,
                "password": self._password,
                "scope": "openid",
            },
        )

    async def _admin_headers(self) -> dict[str, str]:
        if self._admin_token is None or self._admin_token.renew_at <= time.monotonic():
            user, password = self._admin
            answer = await self._http.post(
                f"{self.url}/realms/master/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "client_id": "admin-cli",
                    "username": user,
                    "password": password,
                },
            )
            if answer.status_code != 200:
                raise SignInRefused(f"the realm's administrator: {answer.status_code}")
            self._admin_token = _held(answer.json())
        return {"Authorization": f"Bearer {self._admin_token.token}"}

    async def _provision(self, unit: str, role: Role) -> None:
        """Create the clerk, or give an existing one (from an earlier run) this run's password."""
        username = clerk_username(unit, role)
        users = f"{self.url}/admin/realms/{self.realm}/users"
        admin = await self._admin_headers()
        user = clerk_user(unit, role, self._password)
        created = await self._http.post(users, headers=admin, json=user)
        if created.status_code == 409:
            found = await self._http.get(
                users, headers=admin, params={"username": username, "exact": "true"}
            )
            (found_user,) = found.json()
            reset = await self._http.put(
                f"{users}/{found_user['id']}/reset-password",
                headers=admin,
                json=user["credentials"][0],
            )
            if reset.status_code != 204:
                raise SignInRefused(f"{username}: password reset {reset.status_code}")
        elif created.status_code != 201:
            raise SignInRefused(f"{username}: created {created.status_code} {created.text[:300]}")


def clerk_username(unit: str, role: Role) -> str:
    return f"{role}-{unit}".lower()  # Keycloak keeps usernames in lower case


def clerk_user(unit: str, role: Role, password: str) -> dict[str, Any]:
    """A clerk as Keycloak's admin API takes a user: its unit and role as the attributes the
    realm's mappers put into access tokens (deploy/local/keycloak.py)."""
    username = clerk_username(unit, role)
    return {
        "username": username,
        "enabled": True,
        "email": f"{username}@demo.motcua.invalid",
        "emailVerified": True,
        "firstName": role,
        "lastName": unit,
        "attributes": {UNIT_ATTRIBUTE: [unit], ROLE_ATTRIBUTE: [role]},
        "credentials": [{"type": "password", "value": password, "temporary": False}],
    }


def _held(answer: dict[str, Any]) -> _Held:
    lifetime = float(answer.get("expires_in", 60))
    return _Held(str(answer["access_token"]), time.monotonic() + lifetime - RENEW_BEFORE_S)
