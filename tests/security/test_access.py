"""Access control of the real intake and processing processes (issue 14): every route their
OpenAPI documents names, so a new route is covered the day it appears. No token, every forged
token, the other role: 401/401/403 problem+json. A dossier of one unit is never readable nor
actionable with another unit's token, and no list holds another unit's dossiers."""

from __future__ import annotations

import base64
import functools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Platform, make_isolated
from tests.harness import ServiceProcess
from tests.security.access_tokens import FORGERIES, NOT_BEARER, token

pytestmark = pytest.mark.integration

# Units in force today (the two-level map since 1 July 2025).
A = "T01.X00004"  # phường Ba Đình's center, Hà Nội: owns the dossiers under attack
B = "T01.X00008"  # phường Ngọc Hà's center, Hà Nội: the attacker
C = "T01"  # Hà Nội's provincial center: a dossier of A's is transferred there
ROLE = {"intake": "counter", "processing": "officer"}
OTHER_ROLE = {"intake": "officer", "processing": "counter"}
# Open to anyone: the orchestrator's probes and Prometheus's scrape (not in the OpenAPI
# document, so named here).
OPEN = ("/healthz", "/readyz", "/metrics")


def submission(**overrides: Any) -> dict[str, Any]:
    """A birth registration at a commune center: competent there, so A receives and processes."""
    body: dict[str, Any] = {
        "procedure_code": "1.001193",
        "channel": "in_person",
        "applicant": {"kind": "citizen", "id_number": "001099012345", "name": "Nguyễn Văn An"},
        "components": [{"code": "to_khai", "digitized": True}, {"code": "giay_chung_sinh"}],
    }
    return {**body, **overrides}


def _in_ten_days() -> str:
    return (datetime.now(UTC) + timedelta(days=10)).isoformat()


# A body each route would accept from the dossier's own unit: an attacker's request is then
# refused for whose dossier it is, not for its body. A new route with a body needs one here
# (test_every_route_with_a_body_has_an_example says so).
EXAMPLES: dict[tuple[str, str, str], Callable[[], dict[str, Any]]] = {
    ("intake", "POST", "/v1/dossiers"): submission,
    ("intake", "POST", "/v1/refusals"): lambda: {
        **submission(components=[]),
        "reason": "Thiếu giấy chứng sinh",
    },
    ("intake", "POST", "/v1/dossiers/{dossier_id}/payment"): lambda: {"amount_vnd": 50_000},
    ("intake", "POST", "/v1/dossiers/{dossier_id}/withdrawal"): lambda: {
        "reason": "Người nộp rút hồ sơ"
    },
    ("intake", "POST", "/v1/dossiers/{dossier_id}/rating"): lambda: {"satisfied": True},
    ("processing", "POST", "/v1/dossiers/{dossier_id}/supplement-request"): lambda: {
        "reason": "Thiếu bản sao giấy chứng sinh"
    },
    ("processing", "POST", "/v1/dossiers/{dossier_id}/resolution"): lambda: {"approved": True},
    ("processing", "POST", "/v1/dossiers/{dossier_id}/stop"): lambda: {
        "reason": "Người nộp đề nghị dừng"
    },
    ("processing", "POST", "/v1/dossiers/{dossier_id}/apology"): lambda: {
        "new_appointment_at": _in_ten_days(),
        "reason": "Chậm do thiếu cán bộ",
    },
    ("processing", "POST", "/v1/dossiers/{dossier_id}/payment-request"): lambda: {
        "amount_vnd": 50_000,
        "reason": "Lệ phí đăng ký",
    },
    ("processing", "POST", "/v1/dossiers/{dossier_id}/transfer"): lambda: {
        "to_unit": C,
        "reason": "Chuyển đúng thẩm quyền",
    },
}


@dataclass(frozen=True)
class Route:
    """One operation of a service's OpenAPI document."""

    service: str
    method: str
    path: str
    has_body: bool

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"

    @property
    def dossier_scoped(self) -> bool:
        return "{dossier_id}" in self.path

    def body(self) -> dict[str, Any] | None:
        if not self.has_body:
            return None
        example = EXAMPLES.get((self.service, self.method, self.path))
        # Without an example, an empty object: authentication is still checked before it.
        return {} if example is None else example()


@dataclass(frozen=True)
class Dossiers:
    """The dossiers under attack, each as its owner reads it from intake."""

    of_a: dict[str, Any]
    of_b: dict[str, Any]
    moved: dict[str, Any]  # received by A, transferred by A's officer to C


@dataclass(frozen=True)
class Access:
    intake: httpx.Client
    processing: httpx.Client
    routes: list[Route]
    dossiers: Dossiers

    def client(self, service: str) -> httpx.Client:
        return self.intake if service == "intake" else self.processing

    def call(
        self, route: Route, headers: dict[str, str], dossier_id: object = None
    ) -> httpx.Response:
        path = route.path.replace("{dossier_id}", str(dossier_id or uuid.uuid4()))
        return self.client(route.service).request(
            route.method, path, json=route.body(), headers=headers
        )


def _routes(service: str, client: httpx.Client) -> list[Route]:
    document = client.get("/openapi.json").raise_for_status().json()
    found = []
    for path, operations in document["paths"].items():
        if path in OPEN:
            continue
        for method, operation in operations.items():
            parameters = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            # A path parameter other than the dossier's would need its own attack: say so.
            assert parameters <= {"dossier_id"}, f"{service} {path}: new path parameters"
            found.append(Route(service, method.upper(), path, "requestBody" in operation))
    return found


def _wait(check: Callable[[], bool], what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


def _receive(intake: httpx.Client, unit: str) -> dict[str, Any]:
    response = intake.post("/v1/dossiers", json=submission(), headers=token(unit, "counter"))
    assert response.status_code == 201, response.text
    receipt: dict[str, Any] = response.json()
    assert receipt["competent_unit"] == unit  # processed where received: one unit owns it
    return receipt


def _in_processing(processing: httpx.Client, receipt: dict[str, Any], unit: str) -> bool:
    path = f"/v1/dossiers/{receipt['dossier_id']}"
    return processing.get(path, headers=token(unit, "officer")).status_code == 200


@pytest.fixture(scope="module")
def access(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Access]:
    """intake and processing as processes on a database and topics of this module's own, with
    three dossiers: A's, B's, and one of A's transferred to C."""
    env = {**make_isolated(platform).env(), "MOTCUA_HTTP_RATE_LIMITS": "off"}
    logs: Path = tmp_path_factory.mktemp("access-logs")
    procs = [ServiceProcess(name, env, logs) for name in ("intake", "processing")]
    try:
        for proc in procs:
            proc.start()
        with (
            httpx.Client(base_url=procs[0].url, timeout=30) as intake,
            httpx.Client(base_url=procs[1].url, timeout=30) as processing,
        ):
            of_a, of_b, moved = _receive(intake, A), _receive(intake, B), _receive(intake, A)
            for receipt, unit in ((of_a, A), (of_b, B), (moved, A)):
                _wait(
                    functools.partial(_in_processing, processing, receipt, unit),
                    f"processing to hold {receipt['dossier_code']}",
                )
            transferred = processing.post(
                f"/v1/dossiers/{moved['dossier_id']}/transfer",
                json={"to_unit": C, "reason": "Chuyển đúng thẩm quyền"},
                headers=token(A, "officer"),
            )
            assert transferred.status_code == 200, transferred.text
            routes = _routes("intake", intake) + _routes("processing", processing)
            yield Access(intake, processing, routes, Dossiers(of_a, of_b, moved))
    finally:
        for proc in procs:
            proc.stop()


def problem_failure(response: httpx.Response, status: int) -> str | None:
    """Why the response is not the problem+json document of `status`, or None."""
    if response.status_code != status:
        return f"answered {response.status_code}: {response.text[:200]}"
    if response.headers.get("content-type") != "application/problem+json":
        return f"content-type {response.headers.get('content-type')}"
    body = response.json()
    if body.get("status") != status or not body.get("title") or not body.get("detail"):
        return f"not a problem document: {body}"
    if not str(body.get("type", "")).startswith("https://"):
        return f"problem type {body.get('type')!r}"
    return challenge_failure(response)


def challenge_failure(response: httpx.Response) -> str | None:
    """RFC 6750: a refused bearer token says so in WWW-Authenticate, and why."""
    if response.status_code not in (401, 403):
        return None
    challenge = response.headers.get("www-authenticate", "")
    wanted = 'error="insufficient_scope"' if response.status_code == 403 else "Bearer "
    if wanted not in challenge or not challenge.startswith("Bearer "):
        return f"{response.status_code} with WWW-Authenticate {challenge!r}"
    return None


def _report(failures: list[str]) -> str:
    return f"{len(failures)} failures:\n" + "\n".join(failures[:40])


def test_the_suite_sees_every_route_of_both_services(access: Access) -> None:
    # The enumeration is what covers the routes: it must find those known today (and more).
    seen = {str(r) for r in access.routes}
    for known in (
        "intake POST /v1/dossiers",
        "intake POST /v1/refusals",
        "intake GET /v1/dossiers/{dossier_id}",
        "intake POST /v1/dossiers/{dossier_id}/rating",
        "processing GET /v1/dossiers",
        "processing GET /v1/dossiers/{dossier_id}",
        "processing POST /v1/dossiers/{dossier_id}/transfer",
    ):
        assert known in seen
    assert len(access.routes) >= 18


def test_every_route_with_a_body_has_an_example(access: Access) -> None:
    # The attacks below send a body the dossier's own unit could send: a route added without
    # one would be refused for its body, which proves nothing about who may call it.
    missing = [
        str(r)
        for r in access.routes
        if r.has_body and (r.service, r.method, r.path) not in EXAMPLES
    ]
    assert missing == [], "add a valid body to EXAMPLES for: " + ", ".join(missing)


def test_every_route_refuses_a_request_without_a_valid_bearer_token(access: Access) -> None:
    attempts = {"no Authorization header": {}, **NOT_BEARER}
    failures = []
    for route in access.routes:
        for kind, headers in attempts.items():
            response = access.call(route, headers, access.dossiers.of_a["dossier_id"])
            if (failure := problem_failure(response, 401)) is not None:
                failures.append(f"{route} with {kind}: {failure}")
    assert failures == [], _report(failures)


def test_every_route_refuses_every_forged_token(access: Access) -> None:
    # Each forgery names unit A and the route's own role, on A's own dossier: accepting one
    # would act on a real dossier (2xx), so only the forgery can explain a 401.
    dossier_id = access.dossiers.of_a["dossier_id"]
    for service, role in ROLE.items():  # the same claims, genuinely signed, are accepted
        control = access.client(service).get(f"/v1/dossiers/{dossier_id}", headers=token(A, role))
        assert control.status_code == 200, control.text
    failures = []
    for route in access.routes:
        for kind, forge in FORGERIES.items():
            forged = forge(A, ROLE[route.service])
            response = access.call(route, {"Authorization": f"Bearer {forged}"}, dossier_id)
            if (failure := problem_failure(response, 401)) is not None:
                failures.append(f"{route} with a token {kind}: {failure}")
            # Never echoed: neither the token nor what its forger wrote in it.
            elif any(m in response.text for m in (forged, "T001.H01", "T99.X99999", "superuser")):
                failures.append(f"{route} with a token {kind} echoes it: {response.text}")
    assert failures == [], _report(failures)


def test_every_route_refuses_the_other_role(access: Access) -> None:
    dossier_id = access.dossiers.of_a["dossier_id"]
    failures = []
    for route in access.routes:
        headers = token(A, OTHER_ROLE[route.service])
        if (failure := problem_failure(access.call(route, headers, dossier_id), 403)) is not None:
            failures.append(f"{route} with a {OTHER_ROLE[route.service]}'s token: {failure}")
    assert failures == [], _report(failures)


def test_probes_and_metrics_stay_open(access: Access) -> None:
    for client in (access.intake, access.processing):
        for path in OPEN:
            for headers in ({}, {"Authorization": "Bearer garbage"}):
                response = client.get(path, headers=headers)
                assert response.status_code == 200, (client.base_url, path, response.text)


def _state(access: Access, dossier: dict[str, Any], unit: str) -> tuple[Any, Any]:
    """The dossier as its unit reads it from both services."""
    path = f"/v1/dossiers/{dossier['dossier_id']}"
    at_counter = access.intake.get(path, headers=token(unit, "counter"))
    in_processing = access.processing.get(path, headers=token(unit, "officer"))
    assert (at_counter.status_code, in_processing.status_code) == (200, 200)
    return at_counter.json(), in_processing.json()


def _foreign_failures(
    access: Access, route: Route, unit: str, dossier: dict[str, Any], owner: str
) -> list[str]:
    """Why `unit`'s answer on `route` for another unit's dossier is not a refusal that tells
    nothing, i.e. the very answer it gets for a dossier that does not exist."""
    headers = token(unit, ROLE[route.service])
    foreign = access.call(route, headers, dossier["dossier_id"])
    refused = foreign.status_code if foreign.status_code in (403, 404) else 404
    if (failure := problem_failure(foreign, refused)) is not None:
        return [f"{route}, {unit} on {owner}'s dossier: {failure}"]
    absent = access.call(route, headers, uuid.uuid4())
    failures = []
    if (absent.status_code, absent.json()) != (foreign.status_code, foreign.json()):
        failures.append(f"{route}: {foreign.text} for {owner}'s dossier, {absent.text} for none")
    if dossier["dossier_code"] in foreign.text or owner in foreign.text:
        failures.append(f"{route}: the refusal names {owner}'s dossier: {foreign.text}")
    return failures


def test_a_dossier_is_never_readable_nor_actionable_by_another_unit(access: Access) -> None:
    of_a = access.dossiers.of_a
    before = _state(access, of_a, A)
    failures = [
        failure
        for route in access.routes
        if route.dossier_scoped
        for failure in _foreign_failures(access, route, B, of_a, A)
    ]
    assert failures == [], _report(failures)
    # Nothing was read, nothing happened: A's dossier is as it was, on both services.
    assert _state(access, of_a, A) == before


def test_a_transferred_dossier_is_no_longer_the_old_units(access: Access) -> None:
    moved = access.dossiers.moved
    path = f"/v1/dossiers/{moved['dossier_id']}"
    taken_over = access.processing.get(path, headers=token(C, "officer"))
    assert taken_over.status_code == 200
    assert taken_over.json()["competent_unit"] == C
    failures = [
        failure
        for route in access.routes
        if route.service == "processing" and route.dossier_scoped
        for failure in _foreign_failures(access, route, A, moved, C)
    ]
    assert failures == [], _report(failures)


def _cursor_after_everything() -> str:
    # The processing list's cursor format: a page resuming after the newest dossier there is,
    # so every older one of any unit would follow if the cursor chose whose they are.
    raw = f"9999-01-01T00:00:00+00:00|{uuid.uuid4()}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def test_lists_never_hold_another_units_dossiers(access: Access) -> None:
    of_a, of_b, moved = access.dossiers.of_a, access.dossiers.of_b, access.dossiers.moved
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    queries: list[dict[str, Any]] = [
        {},
        {"limit": 200},
        {"status": of_a["status"]},  # received
        {"procedure_code": "1.001193"},
        {"received_from": yesterday},
        {"overdue": False},
        {"unit": A, "competent_unit": A, "receiving_unit": A},  # not parameters: ignored
        {"cursor": _cursor_after_everything()},
    ]
    lists = [r for r in access.routes if r.method == "GET" and not r.dossier_scoped]
    assert lists, "no list route found"
    failures = []
    for route in lists:
        for query in queries:
            for unit, foreign in ((B, [of_a, moved]), (A, [of_b, moved]), (C, [of_a, of_b])):
                response = access.client(route.service).get(
                    route.path, params=query, headers=token(unit, ROLE[route.service])
                )
                leaked = [d["dossier_code"] for d in foreign if d["dossier_id"] in response.text]
                if leaked:
                    failures.append(f"{route}?{query} for {unit} lists {leaked}")
    assert failures == [], _report(failures)
    # The lists do list: each unit sees its own dossiers there.
    listed = access.processing.get("/v1/dossiers", headers=token(A, "officer")).text
    assert of_a["dossier_id"] in listed
    listed = access.processing.get("/v1/dossiers", headers=token(C, "officer")).text
    assert moved["dossier_id"] in listed


def test_an_idempotency_key_never_returns_another_units_receipt(access: Access) -> None:
    key = {"Idempotency-Key": f"access-{uuid.uuid4()}"}
    mine = access.intake.post(
        "/v1/dossiers", json=submission(), headers={**token(A, "counter"), **key}
    )
    assert mine.status_code == 201, mine.text
    theirs = access.intake.post(
        "/v1/dossiers", json=submission(), headers={**token(B, "counter"), **key}
    )
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["dossier_id"] != mine.json()["dossier_id"]
    assert theirs.json()["receiving_unit"] == B
    assert mine.json()["dossier_code"] not in theirs.text


def test_the_receiving_unit_comes_from_the_token_only(access: Access) -> None:
    forged = access.intake.post(
        "/v1/dossiers", json=submission(receiving_unit=A), headers=token(B, "counter")
    )
    assert problem_failure(forged, 422) is None, forged.text


def test_a_remembered_token_stops_working_at_its_expiry(access: Access) -> None:
    # A verified token is remembered (shared.auth): its expiry must still end it.
    of_a = access.dossiers.of_a
    path = f"/v1/dossiers/{of_a['dossier_id']}"
    short = {service: token(A, role, ttl_s=2) for service, role in ROLE.items()}
    for service in ROLE:
        assert access.client(service).get(path, headers=short[service]).status_code == 200
    time.sleep(3)
    for service in ROLE:
        response = access.client(service).get(path, headers=short[service])
        assert problem_failure(response, 401) is None, response.text
