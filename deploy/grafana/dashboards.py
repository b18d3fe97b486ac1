"""Generate the Grafana dashboards' JSON committed under deploy/k8s/base/dashboards/.

Run from the repository root: `.venv/bin/python -m deploy.grafana.dashboards` writes the files,
`--check` only says whether they are up to date (exit status 1 if not).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deploy.grafana import leaders, operations
from deploy.grafana.common import render

OUTPUT = Path(__file__).resolve().parents[1] / "k8s" / "base" / "dashboards"


def dashboards() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {
        "leaders.json": render(leaders.build()),
        "operations.json": render(operations.build()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    stale = []
    for name, text in dashboards().items():
        path: Path = args.output / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        sys.stderr.write(
            f"out of date: {', '.join(stale)}; run python -m deploy.grafana.dashboards\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
