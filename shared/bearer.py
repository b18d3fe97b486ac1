"""The caller named by an HTTP bearer token, or the 401/403 problem that refuses it."""

from __future__ import annotations

from collections.abc import Container

from shared.auth import Caller, InvalidToken, Role, verify
from shared.problems import Problem


def bearer_caller(
    authorization: str | None,
    keys: list[str],
    role: Role,
    *,
    units: Container[str] | None = None,
) -> Caller:
    """The caller of one unit named by a bearer token of the given role; 401/403 otherwise.

    `units`: the unit codes the reference data knows (every code ever, ended ones included: a
    unit that ended may still read its dossiers; whether it may receive is the reception's
    check). A token naming a unit outside them is 401, as one naming no unit code at all.
    """
    if authorization is None or not authorization.lower().startswith("bearer "):
        raise Problem(
            401, "Unauthorized", "Send `Authorization: Bearer <token>`", kind="unauthorized"
        )
    try:
        caller = verify(authorization[7:].strip(), keys)
    except InvalidToken as exc:
        raise Problem(401, "Unauthorized", f"Invalid token: {exc}", kind="unauthorized") from exc
    if units is not None and caller.unit not in units:
        # Not echoed: the claim is the signer's, and the answer is the same for any unknown one.
        raise Problem(
            401,
            "Unauthorized",
            "Invalid token: its unit is not in the reference data",
            kind="unauthorized",
        )
    if caller.role != role:
        raise Problem(403, "Forbidden", f"This API is for the {role} role", kind="forbidden")
    return caller
