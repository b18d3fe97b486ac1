"""The identity provider's signing keys (its JWKS), fetched over HTTP(S), cached and refreshed.

Looking a key up never waits on the network. The set is fetched again in the background once it
is older than `max_age_s` (a key the provider withdrew stops verifying), and on demand when a
token names a key the set lacks (the provider rotated): at most once every `min_refresh_s`, so
tokens naming made-up keys cannot make the service hammer the provider. One fetch at a time;
callers waiting for a key share it. A failed fetch keeps the keys in hand.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import MappingProxyType

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from shared.logging import get_logger

log = get_logger(__name__)

# What the identity provider's access tokens may be signed with. Asymmetric only: a verifier
# holding a shared secret could sign tokens as well as check them.
ALGORITHMS = ("RS256", "ES256")
MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 1 << 20  # a JWKS is a few keys (~1 KB each); more is not one

Fetch = Callable[[], Awaitable[bytes]]


class JwksError(Exception):
    """The key set could not be fetched or holds no usable key."""


def parse_jwks(body: bytes) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS document by key id: RSA (2048 bits or more) and EC P-256 keys
    for RS256/ES256. Keys for other uses or algorithms, without an id, or unreadable are skipped
    (a provider may publish them for others); a set with none left is an error."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise JwksError("the JWKS is not JSON") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError("the JWKS has no `keys` list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", ALGORITHMS[0]) not in ALGORITHMS:
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        if key.algorithm_name not in ALGORITHMS:
            continue
        if isinstance(key.key, RSAPublicKey) and key.key.key_size < MIN_RSA_BITS:
            continue
        # Two keys under one id: the first stands, as a verifier could not tell which is meant.
        keys.setdefault(entry["kid"], key)
    if not keys:
        raise JwksError("the JWKS holds no RS256/ES256 signing key")
    return keys


def http_fetch(url: str, *, timeout_s: float, ca_file: Path | None = None) -> Fetch:
    """GET the JWKS document: no redirects (the URL is configuration), a bounded body."""
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else True
    )

    async def fetch() -> bytes:
        async with (
            httpx.AsyncClient(timeout=timeout_s, verify=verify) as client,
            client.stream("GET", url, headers={"accept": "application/json"}) as response,
        ):
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError("the JWKS is larger than 1 MiB")
            return bytes(body)

    return fetch


class JwksKeys:
    """The provider's current signing keys by id, and the policy that refreshes them."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        min_refresh_s: float = 30.0,
        max_age_s: float = 3600.0,
        timeout_s: float = 5.0,
    ) -> None:
        self._fetch = fetch
        self._min_refresh_s = min_refresh_s
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._keys: Mapping[str, jwt.PyJWK] = MappingProxyType({})
        self._fetched_at = -math.inf  # monotonic; of the keys in hand
        self._attempted_at = -math.inf  # monotonic; of the last fetch begun
        self._refreshing: asyncio.Task[None] | None = None

    def get(self, kid: str) -> jwt.PyJWK | None:
        """The key of that id in the set in hand; a set too old is refreshed in the background."""
        if time.monotonic() - self._fetched_at > self._max_age_s:
            self.refresh_soon()
        return self._keys.get(kid)

    def refresh_soon(self) -> None:
        """Start a fetch in the background if none runs and the last began long enough ago."""
        if self._refreshing is None and self._may_fetch():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a synchronous caller): nothing to run it on
                return
            self._begin(loop)

    async def refreshed(self) -> bool:
        """Wait for a fresh set (a fetch in flight, or one begun now if allowed); False if none
        could be had (too soon after the last attempt, or the fetch failed)."""
        task = self._refreshing
        if task is None:
            if not self._may_fetch():
                return False
            task = self._begin(asyncio.get_running_loop())
        before = self._fetched_at
        # Shielded: one waiter cancelled (its client went away) must not cancel the others'.
        await asyncio.shield(task)
        return self._fetched_at != before

    def _may_fetch(self) -> bool:
        return time.monotonic() - self._attempted_at >= self._min_refresh_s

    def _begin(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
        self._attempted_at = time.monotonic()
        task = loop.create_task(self._refresh(), name="jwks-refresh")
        self._refreshing = task
        return task

    async def _refresh(self) -> None:
        try:
            body = await asyncio.wait_for(self._fetch(), self._timeout_s)
            keys = parse_jwks(body)
        except Exception as exc:
            # The keys in hand stay: a provider briefly unreachable must not sign everyone out;
            # and the callers waiting for this fetch get their 401, never its exception.
            log.warning("jwks refresh failed", error=type(exc).__name__, detail=str(exc)[:200])
        else:
            added = sorted(set(keys) - set(self._keys))
            withdrawn = sorted(set(self._keys) - set(keys))
            self._keys = MappingProxyType(keys)
            self._fetched_at = time.monotonic()
            if added or withdrawn:
                log.info("jwks keys changed", added=added, withdrawn=withdrawn)
        finally:
            self._refreshing = None
