"""Rate limits (issue 14): per caller and per unit, 429 problem+json with Retry-After, failed
authentications throttled per source, probes never. The budgets' arithmetic on a fake clock;
the middleware over real sockets, in this process and in the intake process."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from shared.auth import mint
from shared.bearer import Authenticator
from shared.middleware import RateLimits
from shared.ratelimit import Budget, Budgets, RateLimitSettings, retry_after
from shared.runtime import token_identity
from shared.serving import HttpSettings
from shared.settings import DEV_TOKEN_KEY, Environment
from tests.conftest import Services
from tests.reliability.inprocess import probe_app, served
from tools.samples import sample_submission

UNIT = "T01.X00004"  # phường Ba Đình's center, Hà Nội
OTHER_UNIT = "T01"  # Hà Nội's provincial center


def bearer(unit: str, subject: str, key: str = DEV_TOKEN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(key, unit=unit, role='counter', subject=subject)}"}


# The budgets


def test_a_budget_allows_its_burst_then_one_request_per_interval() -> None:
    budget = Budget(rate=2.0, burst=3)
    assert [budget.take("a", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert budget.take("a", 100.0) == pytest.approx(0.5)
    assert budget.take("b", 100.0) == 0.0  # keys are apart
    assert budget.take("a", 100.5) == 0.0
    assert budget.take("a", 100.5) > 0.0
    assert budget.take("a", 102.0) == 0.0  # refilled


def test_a_refused_request_is_not_charged() -> None:
    budget = Budget(rate=1.0, burst=1)
    assert budget.take("a", 0.0) == 0.0
    for _ in range(100):
        assert budget.take("a", 0.5) == pytest.approx(0.5)
    assert budget.take("a", 1.0) == 0.0


def test_a_rate_of_zero_is_no_limit() -> None:
    budget = Budget(rate=0.0, burst=1)
    assert all(budget.take("a", 0.0) == 0.0 for _ in range(1000))


def test_a_budget_keeps_a_bounded_number_of_keys() -> None:
    budget = Budget(rate=1.0, burst=1, max_keys=100)
    for i in range(10_000):
        budget.take(f"source-{i}", 0.0)
    assert len(budget._full_at) <= 100


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after(s) for s in (0.01, 1.0, 1.2, 59.9)] == ["1", "1", "2", "60"]


def test_limits_are_on_in_production_only_unless_set() -> None:
    auto = RateLimitSettings()
    assert auto.enabled(Environment.PRODUCTION)
    assert not auto.enabled(Environment.TEST)
    assert not auto.enabled(Environment.DEVELOPMENT)
    assert RateLimitSettings(rate_limits="on").enabled(Environment.TEST)
    assert not RateLimitSettings(rate_limits="off").enabled(Environment.PRODUCTION)


# The middleware, over real sockets

TIGHT = RateLimitSettings(
    rate_limits="on",
    caller_rate_per_s=0.01,
    caller_burst=3,
    unit_rate_per_s=0.01,
    unit_burst=5,
    anonymous_rate_per_s=0.01,
    anonymous_burst=4,
    auth_failure_rate_per_s=0.01,
    auth_failure_burst=3,
)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    app = probe_app()
    app.add_middleware(
        RateLimits,
        budgets=Budgets.of(TIGHT),
        identify=token_identity(Authenticator([DEV_TOKEN_KEY])),
    )
    with (
        served(app, HttpSettings()) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        yield client


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/too-many-requests")
    assert int(response.headers["retry-after"]) >= 1


def test_a_caller_past_its_budget_gets_429_and_another_caller_is_served(
    client: httpx.Client,
) -> None:
    ana = bearer(UNIT, "ana")
    assert [client.get("/v1/whoami", headers=ana).status_code for _ in range(3)] == [200] * 3
    refused = client.get("/v1/whoami", headers=ana)
    assert_throttled(refused)
    assert "caller" in refused.json()["detail"]
    assert client.get("/v1/whoami", headers=bearer(UNIT, "binh")).status_code == 200


def test_a_unit_past_its_budget_gets_429_for_every_caller(client: httpx.Client) -> None:
    for subject in ("a", "b", "c", "d", "e"):
        assert client.get("/v1/whoami", headers=bearer(UNIT, subject)).status_code == 200
    refused = client.get("/v1/whoami", headers=bearer(UNIT, "f"))
    assert_throttled(refused)
    assert "unit" in refused.json()["detail"]
    assert client.get("/v1/whoami", headers=bearer(OTHER_UNIT, "f")).status_code == 200


def test_failed_authentications_throttle_their_source_only(client: httpx.Client) -> None:
    attacker = {"X-Forwarded-For": "203.0.113.9"}
    counter = bearer(UNIT, "clerk")
    # A counter at the same address signed in before the attack.
    assert client.get("/v1/whoami", headers={**attacker, **counter}).status_code == 200
    forged = bearer(UNIT, "x", key="guessed-key-guessed-key-guessed-key")
    for _ in range(3):
        assert client.get("/v1/whoami", headers={**attacker, **forged}).status_code == 401
    refused = client.get("/v1/whoami", headers={**attacker, **forged})
    assert_throttled(refused)
    assert "failed authentications" in refused.json()["detail"]
    # Refused before being checked, even a valid token the address never used...
    assert_throttled(client.get("/v1/whoami", headers={**attacker, **bearer(OTHER_UNIT, "new")}))
    # ...but not the counter's, nor anyone at another address.
    assert client.get("/v1/whoami", headers={**attacker, **counter}).status_code == 200
    other = {"X-Forwarded-For": "198.51.100.7", **bearer(OTHER_UNIT, "new")}
    assert client.get("/v1/whoami", headers=other).status_code == 200


def test_requests_without_a_token_are_limited_per_source_but_probes_never(
    client: httpx.Client,
) -> None:
    source = {"X-Forwarded-For": "192.0.2.1"}
    answers = [client.post("/v1/echo", json={}, headers=source).status_code for _ in range(5)]
    assert answers == [200, 200, 200, 200, 429]
    assert all(client.get("/readyz", headers=source).status_code == 200 for _ in range(50))


# The intake process: the runtime installs the limits from MOTCUA_HTTP_*.


async def _dossiers(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM intake.dossiers"))
    finally:
        await conn.close()


@pytest.mark.integration
def test_intake_process_limits_a_counter_and_stores_nothing_refused(services: Services) -> None:
    intake = services.start(
        "intake",
        MOTCUA_HTTP_RATE_LIMITS="on",
        MOTCUA_HTTP_CALLER_RATE_PER_S="0.01",
        MOTCUA_HTTP_CALLER_BURST="3",
        MOTCUA_HTTP_AUTH_FAILURE_RATE_PER_S="0.01",
        MOTCUA_HTTP_AUTH_FAILURE_BURST="2",
    )
    rng = random.Random(14)
    unit, _ = sample_submission(rng)
    clerk = bearer(unit, "clerk")
    with httpx.Client(base_url=intake.url, timeout=10) as client:
        answers = []
        for _ in range(4):
            unit_of_body, body = sample_submission(rng)
            while unit_of_body != unit:
                unit_of_body, body = sample_submission(rng)
            answers.append(client.post("/v1/dossiers", json=body, headers=clerk))
        assert [a.status_code for a in answers] == [201, 201, 201, 429]
        assert_throttled(answers[-1])
        attacker = {"X-Forwarded-For": "203.0.113.9"}
        forged = bearer(unit, "x", key="guessed-key-guessed-key-guessed-key")
        statuses = [
            client.post("/v1/dossiers", json=body, headers={**attacker, **forged}).status_code
            for _ in range(3)
        ]
        assert statuses == [401, 401, 429]
        assert client.get("/readyz").status_code == 200
    assert asyncio.run(_dossiers(services.env.database_url)) == 3
