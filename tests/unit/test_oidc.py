"""The identity provider's access tokens: accepted only when signed by a key of its JWKS for this
issuer and audience, within their validity and lifetime; rotated keys honoured, forgeries not."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.auth import Caller, InvalidToken, Role, mint
from shared.bearer import Authenticator, bearer_caller, signed_in_caller
from shared.jwks import JwksError, JwksKeys, parse_jwks
from shared.oidc import OidcPolicy, OidcVerifier, UnknownKey, caller_of
from shared.problems import Problem

ISSUER = "https://sso.example.gov.vn/realms/motcua"
AUDIENCE = "motcua-api"
BA_DINH = "T01.X00004"  # phường Ba Đình's center, Hà Nội
POLICY = OidcPolicy(issuer=ISSUER, audience=AUDIENCE, max_lifetime_s=3600, leeway_s=60)
HS256_KEY = "d" * 40

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rotated_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def jwk(key: PrivateKey, kid: str, **members: str) -> dict[str, Any]:
    """The public half of a key as its JWKS entry."""
    if isinstance(key, rsa.RSAPrivateKey):
        entry = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "RS256"
    else:
        entry = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "ES256"
    return {**entry, "kid": kid, "alg": alg, "use": "sig", **members}


@dataclass
class Provider:
    """A JWKS endpoint in memory: what it serves now, and how often it was asked."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0
    failing: bool = False

    async def __call__(self) -> bytes:
        self.fetches += 1
        if self.failing:
            raise OSError("connection refused")
        return orjson.dumps({"keys": self.keys})


def token(key: PrivateKey, kid: str | None = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "3f1c-officer",
        "iat": now,
        "exp": now + 300,
        "motcua_unit": BA_DINH,
        "motcua_role": "counter",
    }
    alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    headers = {"kid": kid} if kid is not None else {}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, alg, headers)


def verifier(provider: Provider, *, min_refresh_s: float = 0.0) -> OidcVerifier:
    return OidcVerifier(POLICY, JwksKeys(provider, min_refresh_s=min_refresh_s))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with(secret: bytes, kid: str = "k1") -> str:
    """An HS256 token whose secret is `secret`, made by hand (PyJWT refuses public keys)."""
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now, "exp": now + 300}
    # Both schemes' claims, so that only the signature can refuse it.
    claims |= {"motcua_unit": BA_DINH, "motcua_role": "officer", "unit": BA_DINH, "role": "officer"}
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


# ------------------------------------------------------------------ accepted


async def test_an_rs256_token_of_the_provider_names_its_caller(rsa_key: rsa.RSAPrivateKey) -> None:
    provider = Provider([jwk(rsa_key, "k1")])
    caller = await verifier(provider).verify(token(rsa_key))
    assert caller == Caller(unit=BA_DINH, role="counter", subject="3f1c-officer")
    assert provider.fetches == 1  # the key set, fetched on first use


async def test_an_es256_token_is_accepted(ec_key: ec.EllipticCurvePrivateKey) -> None:
    provider = Provider([jwk(ec_key, "ec1")])
    caller = await verifier(provider).verify(token(ec_key, "ec1", motcua_role="officer"))
    assert caller.role == "officer"


async def test_a_verified_token_is_remembered_and_refused_once_expired(
    rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = Provider([jwk(rsa_key, "k1")])
    oidc = verifier(provider)
    signed = token(rsa_key, exp=int(time.time()) + 120)
    await oidc.verify(signed)
    # Remembered: the next uses cost no signature check (a decode would fail now).
    monkeypatch.setattr(jwt, "decode", None)
    assert oidc.verify_known(signed).unit == BA_DINH
    later = time.time() + 120 + POLICY.leeway_s
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidToken, match="expired"):
        oidc.verify_known(signed)


async def test_the_clock_skew_allowed_covers_both_ends(rsa_key: rsa.RSAPrivateKey) -> None:
    oidc = verifier(Provider([jwk(rsa_key, "k1")]))
    now = int(time.time())
    # The provider's clock 30 s ahead (issued "in the future"), or the token just expired.
    await oidc.verify(token(rsa_key, iat=now + 30, exp=now + 330))
    await oidc.verify(token(rsa_key, iat=now - 330, exp=now - 30))


# ------------------------------------------------------------------ refused


@pytest.mark.parametrize(
    ("claims", "complaint"),
    [
        ({"iss": "https://sso.example.gov.vn/realms/other"}, "(?i)issuer"),
        ({"iss": None}, "iss"),
        ({"aud": "another-client"}, "(?i)audience"),
        ({"aud": None}, "aud"),
        ({"exp": -61}, "expired"),
        ({"iat": 120, "exp": 400}, "not yet valid"),
        ({"exp": 3700}, "lives longer"),  # 1 h 1 min > the 1 h allowed
        ({"iat": None}, "iat"),
        ({"sub": None}, "sub"),
        ({"motcua_unit": "T001.H01.X01"}, "unit"),
        ({"motcua_unit": None}, "unit"),
        ({"motcua_role": "admin"}, "role"),
        ({"motcua_role": ["counter", "officer"]}, "both roles"),
    ],
)
async def test_a_token_not_meant_for_motcua_is_refused(
    rsa_key: rsa.RSAPrivateKey, claims: dict[str, Any], complaint: str
) -> None:
    # Instants are given as seconds from now, read when the test runs (not when it is collected:
    # the whole suite runs for many minutes before it).
    now = int(time.time())
    at: dict[str, Any] = {
        k: now + v if k in ("exp", "iat", "nbf") and isinstance(v, int) else v
        for k, v in claims.items()
    }
    oidc = verifier(Provider([jwk(rsa_key, "k1")]))
    with pytest.raises(InvalidToken, match=complaint):
        await oidc.verify(token(rsa_key, **at))


async def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(
    rsa_key: rsa.RSAPrivateKey, rotated_key: rsa.RSAPrivateKey
) -> None:
    oidc = verifier(Provider([jwk(rsa_key, "k1")]))
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        await oidc.verify(token(rotated_key, "k1"))


async def test_alg_none_and_hs256_keyed_with_the_public_key_are_refused(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    provider = Provider([jwk(rsa_key, "k1")])
    oidc = verifier(provider)
    await oidc.verify(token(rsa_key))  # the key set is in hand
    header = b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    unsigned = f"{header}.{token(rsa_key).split('.')[1]}."  # a genuine token's claims, unsigned
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = hs256_with(public_pem)
    for forged in (unsigned, confused):
        with pytest.raises(InvalidToken, match="not signed RS256 or ES256"):
            await oidc.verify(forged)
    # With development keys beside the provider, HS256 goes to them, never to the public key.
    both = Authenticator([HS256_KEY], oidc)
    with pytest.raises(InvalidToken, match="no configured key"):
        await both.verify(confused)
    assert (await both.verify(mint(HS256_KEY, unit=BA_DINH, role="officer", subject="dev"))).role


async def test_a_token_claiming_rs256_under_an_ec_key_is_refused(
    ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    oidc = verifier(Provider([jwk(ec_key, "ec1")]))
    with pytest.raises(InvalidToken, match="does not match the key's algorithm"):
        await oidc.verify(token(rsa_key, "ec1"))


async def test_a_token_naming_no_key_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidToken, match="kid"):
        await verifier(Provider([jwk(rsa_key, "k1")])).verify(token(rsa_key, kid=None))


async def test_garbage_is_refused() -> None:
    with pytest.raises(InvalidToken):
        await verifier(Provider()).verify("not.a.token")


# ------------------------------------------------------------------ rotation


async def test_a_key_rotated_in_is_fetched_and_a_withdrawn_one_stops_verifying(
    rsa_key: rsa.RSAPrivateKey, rotated_key: rsa.RSAPrivateKey
) -> None:
    provider = Provider([jwk(rsa_key, "k1")])
    oidc = verifier(provider)
    old = token(rsa_key, "k1")
    assert (await oidc.verify(old)).unit == BA_DINH
    provider.keys = [jwk(rotated_key, "k2")]  # the provider rotates: k1 withdrawn
    new = token(rotated_key, "k2", motcua_role="officer")
    assert (await oidc.verify(new)).role == "officer"  # no restart: k2 fetched on demand
    assert provider.fetches == 2
    # The remembered k1 token is verified again against the set in hand, which lacks its key.
    with pytest.raises(UnknownKey):
        oidc.verify_known(old)


async def test_unknown_keys_fetch_the_set_at_most_once_per_interval(
    rsa_key: rsa.RSAPrivateKey, rotated_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = Provider([jwk(rsa_key, "k1")])
    oidc = verifier(provider, min_refresh_s=30)
    await oidc.verify(token(rsa_key))
    # Made-up key ids, as a forger would send by the thousand: no fetch within the interval.
    for kid in ("x1", "x2", "x3"):
        with pytest.raises(UnknownKey):
            await oidc.verify(token(rotated_key, kid))
    assert provider.fetches == 1
    provider.keys.append(jwk(rotated_key, "k2"))
    later = time.monotonic() + 31
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert (await oidc.verify(token(rotated_key, "k2"))).unit == BA_DINH
    assert provider.fetches == 2


async def test_a_provider_unreachable_keeps_the_keys_in_hand(
    rsa_key: rsa.RSAPrivateKey, rotated_key: rsa.RSAPrivateKey
) -> None:
    provider = Provider([jwk(rsa_key, "k1")])
    oidc = verifier(provider)
    await oidc.verify(token(rsa_key))
    provider.failing = True
    with pytest.raises(UnknownKey):
        await oidc.verify(token(rotated_key, "k2"))
    assert provider.fetches == 2
    assert (await oidc.verify(token(rsa_key, sub="another"))).subject == "another"


async def test_waiters_for_one_rotation_share_one_fetch(
    rsa_key: rsa.RSAPrivateKey, rotated_key: rsa.RSAPrivateKey
) -> None:
    provider = Provider([jwk(rsa_key, "k1"), jwk(rotated_key, "k2")])
    oidc = verifier(provider)
    callers = await asyncio.gather(
        *(oidc.verify(token(rotated_key, "k2", sub=f"s{i}")) for i in range(20))
    )
    assert {c.subject for c in callers} == {f"s{i}" for i in range(20)}
    assert provider.fetches == 1


# ------------------------------------------------------------------ the key set


def test_only_strong_asymmetric_signing_keys_are_taken(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    # The weak key the key set must skip.
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    document = {
        "keys": [
            jwk(rsa_key, "rsa"),
            jwk(ec_key, "ec"),
            jwk(weak, "weak"),
            jwk(rsa_key, "enc", use="enc"),
            {**jwk(rsa_key, "ps"), "alg": "PS256"},
            {"kty": "oct", "kid": "shared", "k": b64(b"s" * 32), "alg": "HS256"},
            {"kty": "RSA", "kid": "broken", "n": "AQAB"},
            {k: v for k, v in jwk(rsa_key, "x").items() if k != "kid"},
        ]
    }
    assert sorted(parse_jwks(orjson.dumps(document))) == ["ec", "rsa"]


@pytest.mark.parametrize("body", [b"", b"[]", b'{"keys": 1}', b'{"keys": []}'])
def test_a_key_set_with_no_usable_key_is_an_error(body: bytes) -> None:
    with pytest.raises(JwksError):
        parse_jwks(body)


# ------------------------------------------------------------------ claims and HTTP


def test_roles_may_be_the_providers_names_in_a_nested_list() -> None:
    policy = OidcPolicy(
        issuer=ISSUER,
        audience=AUDIENCE,
        unit_claim="don_vi",
        role_claim="resource_access.motcua-api.roles",
        role_values={"can-bo-mot-cua": "counter", "chuyen-vien": "officer"},
    )
    claims = {
        "sub": "s",
        "don_vi": BA_DINH,
        "resource_access": {"motcua-api": {"roles": ["offline_access", "chuyen-vien"]}},
    }
    assert caller_of(claims, policy) == Caller(BA_DINH, "officer", "s")
    # motcua's own names grant nothing once the provider's are configured.
    claims["resource_access"] = {"motcua-api": {"roles": ["officer"]}}
    with pytest.raises(InvalidToken, match="no valid role"):
        caller_of(claims, policy)


async def test_a_refused_token_is_401_and_a_wrong_role_403(rsa_key: rsa.RSAPrivateKey) -> None:
    authenticator = Authenticator([], verifier(Provider([jwk(rsa_key, "k1")])))
    good = f"Bearer {token(rsa_key)}"
    caller = await signed_in_caller(good, authenticator, "counter", units={BA_DINH})
    assert caller.unit == BA_DINH
    refusals: list[tuple[str, Role, int]] = [
        (good, "officer", 403),
        (f"Bearer {token(rsa_key, aud='x')}", "counter", 401),
        (f"Bearer {mint(HS256_KEY, unit=BA_DINH, role='counter', subject='s')}", "counter", 401),
    ]
    for authorization, role, status in refusals:
        with pytest.raises(Problem) as refused:
            await signed_in_caller(authorization, authenticator, role, units={BA_DINH})
        assert refused.value.status == status
    with pytest.raises(Problem) as unknown:  # a unit code the reference data does not know
        await signed_in_caller(good, authenticator, "counter", units={"T01"})
    assert unknown.value.status == 401


async def test_without_waiting_a_key_not_in_hand_is_401_and_fetched_in_the_background(
    rsa_key: rsa.RSAPrivateKey, rotated_key: rsa.RSAPrivateKey
) -> None:
    provider = Provider([jwk(rsa_key, "k1")])
    oidc = verifier(provider)
    await oidc.verify(token(rsa_key))
    provider.keys.append(jwk(rotated_key, "k2"))
    authorization = f"Bearer {token(rotated_key, 'k2')}"
    with pytest.raises(Problem) as refused:
        bearer_caller(authorization, Authenticator([], oidc), "counter")
    assert refused.value.status == 401
    await oidc.keys.refreshed()  # the fetch the refusal began
    assert provider.fetches == 2
    assert bearer_caller(authorization, Authenticator([], oidc), "counter").unit == BA_DINH
