"""The README is a test: its walk-through runs as written, in order, against a fresh
`kassa dev`; and the README keeps its promises about itself (what kassa does and does not
yet, a license, no link leaving the repository)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.databases import with_database
from tests.support.readme import (
    DONE,
    README,
    README_API,
    ROOT,
    fenced_blocks,
    last_block_started,
    script,
    walkthrough,
)

README_VAULT = "localhost:8002"  # the vault's port in the README, pointed at the test's
BANNER_TIMEOUT_S = 60
WALKTHROUGH_TIMEOUT_S = 90
# the banner line a user copies the key from (see `kassa dev`)
SECRET_KEY = re.compile(r"(?:secret key:\s*|export SK=)(sk_test_\w+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Dev:
    api: str  # host:port
    vault: str  # host:port
    secret_key: str
    env: dict[str, str]  # what a second terminal in the same checkout has
    cwd: Path
    log: Path


def _user_environment() -> dict[str, str]:
    """Ours without any KASSA_* setting, so `kassa dev` starts as on a fresh machine; the
    project's bin/ first, as after `source .venv/bin/activate`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KASSA_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    return env


@contextmanager
def _database() -> Iterator[dict[str, str]]:
    """KASSA_DATABASE_URL for a throw-away database on the test server when there is one
    (fast); otherwise nothing, and `kassa dev` starts its own embedded PostgreSQL."""
    server = os.environ.get("KASSA_TEST_DATABASE_URL")
    if not server:
        yield {}
        return
    name = f"kassa_readme_{uuid.uuid4().hex[:10]}"
    admin = with_database(server, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"KASSA_DATABASE_URL": with_database(server, name)}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _stop(proc: subprocess.Popen[bytes], home: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # Ctrl-C, as the README says
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    pgdata = home / "pgdata"
    if (pgdata / "postmaster.pid").exists():  # never leave a server behind
        from kassa.db.embedded import EmbeddedPostgres

        EmbeddedPostgres(pgdata).stop(force=True)


@pytest.fixture
def kassa_dev(tmp_path: Path) -> Iterator[Dev]:
    """`kassa dev` in an empty directory, on free ports, as a user would start it."""
    cwd = tmp_path / "checkout"
    home = cwd / ".kassa"
    cwd.mkdir()
    api_port, sim_port, vault_port = free_port(), free_port(), free_port()
    log = tmp_path / "kassa-dev.log"
    with _database() as db_env:
        env = {**_user_environment(), **db_env}
        server_env = {**env, "KASSA_PORT": str(api_port), "KASSA_SIMULATOR_PORT": str(sim_port),
                      "KASSA_VAULT_PORT": str(vault_port),
                      "KASSA_VAULT_FORWARD_PORT": str(free_port())}
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "kassa.cli", "dev"], cwd=cwd,
                                    env=server_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + BANNER_TIMEOUT_S
            while "export SK=" not in log.read_text(errors="replace"):  # the banner's end
                assert proc.poll() is None, f"kassa dev exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"no banner:\n{log.read_text()}"
                time.sleep(0.1)
            key = SECRET_KEY.search(log.read_text())
            assert key, f"the banner shows no secret key:\n{log.read_text()}"
            yield Dev(api=f"127.0.0.1:{api_port}", vault=f"127.0.0.1:{vault_port}",
                      secret_key=key.group(1), env=env, cwd=cwd, log=log)
        finally:
            _stop(proc, home)


def test_the_walkthrough_runs_as_written(kassa_dev: Dev) -> None:
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    assert not missing, f"the walk-through needs {missing}: apt-get install {' '.join(missing)}"
    blocks = walkthrough(README.read_text())

    # the key the banner shows works (the README tells a user to paste it)
    balance = httpx.get(f"http://{kassa_dev.api}/v1/balance",
                        auth=(kassa_dev.secret_key, ""), timeout=10)
    assert balance.status_code == 200, balance.text

    started = time.monotonic()
    try:
        steps = script(blocks, api=kassa_dev.api).replace(README_VAULT, kassa_dev.vault)
        run = subprocess.run(["bash", "-c", steps],
                             cwd=kassa_dev.cwd, env=kassa_dev.env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=WALKTHROUGH_TIMEOUT_S)
        output, returncode = run.stdout.decode(errors="replace"), run.returncode
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode(errors="replace")
        returncode = None
    elapsed = time.monotonic() - started
    where = last_block_started(output)
    assert returncode == 0, (
        f"the walk-through stopped in {where} "
        f"({'timed out' if returncode is None else f'exit {returncode}'} after {elapsed:.0f} s)"
        f"\n--- output ---\n{output[-6000:]}\n--- kassa dev ---\n"
        f"{kassa_dev.log.read_text(errors='replace')[-3000:]}")
    assert output.rstrip().endswith(DONE), output[-2000:]
    # key results, beyond each command's own check
    assert "ledger OK" in output
    assert re.search(r"^pi_\w+ succeeded$", output, re.MULTILINE), "the Stripe SDK's payment"


def test_every_api_example_is_in_the_walkthrough() -> None:
    """An example that talks to kassa but is not marked would escape the test."""
    blocks = fenced_blocks(README.read_text())
    # the kassa.js example is HTML: tests/e2e/test_checkout_browser.py runs it in chromium
    unmarked = [b.line for b in blocks if README_API in b.text and not b.in_walkthrough
                and b.tags != ("kassa-example",)]
    assert not unmarked, f"README.md lines {unmarked}: examples not marked `walkthrough`"
    marked = walkthrough(README.read_text())
    assert {b.language for b in marked} == {"sh", "python"}
    assert any("import stripe" in b.text for b in marked), "the Stripe SDK example runs too"


def test_every_python_example_is_valid_python() -> None:
    for block in fenced_blocks(README.read_text()):
        if block.language == "python":
            compile(block.text, f"README.md line {block.line}", "exec")


def test_readme_says_up_front_what_kassa_does_and_does_not_yet() -> None:
    text = README.read_text()
    section = re.search(r"^## What kassa does today, and what it does not yet\n(.*?)^## ",
                        text, re.MULTILINE | re.DOTALL)
    assert section, "the README opens with what kassa does today and what not yet"
    assert section.start() < text.index("## Two commands") < text.index("## Walk-through")
    today, _, not_yet = section.group(1).partition("Not yet:")
    assert "Today:" in today
    assert today.count("\n- ") >= 3 and not_yet.count("\n- ") >= 3


def test_readme_links_stay_inside_the_repository() -> None:
    text = README.read_text()
    for target in re.findall(r"\]\(([^)\s]+)[^)]*\)", text):  # [text](target)
        assert not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE), target
        path = (ROOT / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), target
    for host in re.findall(r"\b[a-z][a-z0-9+.-]*://(?:[^/\s@`'\")]+@)?([^/\s:`'\")]+)", text,
                           re.IGNORECASE):  # the host, after any user@
        assert host in ("localhost", "127.0.0.1"), f"a URL outside this machine: {host}"
    assert "../" not in text, "a path outside the repository"


def test_license_is_at_the_root_and_declared() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert "Apache License 2.0 (`LICENSE`)" in README.read_text()
