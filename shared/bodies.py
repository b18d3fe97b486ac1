"""Raw-body routes: served without FastAPI's request handler, JSON parsed in one pass."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

M = TypeVar("M", bound=BaseModel)


def parse_json_body(model: type[M], body: bytes) -> M:
    """The body validated as `model` in one pass (pydantic parses the bytes itself), with the
    errors FastAPI would give for a body parameter (a NUL is one where the model's strings are
    `shared.text.Text`).

    For the hot routes that read the raw request: FastAPI's generic body handling (a `json.loads`,
    then validating the Python objects, inside its dependency solver) was a fifth of the CPU of a
    submission. Document such a route's body with `json_body_openapi`.
    """
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {**e, "loc": ("body", *e["loc"])}
                for e in exc.errors(include_url=False, include_input=False)
            ]
        ) from None


class RawBodyRoute(APIRoute):
    """A route whose endpoint takes the Request and returns the Response itself: documented from
    its declaration like any other (response model, `openapi_extra`), served without FastAPI's
    request handler (dependency solving, body parsing, response re-validation: a fifth of a
    submission's CPU under the counters' load). The endpoint authenticates and reads its body
    itself (`parse_json_body`); its errors reach the app's exception handlers as any route's.

    Its endpoint takes nothing else: a dependency or a parameter declared on it is an error here,
    never silently skipped. Add the routes to the app's own route list (`include_router` would
    wrap them in its context, whose dependencies this route does not run).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        wants = self.dependant
        if (
            wants.dependencies
            or wants.path_params
            or wants.query_params
            or wants.header_params
            or wants.cookie_params
            or wants.body_params
        ):
            raise TypeError(f"{path}: a RawBodyRoute's endpoint takes the Request and nothing else")
        self.app = _serve(endpoint)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return handler


def _serve(endpoint: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    """The endpoint as the route's ASGI app. Not Starlette's `request_response` (nor FastAPI's,
    which adds the exit stacks of dependencies, and there are none): its own exception-handling
    layer repeats the app's ExceptionMiddleware, which handles what the endpoint raises with the
    same handlers. ~8 µs a submission."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


class FrontDoor:
    """ASGI middleware handing the requests of a few RawBodyRoutes straight to those routes.

    The routes stay declared, documented and matched in the app like any other (the route object
    is the code that runs, either way); this door only spares the counters' hot requests the
    layers between the middleware and a route: Starlette's ExceptionMiddleware, FastAPI's exit
    stack and the router's matching, ~20 µs a submission (measured). What the route raises goes
    to the app's own exception handlers, as ExceptionMiddleware would send it. Add it before
    BodyLimits, so that the body checks still run first.
    """

    def __init__(self, app: ASGIApp, owner: FastAPI, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.owner = owner
        self.routes: dict[tuple[str, str], RawBodyRoute] = {}
        for route in routes:
            if not isinstance(route, RawBodyRoute):
                raise TypeError(f"{route}: the front door serves RawBodyRoutes only")
            for method in route.methods or ():
                self.routes[method, route.path] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        try:
            await route.app(scope, receive, send)
        except Exception as exc:
            response = await self._handled(Request(scope, receive), exc)
            await response(scope, receive, send)

    async def _handled(self, request: Request, exc: Exception) -> Response:
        handlers = self.owner.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                outcome = handler(request, exc)
                answer: Response = await outcome if inspect.isawaitable(outcome) else outcome
                return answer
        raise exc  # no handler, not even for Exception: as the framework would, let it out


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
