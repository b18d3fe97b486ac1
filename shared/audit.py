"""The audit log: who did or read what, on which dossier, from where, with what answer.

One JSON line per request to an audited route (every counter and officer action, every read of
a dossier or a list), marked `"audit": true`, written straight to the process's stderr: no
logger, so no log level (MOTCUA_LOG_LEVEL) can turn it off. It names the caller as the token
does (subject, unit, role), the dossier by id or code, a list by its filters (never its
results), and no applicant data: no ID number, no name, no free text (Decree 13/2023 keeps a
record of who processed personal data; it must not become another copy of that data).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from uuid import UUID

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from shared.auth import Caller
from shared.bodies import RawBodyRoute
from shared.pii import mask_value
from shared.problems import Problem

# Where a request's Record travels, in the ASGI scope every layer of the request shares.
SCOPE_KEY = "motcua.audit"


# Not slotted: orjson serialises a dataclass's __dict__ as it is (its fields in this order), four
# times as fast as a slotted one's fields, and twice as fast as building a dict to serialise:
# this runs at every submission.
@dataclass(kw_only=True)
class Record:
    """One request to an audited route, filled in as it goes: the route when it starts, the
    caller once authenticated, the dossier once known (a new one at reception), the answer at
    the end; written as it is."""

    audit: bool = True
    at: datetime | None = None
    service: str
    action: str
    method: str = ""
    route: str
    subject: str | None = None
    unit: str | None = None
    role: str | None = None
    dossier_id: str | None = None
    dossier_code: str | None = None
    filters: dict[str, Any] | None = None
    client: str | None = None
    status: int = 0


def render(record: Record) -> bytes:
    """One JSON line, times in UTC with a Z; null where unknown (a caller refused at 401)."""
    return orjson.dumps(record, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)


def _stderr(line: bytes) -> None:
    # The file descriptor, not sys.stderr: one system call per record, no Python buffer to lose
    # at a crash, and a line under PIPE_BUF is never interleaved with another process's.
    while line:
        line = line[os.write(2, line) :]


class AuditLog:
    """Where the records go: stderr unless told otherwise (tests collect them)."""

    def __init__(self, sink: Callable[[bytes], None] = _stderr) -> None:
        self.sink = sink

    def write(self, record: Record) -> None:
        self.sink(render(record))


AUDIT = AuditLog()


def note_caller(request: Request, caller: Caller) -> Caller:
    """Name the authenticated caller in the request's record; returns the caller."""
    record = request.scope.get(SCOPE_KEY)
    if record is not None:
        record.subject, record.unit, record.role = caller.subject, caller.unit, caller.role
    return caller


def note_dossier(request: Request, dossier_id: UUID, code: str | None = None) -> None:
    """Name the dossier a request created or found (the path names it otherwise)."""
    record = request.scope.get(SCOPE_KEY)
    if record is not None:
        record.dossier_id = str(dossier_id)
        record.dossier_code = code


def note_filters(request: Request, filters: dict[str, Any]) -> None:
    """Name a list's filters, as validated; a typed value goes masked all the same."""
    record = request.scope.get(SCOPE_KEY)
    if record is not None:
        record.filters = mask_value(filters)


def status_of(exc: Exception) -> int:
    """The status the app's handlers answer an exception with (those every service shares)."""
    if isinstance(exc, Problem):
        return exc.status
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, RequestValidationError):
        return 422
    return 500


def _path_dossier(scope: Scope) -> str | None:
    """The path's dossier id, when it is one: anything else a client typed is not recorded."""
    raw = scope.get("path_params", {}).get("dossier_id")
    if not isinstance(raw, str):
        return None
    try:
        return str(UUID(raw))
    except ValueError:
        return None


Handler = Callable[[Request], Awaitable[Response]]


def audited(
    handler: Handler,
    *,
    service: str,
    action: str,
    route: str,
    status_of: Callable[[Exception], int] = status_of,
    log: AuditLog = AUDIT,
) -> Handler:
    """A route's handler writing one record per request, whatever its outcome: the status of its
    response, or the one the app's handlers answer what it raised with (`status_of`)."""

    @functools.wraps(handler)
    async def audited_handler(request: Request) -> Response:
        scope = request.scope
        record = scope[SCOPE_KEY] = Record(service=service, action=action, route=route)
        try:
            response = await handler(request)
        except Exception as exc:
            _write(log, record, scope, status_of(exc))
            raise
        _write(log, record, scope, response.status_code)
        return response

    return audited_handler


def _write(log: AuditLog, record: Record, scope: Scope, status: int) -> None:
    if record.dossier_id is None and "path_params" in scope:
        record.dossier_id = _path_dossier(scope)
    record.at = datetime.now(UTC)
    record.method = scope["method"]
    # uvicorn's address of the peer, or the client a trusted proxy names (X-Forwarded-For).
    client = scope.get("client")
    if client is not None:
        record.client = client[0]
    record.status = status
    log.write(record)


R = TypeVar("R", bound=APIRoute)


def route_class(
    base: type[R],
    *,
    service: str,
    status_of: Callable[[Exception], int] = status_of,
    log: AuditLog = AUDIT,
) -> type[R]:
    """`base` whose routes are audited (`audited`): a router's `route_class`, so that no route
    of it can be forgotten. The action is the route's name (its endpoint's), the route its path
    template."""
    wrap = functools.partial(audited, service=service, status_of=status_of, log=log)
    members: dict[str, Any]
    if issubclass(base, RawBodyRoute):
        # Its endpoint is its handler (Request in, Response out), served as it is.
        def __init__(self: RawBodyRoute, path: str, endpoint: Handler, **kwargs: Any) -> None:
            action = kwargs.get("name") or endpoint.__name__
            base.__init__(self, path, wrap(endpoint, action=action, route=path), **kwargs)

        members = {"__init__": __init__}
    else:
        # The handler FastAPI builds, whether the route is served directly or through an
        # included router (which builds its own from this hook).
        def get_route_handler(self: R) -> Handler:
            return wrap(base.get_route_handler(self), action=self.name, route=self.path)

        members = {"get_route_handler": get_route_handler}
    return cast(type[R], type(f"Audited{base.__name__}", (base,), members))
