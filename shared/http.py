"""HTTP plumbing shared by the services: RFC 9457 problem+json errors and health probes."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.auth import Caller, InvalidToken, Role, verify
from shared.logging import get_logger
from shared.probes import NotReady
from shared.text import nul_fields

_log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"

# FastAPI's OpenTelemetry bridge asks the global providers at every request (about 2 % of a
# submission's CPU) and would find none: the services' telemetry is Prometheus and structlog.
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


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
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.errors = errors or []


def problem_response(
    status: int, title: str, detail: str, *, kind: str, errors: list[dict[str, Any]] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://motcua.example/problems/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo the input back: it may be a national ID.
    return [
        {
            "field": ".".join(str(p) for p in err["loc"] if p != "body") or "body",
            "reason": err["msg"],
        }
        for err in exc.errors()
    ]


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


def _document_problems(app: FastAPI) -> None:
    """Say in the OpenAPI document what the handlers below do: every error is a problem
    document (FastAPI would advertise its own JSON validation error for 422)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached on the app: completed once, here
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ProblemDocument" in components:
            return schema
        own = ProblemDocument.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(own.pop("$defs", {}))
        components["ProblemDocument"] = own
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDocument"}}}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                for code, response in responses.items():
                    if code.isdigit() and int(code) >= 400:
                        response["content"] = problem
                responses.setdefault(
                    "default",
                    {"description": "Any other error, as a problem document", "content": problem},
                )
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error as a problem document, and document it so in the OpenAPI."""
    _document_problems(app)

    async def on_problem(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc.status, exc.title, exc.detail, kind=exc.kind, errors=exc.errors)

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


Check = Callable[[], Awaitable[bool]]


def health_router(
    checks: dict[str, Check], informational: frozenset[str] = frozenset()
) -> APIRouter:
    """/healthz: the process is alive. /readyz: every dependency answers (broker, database).

    An informational check is reported but does not make the service unready.
    """
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results = {}
        for name, check in checks.items():
            try:
                results[name] = "ok" if await check() else "unreachable"
            except NotReady as exc:
                results[name] = f"error: {exc}"
            except Exception as exc:
                results[name] = f"error: {type(exc).__name__}"
        ready = all(v == "ok" for k, v in results.items() if k not in informational)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    return router


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BODY_HEADERS = {
    name.encode(): name for name in ("content-length", "content-type", "transfer-encoding")
}


def _body_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers about the body (ASGI gives names lower-cased), leaving the others undecoded."""
    return {_BODY_HEADERS[k]: v.decode("latin-1") for k, v in raw if k in _BODY_HEADERS}


class BodyLimits:
    """ASGI middleware: 415 unless a body is JSON, 413 past `max_bytes` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = _body_headers(scope["headers"])
        declared = headers.get("content-length")
        if declared in (None, "0") and "transfer-encoding" not in headers:
            # No body (an action such as POST .../result-return): nothing to type-check.
            await self.app(scope, receive, send)
            return
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            response = problem_response(
                415,
                "Unsupported media type",
                "Send the body as application/json",
                kind="unsupported-media-type",
            )
            await response(scope, receive, send)
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        # A chunked body has no declared length: read it all here and count.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Any:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Any, receive: Any, send: Any) -> None:
        response = problem_response(
            413,
            "Payload too large",
            f"The body exceeds {self.max_bytes} bytes",
            kind="payload-too-large",
        )
        await response(scope, receive, send)


Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    """ASGI middleware calling the endpoints of a few hot routes directly.

    Between the middleware and an endpoint, Starlette and FastAPI run their exception middleware,
    an async exit stack, the routing through included routers and the request handler with its
    dependency solving: about a fifth of a submission's CPU under the counters' load. An endpoint
    that takes only the Request and returns a Response needs none of it. Its exceptions go to the
    app's own exception handlers, so the responses are the ones the framework would send; the
    routes stay declared on the app (OpenAPI, and the same behaviour without this middleware).
    Add it before BodyLimits, so that the body checks still run first.
    """

    def __init__(self, app: Any, owner: FastAPI, routes: dict[tuple[str, str], Endpoint]) -> None:
        self.app = app
        self.owner = owner
        self.routes = routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        endpoint = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await self._handled(request, exc)
        await response(scope, receive, send)

    async def _handled(self, request: Request, exc: Exception) -> Response:
        handlers = self.owner.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                outcome = handler(request, exc)
                return await outcome if inspect.isawaitable(outcome) else outcome
        raise exc  # no handler, not even for Exception: as the framework would, let it out


def metrics_router(
    *registries: CollectorRegistry,
    before: Callable[[], Awaitable[None]] | None = None,
    rendered: Callable[[], bytes] | None = None,
) -> APIRouter:
    """/metrics in the Prometheus text format (a route, not a mount: no redirect to /metrics/).

    `before` runs at every scrape (the metrics service re-reads its exact totals there);
    `rendered` returns families already in the text format, appended as they are.
    """
    router = APIRouter(tags=["metrics"])
    sources = registries or (REGISTRY,)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if before is not None:
            await before()
        body = b"".join(generate_latest(r) for r in sources)
        if rendered is not None:
            body += rendered()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router


def bearer_caller(authorization: str | None, keys: list[str], role: Role) -> Caller:
    """The caller of one unit named by a bearer token of the given role; 401/403 otherwise."""
    if authorization is None or not authorization.lower().startswith("bearer "):
        raise Problem(
            401, "Unauthorized", "Send `Authorization: Bearer <token>`", kind="unauthorized"
        )
    try:
        caller = verify(authorization[7:].strip(), keys)
    except InvalidToken as exc:
        raise Problem(401, "Unauthorized", f"Invalid token: {exc}", kind="unauthorized") from exc
    if caller.role != role:
        raise Problem(403, "Forbidden", f"This API is for the {role} role", kind="forbidden")
    return caller
