"""Stripe's official Node SDK (npm ``stripe``, pinned in tests/e2e/node/package-lock.json) for
the e2e tests: installed with ``npm ci`` into a cache outside the repository, one directory
per lock file (so a changed pin installs afresh and an unchanged one is reused between
runs), and the scripts of tests/e2e/node run against it.

No skip when node or npm cannot install: the Node SDK proof is part of the suite, so its
absence is a failure that says what is missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "e2e" / "node"
INSTALL_SECONDS = 600


def cache_root() -> Path:
    configured = os.environ.get("KASSA_NODE_CACHE")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kassa" / "node-e2e"


def node_binary() -> str:
    node = shutil.which("node") or ("/usr/bin/node" if Path("/usr/bin/node").exists() else None)
    if node is None:
        pytest.fail("node is not installed: the Node SDK e2e tests need Node.js 20 or later "
                    "(Debian: apt-get install nodejs npm)", pytrace=False)
    return node


def installed_modules() -> Path:
    """The node_modules holding the pinned SDK, installing it first if this lock file's
    install is not cached yet. Concurrent sessions each install into their own directory
    and the first to finish wins the rename."""
    lock = (SCRIPTS / "package-lock.json").read_bytes()
    target = cache_root() / hashlib.sha256(lock + (SCRIPTS / "package.json").read_bytes()
                                           ).hexdigest()[:16]
    if (target / "node_modules" / "stripe" / "package.json").exists():
        return target / "node_modules"
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: the Node SDK e2e tests install npm's stripe "
                    "package with it (Debian: apt-get install npm)", pytrace=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f"{target.name}.installing-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(SCRIPTS / name, work / name)
    try:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                              cwd=work, capture_output=True, text=True,
                              timeout=INSTALL_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail(f"npm ci of tests/e2e/node did not finish within {INSTALL_SECONDS} s: is "
                    "the npm registry reachable from here?", pytrace=False)
    if done.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail("npm ci of tests/e2e/node failed (is the npm registry reachable from "
                    f"here?):\n{(done.stdout + done.stderr)[-3000:]}", pytrace=False)
    try:
        work.rename(target)
    except OSError:  # another session installed the same lock meanwhile: use theirs
        shutil.rmtree(work, ignore_errors=True)
    return target / "node_modules"


def workspace(modules: Path, into: Path) -> Path:
    """A directory with the scripts and the cached node_modules next to them (ES module
    imports resolve ``stripe`` from the script's own directory upwards)."""
    into.mkdir(parents=True, exist_ok=True)
    for script in SCRIPTS.glob("*.mjs"):
        shutil.copy(script, into / script.name)
    shutil.copy(SCRIPTS / "package.json", into / "package.json")
    link = into / "node_modules"
    if not link.exists():
        link.symlink_to(modules, target_is_directory=True)
    return into


async def run_script(node: str, directory: Path, script: str, *, env: dict[str, str],
                     stdin: bytes = b"", within: float = 120.0) -> dict[str, Any]:
    """Run one script (without blocking the loop kassa is served on); its JSON output."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    proc = await asyncio.create_subprocess_exec(
        node, str(directory / script), cwd=directory, env={**clean, **env},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{script} did not finish within {within} s") from None
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{err.decode()}"
    lines = out.decode().strip().splitlines()
    assert lines, f"{script} printed nothing:\n{err.decode()}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result
