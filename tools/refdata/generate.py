"""Writes the versioned administrative-map file: `python -m tools.refdata.generate [--check]`."""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from pathlib import Path
from typing import Any

from tools.refdata.build import NEW, build
from tools.refdata.sources import read_vietnamadminunits

MAPS_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference_data" / "maps"
# The data version: the date of the latest structure in the file, then a revision number. A new
# reorganisation or a corrected package is a new version (a new file), never an edited one.
DATA_VERSION = "2025.07.1"


def render(document: dict[str, Any]) -> str:
    """JSON with one unit a line, so that the next version's diff reads unit by unit."""
    lines = ["{"]
    keys = list(document)
    for index, key in enumerate(keys):
        value = document[key]
        comma = "," if index < len(keys) - 1 else ""
        if isinstance(value, list):
            lines.append(f"  {json.dumps(key)}: [")
            items = [json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in value]
            lines.extend(f"    {item}," for item in items[:-1])
            lines.extend(f"    {item}" for item in items[-1:])
            lines.append(f"  ]{comma}")
        else:
            rendered = json.dumps(value, ensure_ascii=False, indent=2).replace("\n", "\n  ")
            lines.append(f"  {json.dumps(key)}: {rendered}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _fold(name: str) -> tuple[str, str]:
    """The letters, and the marks wherever they sit: "Thuận Hoà" and "Thuận Hòa", "H'Leo" and
    "H’Leo" are two spellings of one name."""
    decomposed = unicodedata.normalize("NFD", name.casefold().replace("’", "'"))
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    marks = "".join(sorted(c for c in decomposed if unicodedata.combining(c)))
    return letters, marks


def cross_check(document: dict[str, Any], nested_divisions: Path) -> list[str]:
    """Differences with another package's current map (vietnam-provinces' nested-divisions.json):
    codes and provinces must agree; names may differ only in the placement of tone marks."""
    theirs = {
        f"{ward['code']:05d}": (f"{province['code']:02d}", ward["name"])
        for province in json.loads(nested_divisions.read_text(encoding="utf-8"))
        for ward in province["wards"]
    }
    ours = {
        c["code"]: (c["province"], c["name"]) for c in document["communes"] if c["structure"] == NEW
    }
    problems = [
        f"{code}: only in {nested_divisions.name}" for code in sorted(theirs.keys() - ours.keys())
    ]
    problems += [f"{code}: only in ours" for code in sorted(ours.keys() - theirs.keys())]
    for code in sorted(ours.keys() & theirs.keys()):
        (our_province, our_name), (their_province, their_name) = ours[code], theirs[code]
        if our_province != their_province or _fold(our_name) != _fold(their_name):
            problems.append(
                f"{code}: {our_name} ({our_province}) vs {their_name} ({their_province})"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=MAPS_DIR)
    parser.add_argument("--check", action="store_true", help="fail if the file is not up to date")
    parser.add_argument(
        "--cross-check", type=Path, help="another package's nested-divisions.json to compare with"
    )
    args = parser.parse_args(argv)
    source = read_vietnamadminunits()
    provenance = {
        "generated_by": "python -m tools.refdata.generate",
        "sources": [source.provenance],
    }
    document = build(
        source.legacy, source.current, source.converter, version=DATA_VERSION, provenance=provenance
    )
    if args.cross_check is not None:
        problems = cross_check(document, args.cross_check)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
    text = render(document)
    path = args.out / f"vietnam-{DATA_VERSION}.json"
    if args.check:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is not what the generator writes now", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}: {len(document['communes'])} communes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
