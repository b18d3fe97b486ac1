"""The house's walls: a service imports only itself and `shared`; `shared` imports no service or
tool. Tools (the CLI, importer, simulator) may import any service; nothing in production imports
them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())
OURS = ("services", "shared", "tools", "tests", "bench", "deploy")


def _imported(source: str, package: list[str]) -> set[str]:
    """The modules of ours that `source` imports, relative imports resolved against `package`
    (so `from ..processing import x` in services/intake is services.processing)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            found.add(".".join([*base, *([node.module] if node.module else [])]))
    return {name for name in found if name.split(".")[0] in OURS}


def _imports(path: Path) -> set[str]:
    package = list(path.relative_to(ROOT).parts[:-1])
    return _imported(path.read_text(encoding="utf-8"), package)


def test_relative_imports_are_resolved() -> None:
    source = "from ..processing import domain\nfrom . import store\nimport shared.db\n"
    assert _imported(source, ["services", "intake"]) == {
        "services.processing",
        "services.intake",
        "shared.db",
    }


def _forbidden(path: Path, allowed: tuple[str, ...]) -> list[str]:
    return sorted(
        name
        for name in _imports(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    )


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_only_itself_and_shared(service: str) -> None:
    allowed = (f"services.{service}", "shared")
    offenders = {
        str(path.relative_to(ROOT)): bad
        for path in sorted((ROOT / "services" / service).rglob("*.py"))
        if (bad := _forbidden(path, allowed))
    }
    assert offenders == {}


def test_shared_imports_no_service_and_no_tool() -> None:
    offenders = {
        str(path.relative_to(ROOT)): bad
        for path in sorted((ROOT / "shared").rglob("*.py"))
        if (bad := _forbidden(path, ("shared",)))
    }
    assert offenders == {}


def test_the_services_package_holds_only_services() -> None:
    # Tools live in tools/: services/ is the three services and nothing beside them.
    loose = sorted(
        p.name for p in (ROOT / "services").iterdir() if p.suffix == ".py" and p.stem != "__init__"
    )
    assert loose == []
    assert SERVICES == ["intake", "metrics", "processing"]
