"""The Makefile's install steps (`make -n`, nothing is installed): `make run` installs the
service alone, `make test`/`make lint` add the test tools, one venv serves both in any order."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(project: Path, target: str) -> list[str]:
    out = subprocess.run(["make", "-n", target], cwd=project, capture_output=True, text=True,
                         check=True)
    return [line for line in out.stdout.splitlines() if "pip install" in line]


def installed(project: Path, *stamps: str) -> None:
    """What a finished `make install`/`install-dev` leaves: a venv and newer stamps."""
    bin_dir = project / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "python").touch()
    later = time.time() + 5
    for stamp in stamps:
        path = project / ".venv" / stamp
        path.touch()
        os.utime(path, (later, later))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_run_installs_the_service_not_the_test_tools(project):
    steps = dry_run(project, "run")
    assert any(line.endswith("pip install --quiet -e .") for line in steps), steps
    assert not any("[dev]" in line for line in steps)
    for target in ("test", "lint"):
        assert any("-e '.[dev]'" in line for line in dry_run(project, target)), target


def test_test_after_run_adds_the_test_tools_and_run_after_test_installs_nothing(project):
    installed(project, ".installed-run")  # `make run` happened
    assert dry_run(project, "run") == []
    assert any("[dev]" in line for line in dry_run(project, "test"))
    installed(project, ".installed-run", ".installed-dev")  # then `make test`
    assert dry_run(project, "test") == []
    assert dry_run(project, "run") == []


def test_a_changed_pyproject_reinstalls(project):
    installed(project, ".installed-run", ".installed-dev")
    later = time.time() + 60
    os.utime(project / "pyproject.toml", (later, later))
    assert any(line.endswith("-e .") for line in dry_run(project, "run"))
    assert any("[dev]" in line for line in dry_run(project, "test"))
