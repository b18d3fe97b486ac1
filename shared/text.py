"""Text PostgreSQL cannot store: JSON allows U+0000 in a string; `text` and `jsonb` refuse it."""

from __future__ import annotations


def nul_fields(value: object, path: tuple[str, ...] = ()) -> list[str]:
    """The dotted paths of the strings in `value` (a model dump) holding U+0000."""
    if isinstance(value, str):
        return [".".join(path) or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in nul_fields(v, (*path, str(k)))]
    if isinstance(value, list | tuple):
        return [f for i, v in enumerate(value) for f in nul_fields(v, (*path, str(i)))]
    return []
