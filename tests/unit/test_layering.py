"""The arrows of ARCHITECTURE §10 that a refactoring can break silently: the domain imports
nothing else of kassa, and representations import only the domain."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kassa

SRC = Path(kassa.__file__).parent


def kassa_imports(package: str) -> dict[str, set[str]]:
    """Per module of ``package``, the kassa modules it imports."""
    out: dict[str, set[str]] = {}
    for path in sorted((SRC / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.update(f"{node.module}.{a.name}" for a in node.names)
        out[str(path.relative_to(SRC))] = {n for n in names if n.split(".")[0] == "kassa"}
    return out


@pytest.mark.parametrize(("package", "allowed"), [
    ("domain", ("kassa.domain.",)),
    ("representations", ("kassa.domain.", "kassa.representations.")),
])
def test_package_imports_only_inward(package: str, allowed: tuple[str, ...]) -> None:
    modules = kassa_imports(package)
    assert modules, f"no modules found under {package}/"
    outward = {module: sorted(n for n in names if not n.startswith(allowed))
               for module, names in modules.items()}
    assert {m: names for m, names in outward.items() if names} == {}
