"""The problem+json of a unit code that cannot receive or take a dossier at that instant."""

from __future__ import annotations

from shared.admin_map import AdminMapError, UnitNotInForce, UnknownUnit
from shared.problems import Problem


def unit_problem(error: AdminMapError, *, field: str) -> Problem:
    """422 naming the field and, for a unit that ended (the map of 30 June 2025, say), the units
    in force that took over its territory, so the caller can resend to the right one."""
    if isinstance(error, UnitNotInForce):
        successors = [{"code": u.code, "name": u.name} for u in error.successors]
        return Problem(
            422,
            "Unit not in force",
            str(error),
            kind="unit-not-in-force",
            errors=[{"field": field, "reason": f"not in force on {error.day.isoformat()}"}],
            extensions={"unit": error.code, "successors": successors},
        )
    reason = "unknown administrative unit" if isinstance(error, UnknownUnit) else str(error)
    return Problem(
        422,
        "Unknown unit",
        f"{field}: {reason}",
        kind="unknown-unit",
        errors=[{"field": field, "reason": reason}],
    )
