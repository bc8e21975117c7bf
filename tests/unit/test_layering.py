"""The arrows of ARCHITECTURE §10 that a refactoring can break silently: the domain imports
nothing else of kassa, representations import only the domain, the use cases (services, the
ledger room, inbound PSP webhooks) never reach for the API, the workers or a concrete PSP or
bank adapter, and the API never holds SQL (it calls services; db/ holds the SQL)."""

from __future__ import annotations

import ast
import re
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


# concrete adapters and the outer rings a use case must not depend on (it gets them injected)
OUTER = ("kassa.api", "kassa.workers", "kassa.cli", "kassa.psp.simulator", "kassa.psp.stripe",
         "kassa.payouts.bank_simulator")


@pytest.mark.parametrize("package", ["services", "ledger", "webhooks"])
def test_use_cases_never_import_the_api_workers_or_concrete_adapters(package: str) -> None:
    modules = kassa_imports(package)
    assert modules, f"no modules found under {package}/"
    outward = {module: sorted(n for n in names if n.startswith(OUTER))
               for module, names in modules.items()}
    assert {m: names for m, names in outward.items() if names} == {}


SQL_WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.IGNORECASE)


def test_the_api_holds_no_sql() -> None:
    modules = kassa_imports("api")
    assert modules
    assert {m: sorted(n for n in names if n.startswith("kassa.db."))
            for m, names in modules.items()
            if any(n.startswith("kassa.db.") for n in names)} == {}
    writes = {str(path.relative_to(SRC)) for path in (SRC / "api").rglob("*.py")
              if SQL_WRITE.search(path.read_text())}
    assert writes == set()
