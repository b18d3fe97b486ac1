"""The caller named by an HTTP bearer token, or the 401/403 problem that refuses it."""

from __future__ import annotations

from shared.auth import Caller, InvalidToken, Role, verify
from shared.problems import Problem


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
