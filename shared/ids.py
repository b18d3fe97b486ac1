"""Identifiers: UUIDv7 event ids, Vietnamese personal ID and tax code checks, keyed hashes."""

from __future__ import annotations

import hmac
import os
import re
import time
import uuid
from datetime import date

# The 63 pre-2025 province codes used as the first three digits of a personal ID (DOMAIN.md).
PROVINCE_CODES = frozenset(
    [
        "001",
        "002",
        "004",
        "006",
        "008",
        "010",
        "011",
        "012",
        "014",
        "015",
        "017",
        "019",
        "020",
        "022",
        "024",
        "025",
        "026",
        "027",
        "030",
        "031",
        "033",
        "034",
        "035",
        "036",
        "037",
        "038",
        "040",
        "042",
        "044",
        "045",
        "046",
        "048",
        "049",
        "051",
        "052",
        "054",
        "056",
        "058",
        "060",
        "062",
        "064",
        "066",
        "067",
        "068",
        "070",
        "072",
        "074",
        "075",
        "077",
        "079",
        "080",
        "082",
        "083",
        "084",
        "086",
        "087",
        "089",
        "091",
        "092",
        "093",
        "094",
        "095",
        "096",
    ]
)

_PERSONAL_ID = re.compile(r"[0-9]{12}")
_TAX_CODE = re.compile(r"([0-9]{10})(?:-([0-9]{3}))?")
_TAX_WEIGHTS = (31, 29, 23, 19, 17, 13, 7, 5, 3)


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): sortable event ids that index well."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def personal_id_problem(value: str, today: date) -> str | None:
    """Why `value` is not a plausible personal identification number (số định danh), or None.

    The reason names the part that is wrong, never its digits: it reaches error bodies, import
    reports and logs, and a few digits with the rest of a record narrow down whose ID it is.
    """
    if not _PERSONAL_ID.fullmatch(value):
        return "must be exactly 12 digits"
    if value[:3] not in PROVINCE_CODES:
        return "the first three digits are not one of the 63 province codes"
    # The fourth digit tells gender and century: 0-1 the 1900s, 2-3 the 2000s, 4-5 the 2100s...
    birth_year = 1900 + 100 * (int(value[3]) // 2) + int(value[4:6])
    if birth_year > today.year:
        return "the birth year (fourth to sixth digits) is in the future"
    return None


def tax_check_digit(first_nine: str) -> int | None:
    """The check digit of a tax code's first nine digits; None where no digit can satisfy it."""
    remainder = sum(int(d) * w for d, w in zip(first_nine, _TAX_WEIGHTS, strict=True)) % 11
    return None if remainder == 0 else 10 - remainder


def tax_code_problem(value: str) -> str | None:
    """Why `value` is not a valid enterprise/tax code (mã số thuế), or None."""
    match = _TAX_CODE.fullmatch(value)
    if match is None:
        return "must be 10 digits, optionally followed by -001 to -999 for a branch"
    digits = match.group(1)
    if tax_check_digit(digits[:9]) != int(digits[9]):
        return "the check digit (tenth digit) does not match"
    if match.group(2) == "000":
        return "branch suffix must be between -001 and -999"
    return None


def keyed_hash(value: str, key: bytes) -> str:
    """A stable pseudonym for personal data (HMAC-SHA256): linking without the clear value."""
    return hmac.digest(key, value.encode(), "sha256").hex()  # one-shot: no HMAC object
