"""The string types of requests: no U+0000 (PostgreSQL cannot store it), and free text masked."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from shared.pii import mask

NUL_REASON = "must not contain the NUL character"


def _refuse_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", NUL_REASON)
    return value


# The rule itself, to compose a type whose lengths must come first (see below):
# `Annotated[str, Field(max_length=64), NoNul] | None`.
NoNul = AfterValidator(_refuse_nul)

# A string a request may carry into PostgreSQL: U+0000 refused where the model is validated, as a
# field error ("must not contain the NUL character") among the others; the OpenAPI schema stays a
# plain string. Lengths go on the attribute, `name: Text = Field(min_length=1, max_length=200)`:
# pydantic then checks them on the string itself. (Wrapped in another `Annotated[Text, Field(..)]`
# they would be checked after the validator, with other messages: hence the aliases below.)
Text = Annotated[str, NoNul]

# The rule that hides national ID, tax and phone numbers typed into free text (shared/pii.py),
# applied where the model is validated: what is stored, published or shown afterwards (events,
# tables, the timeline) never held them. Masking keeps the length, so it may come after lengths.
Masked = AfterValidator(mask)

# Free text people type (a rating's criteria, what a payment is for): `Text`, masked. Never for
# an applicant's ID field, which must reach its keyed hash intact.
FreeText = Annotated[str, NoNul, Masked]

# Why an officer or a counter did something, as the applicant will read it.
Reason = Annotated[str, Field(min_length=1, max_length=2000), NoNul, Masked]

# An optional remark: `reason: Note | None = None`.
Note = Annotated[str, Field(max_length=2000), NoNul, Masked]


def nul_fields(value: object, path: tuple[str, ...] = ()) -> list[str]:
    """The dotted paths of the strings in `value` (a model dump) holding U+0000."""
    if isinstance(value, str):
        return [".".join(path) or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in nul_fields(v, (*path, str(k)))]
    if isinstance(value, list | tuple):
        return [f for i, v in enumerate(value) for f in nul_fields(v, (*path, str(i)))]
    return []
