"""Intake signs counters in with the identity provider's tokens: a JWKS served on loopback, keys
made here; forged tokens are 401, and a key the provider rotates in works without a restart."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from shared.jwks import JwksKeys, http_fetch
from tests.conftest import Services
from tools.samples import sample_submission

ISSUER = "https://sso.example.gov.vn/realms/motcua"
AUDIENCE = "motcua-api"


class KeySetServer:
    """The provider's JWKS endpoint: serves whatever keys it holds now."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.status = 200
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.fetches += 1
                body = json.dumps({"keys": served.keys}).encode()
                self.send_response(served.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: pytest shows the test's own output

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/protocol/openid-connect/certs"

    def publish(self, *keys: tuple[rsa.RSAPrivateKey, str]) -> None:
        self.keys = [
            {**RSAAlgorithm.to_jwk(k.public_key(), as_dict=True), "kid": kid, "alg": "RS256"}
            for k, kid in keys
        ]


@pytest.fixture
def provider() -> Iterator[KeySetServer]:
    server = KeySetServer()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def access_token(key: rsa.RSAPrivateKey, kid: str, unit: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": [AUDIENCE, "account"],
        "sub": "0b6f7c1e-quay-1",
        "iat": now,
        "exp": now + 300,
        "motcua_unit": unit,
        "motcua_role": "counter",
    }
    return jwt.encode(claims, key, "RS256", {"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_keyed_with_public_key(key: rsa.RSAPrivateKey, unit: str) -> str:
    """The algorithm-confusion forgery: HS256 with the provider's public key as the secret."""
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _, claims, _ = access_token(key, "a", unit).split(".")
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "a"}).encode())
    signature = hmac.new(pem, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


def submit(client: httpx.Client, rng: random.Random, sign: Any) -> httpx.Response:
    unit, body = sample_submission(rng)
    return client.post("/v1/dossiers", json=body, headers={"Authorization": f"Bearer {sign(unit)}"})


async def test_the_key_set_is_fetched_over_http_and_a_failed_fetch_keeps_it(
    provider: KeySetServer,
) -> None:
    keys = JwksKeys(http_fetch(provider.url, timeout_s=5), min_refresh_s=0)
    first, rotated = new_key(), new_key()
    provider.publish((first, "a"))
    assert await keys.refreshed() and keys.get("a") is not None
    provider.publish((rotated, "b"))
    provider.status = 503
    assert not await keys.refreshed()
    assert keys.get("a") is not None and keys.get("b") is None  # the set in hand stays
    provider.status = 200
    provider.keys += [{"kid": f"padding-{i}", "kty": "RSA", "n": "x" * 1000} for i in range(1100)]
    assert not await keys.refreshed()  # over 1 MiB: not a key set
    provider.publish((rotated, "b"))
    assert await keys.refreshed() and keys.get("a") is None and keys.get("b") is not None


@pytest.mark.integration
def test_intake_accepts_the_providers_tokens_refuses_forgeries_and_follows_rotation(
    services: Services, provider: KeySetServer
) -> None:
    first, attacker, rotated = new_key(), new_key(), new_key()
    provider.publish((first, "a"))
    intake = services.start(
        "intake",
        MOTCUA_OIDC_ISSUER=ISSUER,
        MOTCUA_OIDC_AUDIENCE=AUDIENCE,
        MOTCUA_OIDC_JWKS_URL=provider.url,
        MOTCUA_OIDC_JWKS_MIN_REFRESH_S="1",
    )
    rng = random.Random(1407)
    with httpx.Client(base_url=intake.url, timeout=15) as client:
        accepted = submit(client, rng, lambda unit: access_token(first, "a", unit))
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["dossier_code"]
        forgeries = {
            "another key under the provider's kid": lambda u: access_token(attacker, "a", u),
            "another key under a kid of its own": lambda u: access_token(attacker, "x", u),
            "HS256 keyed with the public key": lambda u: hs256_keyed_with_public_key(first, u),
        }
        for name, forge in forgeries.items():
            refused = submit(client, rng, forge)
            assert refused.status_code == 401, name
            assert refused.headers["content-type"].startswith("application/problem+json"), name

        # The provider rotates: `a` withdrawn, `b` signs from now on. No restart.
        provider.publish((rotated, "b"))
        time.sleep(1.1)  # past MOTCUA_OIDC_JWKS_MIN_REFRESH_S since the last fetch
        fetched = provider.fetches
        after = submit(client, rng, lambda unit: access_token(rotated, "b", unit))
        assert after.status_code == 201, after.text
        assert provider.fetches == fetched + 1
        time.sleep(1.1)
        withdrawn = submit(client, rng, lambda unit: access_token(first, "a", unit))
        assert withdrawn.status_code == 401
