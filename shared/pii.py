"""Masks national ID, ID card, tax and phone numbers typed into free text (Decree 13/2023).

Applicants' ID fields are pseudonymised where they are read (shared/ids.keyed_hash); this is for
what people type elsewhere: a refusal reason quoting the applicant's CCCD, a note with a tax code.
Masked: a number of 9 (CMND), 10 (tax code, mobile phone) or 12 (CCCD) digits, or 10 + a 3-digit
branch (tax code `-001`), written in one run or in groups split by single spaces, dots or dashes
("079 203 001 234", "0100109106-001"). The first three digits stay (the province, for whoever
reads the text), every other digit becomes `*`, separators stay, so the text keeps its shape.

Left alone, by construction: digits touching a letter, or a code's dot or dash (unit codes
`T01.X00004`, dossier codes `T01.X00004-261008-0975`, procedure codes `1.002189.000.00.00.H12`,
UUIDs, hashes), decimals, IPv4 addresses, dates and times (8 digits; a time's colon ends a
number), and amounts in đồng: a number with no leading zero ending in 000, either grouped by
thousands with dots or next to a currency word (`150.000.000`, `1500000000 đồng`). Anything
else ID-shaped is masked (a "2023 2024 2025" too): a wrongly masked amount is a nuisance, an ID
in clear is a breach.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

# A number: digit groups joined by single separators, touching no letter or digit, nor a code's
# dot or dash (`X00004-261008`), nor a time's colon (`08:00`). [^\W_] is a letter or a digit.
_NUMBER = re.compile(
    r"(?<![^\W_])(?<![^\W_][.\-])[0-9]+(?:[ .\-][0-9]+)*(?![^\W_])(?![.:][^\W_])",
)
_GROUP = re.compile(r"[0-9]+")
# A one-digit whole part or fraction: a decimal or a version ("0.123456789", "1.001193", "12.5"),
# not an ID (a CCCD may be typed "079.2.03.001234": the one digit is inside).
_DECIMAL = re.compile(r"^[0-9]\.|\.[0-9]$")
# An IPv4 address as written (no octet with a leading zero; a CCCD's first group always has one).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
# Cheap test first: most strings have no three digits in a row.
_CANDIDATE = re.compile(r"[0-9]{3}")

_ID_LENGTHS = frozenset({9, 10, 12})
_TAX_WITH_BRANCH = 13  # ten digits and a three-digit branch
_LONGEST = 13

_CURRENCY_AFTER = re.compile(r"\s?(?:đồng|đ|vnđ|vnd|₫|dong)(?![^\W_])", re.IGNORECASE)
_CURRENCY_BEFORE = re.compile(r"(?<![^\W_])(?:vnđ|vnd|₫)\s?$", re.IGNORECASE)
_THOUSANDS = re.compile(r"[1-9][0-9]{0,2}(?:\.[0-9]{3})+")


def _id_like(groups: list[str]) -> bool:
    digits = sum(len(g) for g in groups)
    if digits in _ID_LENGTHS:
        return True
    return digits == _TAX_WITH_BRANCH and len(groups) > 1 and len(groups[-1]) == 3


def _amount(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] reads as a sum of money in đồng rather than an identifier."""
    number = text[start:end]
    digits = number.replace(".", "").replace(" ", "").replace("-", "")
    if digits.startswith("0") or not digits.endswith("000"):
        return False
    if _THOUSANDS.fullmatch(number):
        return True
    return (
        _CURRENCY_AFTER.match(text, end) is not None
        or _CURRENCY_BEFORE.search(text, 0, start) is not None
    )


def _part_of_dotted(text: str, number: re.Match[str], start: int, end: int) -> bool:
    """Whether text[start:end] is a decimal, a version, an IPv4 address or a piece of a longer
    dotted number ("0.123456789012", "192.168.100.200", "1.001193 12"), not an ID of its own."""
    return (
        _DECIMAL.search(text[start:end]) is not None
        or _IPV4.fullmatch(text, start, end) is not None
        or (start > number.start() and text[start - 1] == ".")
        or (end < number.end() and text[end] == ".")
    )


def _hide(number: str) -> str:
    kept = 0
    out = []
    for char in number:
        if "0" <= char <= "9":
            out.append(char if kept < 3 else "*")
            kept += 1
        else:
            out.append(char)
    return "".join(out)


def _id_spans(text: str, match: re.Match[str]) -> Iterator[tuple[int, int]]:
    """The ID-like stretches of one number's groups, longest first from the left:
    "079203001234 0100109106" is two IDs in one run of spaced groups."""
    groups = list(_GROUP.finditer(text, match.start(), match.end()))
    i = 0
    while i < len(groups):
        best = None
        digits = 0
        for j in range(i, len(groups)):
            digits += len(groups[j].group())
            if digits > _LONGEST:
                break
            if _id_like([g.group() for g in groups[i : j + 1]]):
                best = j
        if best is None:
            i += 1
            continue
        start, end = groups[i].start(), groups[best].end()
        if not _part_of_dotted(text, match, start, end) and not _amount(text, start, end):
            yield start, end
        i = best + 1


def id_spans(text: str) -> Iterator[tuple[int, int]]:
    """Where `text` holds an ID-like number (see the module), as (start, end) offsets: what
    `mask` hides, and what a scan for IDs in clear looks at."""
    if _CANDIDATE.search(text) is None:
        return
    for number in _NUMBER.finditer(text):
        yield from _id_spans(text, number)


def mask(text: str) -> str:
    """`text` with every ID-like number partly hidden (see the module); unchanged otherwise."""
    pieces: list[str] = []
    written = 0
    for start, end in id_spans(text):
        pieces += [text[written:start], _hide(text[start:end])]
        written = end
    if not pieces:
        return text
    pieces.append(text[written:])
    return "".join(pieces)


def mask_bytes(raw: bytes) -> bytes:
    """`mask` for bytes of any encoding (a Kafka key): bytes that are not UTF-8 pass unchanged,
    and so does the whole value when nothing in it looks like an ID."""
    text = raw.decode("utf-8", errors="surrogateescape")
    masked = mask(text)
    return raw if masked == text else masked.encode("utf-8", errors="surrogateescape")


def mask_value(value: Any) -> Any:
    """Every string in a JSON-like value masked, dictionary keys included (a field path may be
    a key someone typed); other values as they are."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {mask_value(k): mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(mask_value(v) for v in value)
    return value
