"""Schemathesis fuzzes every operation of the running intake service: no input is a 5xx.

The schema is read over HTTP from the intake process (the one behind /docs), every operation is
fuzzed with schema-valid and schema-invalid requests from a valid counter, and every answer must
be below 500, errors as problem+json.

Driven through `APIOperation.as_strategy` with Hypothesis' `@given`: schemathesis' own pytest
integration (`schemathesis.pytest.from_fixture` + `parametrize`) fails on pytest 9 (it reads
`Function._nodeid`, which pytest 9 no longer has), and a schema loaded at import time would need
the service running before collection.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.schemas import OpenApiSchema

from shared.problems import PROBLEM_JSON
from tests.conftest import Services
from tests.harness import counter_token

pytestmark = pytest.mark.integration

UNIT = "T01.X00004"
# Per operation and generation mode (positive, negative): ~700 requests, 7-20 s on 2 cores.
MAX_EXAMPLES = 25

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    # Same inputs on every run: a CI failure reproduces locally, and a pass is not luck.
    derandomize=True,
    database=None,
    deadline=None,  # every example is a request to a real process: timing is not the property
    # No `explain` phase: it re-runs failing examples for line coverage, many more requests.
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[
        # Generating a schemathesis case (JSON Schema + dictionaries) is slow by design.
        HealthCheck.too_slow,
        # Negative mode discards the drafts that happen to be valid.
        HealthCheck.filter_too_much,
    ],
)


def _submission(**extra: str) -> dict[str, object]:
    return {
        "procedure_code": "1.004873",
        "channel": "in_person",
        "applicant": {"kind": "citizen", "id_number": "001099012345", "name": "Nguyễn Văn An"},
        "components": [{"code": "to_khai"}],
        **extra,
    }


@pytest.fixture
def intake_schema(services: Services) -> OpenApiSchema:
    intake = services.start("intake")
    assert httpx.get(f"{intake.url}/docs", timeout=10).status_code == 200
    # Real dossiers of the unit, so the actions on /v1/dossiers/{id} get past the 404.
    dossiers = []
    for path, body in (
        ("/v1/dossiers", _submission()),
        ("/v1/refusals", _submission(reason="thiếu giấy tờ")),
    ):
        response = httpx.post(
            f"{intake.url}{path}", json=body, headers=counter_token(UNIT), timeout=10
        )
        assert response.status_code == 201, response.text
        dossiers.append(response.json()["dossier_id"])
    config = schemathesis.Config.from_dict(
        {
            # Hypothesis' randomness is fixed by FUZZ_SETTINGS; schemathesis' own is pinned too.
            "seed": 20251127,
            "cache": {"enabled": False},
            # The documents declare the bearer scheme: schemathesis would send the token's
            # header malformed or not at all. Tokens are tests/security/test_access.py's; here
            # the counter's token goes with every request and the inputs are what varies.
            "generation": {
                "deterministic": True,
                "database": "none",
                "with-security-parameters": False,
            },
            # Random strings never name a catalog procedure or pass an ID check digit, so
            # nearly every request would stop at a 422. Dictionaries of valid values (drawn
            # most of the time, not always) take requests through the rules to the database,
            # and hostile strings go into the free-text fields that are stored.
            "dictionaries": {
                "procedures": {"values": ["1.004873", "1.000110", "1.001193", "2.000720"]},
                "applicant_ids": {"values": ["001099012345", "079203004567", "0100109106"]},
                "components": {"values": ["to_khai", "giay_chung_sinh"]},
                "dossiers": {"values": dossiers},
                "hostile": {"values": ["\x00", "A\x00B", "\u202eRTL", "🎉", "%s%n", "' OR 1=1 --"]},
            },
            "parameters": {
                "body.procedure_code": {"dictionary": "procedures", "probability": 0.9},
                "body.applicant.id_number": {"dictionary": "applicant_ids", "probability": 0.9},
                "body.components[*].code": {"dictionary": "components", "probability": 0.9},
                "path.dossier_id": {"dictionary": "dossiers", "probability": 0.7},
                "body.applicant.name": {"dictionary": "hostile", "probability": 0.3},
                "body.reason": {"dictionary": "hostile", "probability": 0.3},
                "body.competent_unit": {"dictionary": "hostile", "probability": 0.3},
                "body.criteria[*]": {"dictionary": "hostile", "probability": 0.3},
            },
        }
    )
    return schemathesis.openapi.from_url(f"{intake.url}/openapi.json", config=config)


def test_no_input_is_a_server_error(intake_schema: OpenApiSchema) -> None:
    headers = counter_token(UNIT)
    statuses: dict[str, Counter[int]] = {}
    failures: dict[str, str] = {}
    for result in intake_schema.get_all_operations():
        if isinstance(result, Err):
            failures[result.err().label] = f"invalid schema: {result.err()}"
            continue
        operation = result.ok()
        statuses[operation.label] = Counter()
        has_inputs = bool(operation.body) or any(True for _ in operation.iter_parameters())
        # Nothing to make invalid in GET /healthz: negative mode cannot generate a case.
        modes = (
            list(schemathesis.GenerationMode)
            if has_inputs
            else [schemathesis.GenerationMode.POSITIVE]
        )
        for mode in modes:

            @FUZZ_SETTINGS
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: schemathesis.Case[Any]) -> None:
                response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
                statuses[case.operation.label][response.status_code] += 1
                if response.status_code >= 400:
                    assert response.headers.get("content-type") == [PROBLEM_JSON], (
                        f"{case.operation.label} answered {response.status_code} "
                        f"as {response.headers.get('content-type')}: {response.text}"
                    )

            try:
                fuzz()
            # Fuzz every operation, then report all the failures (schemathesis' checks raise a
            # FailureGroup, a BaseExceptionGroup; the content-type assertion an AssertionError).
            except (Exception, FailureGroup) as exc:
                notes = getattr(exc, "__notes__", [])  # Hypothesis' falsifying example
                failures[f"{operation.label} ({mode.value})"] = "\n".join([str(exc), *notes])
    assert not failures, "\n\n".join(f"{label}:\n{error}" for label, error in failures.items())
    summary = {label: dict(counts) for label, counts in statuses.items()}
    assert statuses, "the schema has no operation"
    assert all(statuses.values()), summary  # every operation answered
    # Not vacuous: the token was accepted everywhere, and requests got past the rules.
    assert not any(c[401] or c[403] for c in statuses.values()), summary
    assert statuses["POST /v1/refusals"][201] > 0, summary
    assert statuses["POST /v1/dossiers/{dossier_id}/withdrawal"][202] > 0, summary


def test_a_nul_character_is_refused_before_the_database(services: Services) -> None:
    """The fuzz run's finding: PostgreSQL text/jsonb cannot hold U+0000 (it was a 500)."""
    intake = services.start("intake")
    refusal = _submission(reason="thiếu\x00", competent_unit="\x00")
    response = httpx.post(
        f"{intake.url}/v1/refusals", json=refusal, headers=counter_token(UNIT), timeout=10
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert {e["field"] for e in response.json()["errors"]} == {"reason", "competent_unit"}
