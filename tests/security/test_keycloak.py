"""Counters and officers signed in at a real Keycloak (issue 14, real identity).

The Keycloak distribution from Maven Central runs on the loopback (deploy/local/keycloak.py),
with the realm the demo uses: clerks are Keycloak users whose `motcua_unit` and `motcua_role`
attributes become the access token's claims. intake and processing verify those RS256 tokens
against the realm's JWKS, as they would the province's identity provider.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator

import httpx
import keycloak as local_keycloak
import motcua_local
import pytest

from shared.reference import REFERENCE_DIR, load_reference
from tests.conftest import Services
from tests.harness import readable
from tools.samples import sample_submission
from tools.simulate.tokens import KeycloakTokens

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def keycloak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_keycloak.Keycloak]:
    guard = motcua_local.Guard()
    server = local_keycloak.Keycloak(
        tmp_path_factory.mktemp("keycloak"), motcua_local.free_port(), guard=guard
    )
    try:
        server.start()
        server.realm()
        yield server
    finally:
        server.stop()
        guard.release()


@pytest.fixture
async def clerks(keycloak: local_keycloak.Keycloak) -> AsyncIterator[KeycloakTokens]:
    tokens = KeycloakTokens(keycloak.url, keycloak.admin_password)
    yield tokens
    await tokens.close()


def problem(answer: httpx.Response) -> str:
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    return str(answer.json()["detail"])


async def test_clerks_signed_in_at_keycloak_receive_and_process_dossiers(
    keycloak: local_keycloak.Keycloak, clerks: KeycloakTokens, services: Services
) -> None:
    env = keycloak.service_env()
    intake = services.start("intake", **env)
    processing = services.start("processing", **env)
    unit, body = sample_submission(random.Random(26))
    counter = await clerks.headers(unit, "counter")
    async with httpx.AsyncClient(timeout=30) as http:
        received = await http.post(f"{intake.url}/v1/dossiers", json=body, headers=counter)
        assert received.status_code == 201, received.text
        receipt = received.json()
        assert receipt["dossier_code"].startswith(f"{unit}-")
        officer = await clerks.headers(receipt["competent_unit"], "officer")
        url = f"{processing.url}/v1/dossiers/{receipt['dossier_id']}"

        await readable(http, url, officer, "the officer reads the dossier")
        started = await http.post(f"{url}/start", headers=officer)
        assert started.status_code == 200, started.text

        # The counter's token carries the counter role: the officers' actions refuse it.
        wrong_role = await http.post(f"{url}/start", headers=counter)
        assert wrong_role.status_code == 403, wrong_role.text
        # Another unit's officer does not see the dossier.
        elsewhere = next(
            u.code
            for u in load_reference(REFERENCE_DIR).units.values()
            if u.validity.valid_to is None and u.code != receipt["competent_unit"]
        )
        stranger = await clerks.headers(elsewhere, "officer")
        assert (await http.get(url, headers=stranger)).status_code == 404


async def test_tokens_keycloak_issues_for_no_unit_or_another_realm_are_refused(
    keycloak: local_keycloak.Keycloak, clerks: KeycloakTokens, services: Services
) -> None:
    intake = services.start("intake", **keycloak.service_env())
    unit, body = sample_submission(random.Random(27))
    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as http:
        # A clerk whose unit attribute names no unit of the map: signed in, still refused.
        nowhere = await clerks.headers("T99.X99999", "counter")
        answer = await http.post("/v1/dossiers", json=body, headers=nowhere)
        assert answer.status_code == 401
        assert "unit" in problem(answer)
        # The master realm's administrator: a valid Keycloak token of another issuer.
        admin = {"Authorization": f"Bearer {keycloak.admin_token()}"}
        answer = await http.post("/v1/dossiers", json=body, headers=admin)
        assert answer.status_code == 401, answer.text
        problem(answer)
        # The same request from a clerk of the unit is received: the refusals were the tokens'.
        clerk = await clerks.headers(unit, "counter")
        answer = await http.post("/v1/dossiers", json=body, headers=clerk)
        assert answer.status_code == 201, answer.text
