"""Request bodies: JSON parsed in one pass with FastAPI's errors, NUL rejected, documented."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from shared.problems import Problem
from shared.text import nul_fields


def reject_nul_characters(body: BaseModel) -> None:
    """422 when a string of the body holds U+0000: PostgreSQL text and jsonb cannot store it.

    JSON allows `\\u0000` and the models accept it, so without this it reaches the database
    (a 500 here, or a poison event for the consumers of an action's payload).
    """
    fields = nul_fields(body.model_dump())
    if fields:
        raise Problem(
            422,
            "Invalid request",
            "The request does not satisfy the schema",
            kind="invalid-request",
            errors=[{"field": f, "reason": "must not contain the NUL character"} for f in fields],
        )


M = TypeVar("M", bound=BaseModel)


def parse_json_body(model: type[M], body: bytes) -> M:
    """The body validated as `model` in one pass (pydantic parses the bytes itself), with the
    errors FastAPI would give for a body parameter, NUL characters included.

    For the hot routes that read the raw request: FastAPI's generic body handling (a `json.loads`,
    then validating the Python objects, inside its dependency solver) was a fifth of the CPU of a
    submission. Document such a route's body with `json_body_openapi`.
    """
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {**e, "loc": ("body", *e["loc"])}
                for e in exc.errors(include_url=False, include_input=False)
            ]
        ) from None
    # A NUL can only arrive escaped (JSON forbids raw control characters in strings), so the
    # walk over the model is needed only when the escape appears.
    if b"\\u0000" in body:
        reject_nul_characters(parsed)
    return parsed


def json_body_openapi(model: type[BaseModel], *headers: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for a route reading `model` from the raw body (see `parse_json_body`):
    the required JSON body and the headers the route reads. `document_models` puts the schema in
    the components."""
    return {
        "parameters": list(headers),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        },
    }


def document_models(app: FastAPI, *models: type[BaseModel]) -> None:
    """Add the schemas of models that no route parameter names (raw-body routes) to the
    OpenAPI components, nested models included."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # cached on the app: completed once, here
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            own = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, nested in own.pop("$defs", {}).items():
                components.setdefault(name, nested)
            components[model.__name__] = own
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
