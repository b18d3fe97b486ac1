"""Every service's OpenAPI document says what its handlers do: every error is a problem document."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from services.processing.app import create_app as processing_app
from shared.problems import PROBLEM_JSON

PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDocument"}}}


@pytest.mark.parametrize("create", [intake_app, processing_app, metrics_app])
def test_every_error_response_is_documented_as_a_problem(create: Any) -> None:
    app: FastAPI = create()
    schema = app.openapi()
    assert app.openapi() is schema  # completed once
    components = schema["components"]["schemas"]
    assert set(components["ProblemDocument"]["required"]) == {"type", "title", "status", "detail"}
    assert "HTTPValidationError" not in components
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert operations
    for operation in operations:
        responses = operation["responses"]
        assert responses["default"]["content"] == PROBLEM
        for code, response in responses.items():
            # 422 included: FastAPI would advertise its own validation error shape there.
            if code != "default" and int(code) >= 400:
                assert response["content"] == PROBLEM, (operation["operationId"], code)


@pytest.mark.parametrize(("create", "role"), [(intake_app, "counter"), (processing_app, "officer")])
def test_every_route_but_the_probes_says_it_wants_a_bearer_token(create: Any, role: str) -> None:
    schema = create().openapi()
    scheme = schema["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert f"the {role} role" in scheme["description"]
    guarded = 0
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            if path in ("/healthz", "/readyz", "/metrics"):
                assert "security" not in operation, path
                continue
            guarded += 1
            assert operation["security"] == [{"bearer": []}], path
            assert operation["responses"]["401"]["content"] == PROBLEM, path
    assert guarded >= 5


def test_the_metrics_api_is_public() -> None:
    # The index and the league table are published figures: no token, no scheme.
    schema = metrics_app().openapi()
    assert "securitySchemes" not in schema.get("components", {})
