"""RFC 9457 problem+json: the error every API answers, its handlers and its OpenAPI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db_errors import TRANSIENT_DB_ERRORS
from shared.logging import get_logger
from shared.pii import mask_value

_log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error the client can act on, rendered as problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        extensions: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.errors = errors or []
        # RFC 9457 extension members (e.g. the successors of a unit no longer in force).
        self.extensions = extensions or {}
        self.headers = headers  # e.g. the WWW-Authenticate of a refused token


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    errors: list[dict[str, Any]] | None = None,
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        **(extensions or {}),
        "type": f"https://motcua.example/problems/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    # No error body echoes an ID-like number: a field path may be a key someone typed, a detail
    # may quote a value (Decree 13/2023).
    return JSONResponse(
        mask_value(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo the input back: it may be a national ID.
    return [
        {
            "field": ".".join(str(p) for p in err["loc"] if p != "body") or "body",
            "reason": err["msg"],
        }
        for err in exc.errors()
    ]


class FieldProblem(BaseModel):
    field: str = Field(description="dotted path of the field in the request")
    reason: str


class ProblemDocument(BaseModel):
    """Every error answer (RFC 9457 `application/problem+json`); for the OpenAPI document."""

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int
    detail: str = Field(description="the reason, in words")
    errors: list[FieldProblem] | None = Field(
        default=None, description="per field, when the request is invalid (never echoes input)"
    )


# Where an error answer's body is described: every error status of every route.
PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDocument"}}}


def complete_openapi(app: FastAPI, complete: Callable[[dict[str, Any]], None]) -> None:
    """Have `complete` add to the app's OpenAPI document what FastAPI cannot see, once: the
    document is generated at the first request for it and cached on the app."""
    generate = app.openapi
    done: list[bool] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not done:
            complete(schema)
            done.append(True)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_problems(schema: dict[str, Any]) -> None:
    """Say in the OpenAPI document what the handlers below do: every error is a problem
    document (FastAPI would advertise its own JSON validation error for 422)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    own = ProblemDocument.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(own.pop("$defs", {}))
    components["ProblemDocument"] = own
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400:
                    response["content"] = PROBLEM_CONTENT
            responses.setdefault(
                "default",
                {
                    "description": "Any other error, as a problem document",
                    "content": PROBLEM_CONTENT,
                },
            )
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error as a problem document, and document it so in the OpenAPI."""
    complete_openapi(app, _document_problems)

    async def on_problem(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            kind=exc.kind,
            errors=exc.errors,
            extensions=exc.extensions,
            headers=exc.headers,
        )

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(
            422,
            "Invalid request",
            "The request does not satisfy the schema",
            kind="invalid-request",
            errors=_field_errors(exc),
        )

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title = {
            404: "Not found",
            405: "Method not allowed",
            401: "Unauthorized",
            413: "Payload too large",
            415: "Unsupported media type",
        }.get(exc.status_code, "HTTP error")
        return problem_response(
            exc.status_code, title, str(exc.detail), kind=title.lower().replace(" ", "-")
        )

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, TRANSIENT_DB_ERRORS):
            # PostgreSQL unreachable or restarting: nothing was acknowledged, the client may
            # retry (with its Idempotency-Key) once readiness is back. One line, no traceback:
            # every request says the same while it lasts.
            _log.warning("database unavailable", error=repr(exc))
            return problem_response(
                503,
                "Service unavailable",
                "The database is unavailable; nothing was stored. Retry later.",
                kind="database-unavailable",
                headers={"Retry-After": "5"},
            )
        # The details go to the log (masked), never to the client.
        _log.error("unhandled error", error=repr(exc), exc_info=exc)
        return problem_response(
            500,
            "Internal error",
            "The server could not complete the request",
            kind="internal-error",
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
