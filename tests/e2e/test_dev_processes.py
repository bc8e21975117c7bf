"""`kassa dev` as a process tree: it starts in a directory where kassa never ran, in a private
directory (as root, and as a plain user) without changing any permission outside the project,
and every way of stopping it (Ctrl-C, SIGTERM, a closed terminal, a crash and the next start)
leaves no PostgreSQL behind."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import kassa
from kassa.db.embedded import EmbeddedPostgres
from tests.support.databases import empty_database
from tests.support.processes import DevProcess

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dev_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KASSA_") and not k.startswith("PYTEST")}
    return {**env, "KASSA_PORT": str(_free_port()), "KASSA_SIMULATOR_PORT": str(_free_port()),
            "KASSA_VAULT_PORT": str(_free_port()), "KASSA_VAULT_FORWARD_PORT": str(_free_port()),
            **extra}


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _gone_within(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _modes(path: Path) -> dict[Path, int]:
    return {p: p.stat().st_mode for p in (path, *path.parents)}


def _pay(env: dict[str, str], key: str) -> None:
    r = httpx.post(f"http://127.0.0.1:{env['KASSA_PORT']}/v1/payment_intents", auth=(key, ""),
                   data={"amount": "2000", "currency": "usd", "payment_method": "pm_card_visa",
                         "confirm": "true"}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text


def test_dev_starts_with_its_own_database_where_kassa_never_ran(server_url, tmp_path):
    fresh = tmp_path / "never ran here"
    fresh.mkdir()
    with empty_database(server_url, "kassa_dev") as url:
        env = dev_env(KASSA_DATABASE_URL=url)
        dev = DevProcess(env, fresh)
        try:
            key = dev.wait_for_banner()
            assert key.startswith("sk_test_")
            assert dev.stdout[-1] == f"export SK={key}"  # the banner ends ready to paste
            assert any("CLI:" in line and "kassa --help" in line for line in dev.stdout)
            _pay(env, key)
            dev.signal_group(signal.SIGTERM)
            assert dev.wait() == 0, dev.output()
        finally:
            dev.stop()
    assert (fresh / ".kassa" / "dev-merchant.json").exists()
    assert stat.S_IMODE((fresh / ".kassa" / "dev-merchant.json").stat().st_mode) == 0o600


def test_a_restarted_kassa_dev_can_still_capture_what_it_authorised(server_url, tmp_path):
    """Issue 7 item 5: the simulator keeps its books across restarts, as a PSP does; it
    used to forget its authorisations, so every held payment was stuck (capture 404)."""
    with empty_database(server_url, "kassa_dev") as url:
        env = dev_env(KASSA_DATABASE_URL=url)
        base = f"http://127.0.0.1:{env['KASSA_PORT']}"
        dev = DevProcess(env, tmp_path)
        try:
            key = dev.wait_for_banner()
            r = httpx.post(f"{base}/v1/payment_intents", auth=(key, ""), timeout=30, data={
                "amount": "3000", "currency": "usd", "payment_method": "pm_card_visa",
                "capture_method": "manual", "confirm": "true"})
            assert r.json()["status"] == "requires_capture", r.text
            pi = r.json()["id"]
            dev.signal_group(signal.SIGTERM)
            assert dev.wait() == 0, dev.output()
        finally:
            dev.stop()
        assert (tmp_path / ".kassa" / "simulator.sqlite3").exists()
        dev = DevProcess(env, tmp_path)
        try:
            key = dev.wait_for_banner()
            r = httpx.post(f"{base}/v1/payment_intents/{pi}/capture", auth=(key, ""),
                           timeout=30)
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
            sim = httpx.get(f"http://127.0.0.1:{env['KASSA_SIMULATOR_PORT']}"
                            "/_sim/authorizations", timeout=10).json()
            assert [a["amount_captured"] for a in sim] == [3000]
            dev.signal_group(signal.SIGTERM)
            assert dev.wait() == 0, dev.output()
        finally:
            dev.stop()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("dev-home") / "home"
    yield path
    EmbeddedPostgres(path / "pgdata").destroy()


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT],
                         ids=["SIGHUP", "SIGTERM", "SIGINT"])
def test_every_stop_signal_stops_the_embedded_server_too(home, sig):
    dev = DevProcess(dev_env(KASSA_HOME=str(home)), home.parent)
    try:
        dev.wait_for_banner()
        postmaster = _postmaster_pid((home / "pgdata").resolve())
        assert _alive(postmaster)
        dev.signal_group(sig)  # the whole group, as a terminal does
        dev.wait()
        assert _gone_within(postmaster), dev.output()
        assert "kassa: stopped" in dev.stderr, dev.output()
    finally:
        dev.stop()


def test_a_server_left_by_a_crash_is_adopted_then_stopped_at_exit(home):
    env = dev_env(KASSA_HOME=str(home))
    crashed = DevProcess(env, home.parent)
    try:
        crashed.wait_for_banner()
        postmaster = _postmaster_pid((home / "pgdata").resolve())
        crashed.signal_group(signal.SIGKILL)
        crashed.wait()
    finally:
        crashed.stop()
    assert _alive(postmaster)  # what a SIGKILL leaves behind
    env = dev_env(KASSA_HOME=str(home))
    dev = DevProcess(env, home.parent)
    try:
        key = dev.wait_for_banner()
        notices = [line for line in dev.stderr if "adopted" in line]
        assert len(notices) == 1 and f"pid {postmaster}" in notices[0], dev.output()
        _pay(env, key)
        dev.signal_group(signal.SIGTERM)
        assert dev.wait() == 0, dev.output()
        assert _gone_within(postmaster), dev.output()
    finally:
        dev.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="the root case: run the suite as root")
def test_root_in_a_private_directory_changes_no_permission_outside_the_project():
    private = Path(tempfile.mkdtemp())  # 0700, root's
    project = private / "my project" / "kassa clone"
    project.mkdir(parents=True)
    before = _modes(project.parent)
    try:
        env = dev_env()
        dev = DevProcess(env, project)
        try:
            key = dev.wait_for_banner()
            _pay(env, key)
            where = [line for line in dev.stderr if "files are in" in line]
            assert len(where) == 1, dev.output()
            data_dir = (project / ".kassa" / "pgdata").resolve()
            assert str(data_dir) in where[0]
            postmaster = _postmaster_pid(data_dir)
            dev.signal_group(signal.SIGHUP)
            dev.wait()
            assert _gone_within(postmaster), dev.output()
        finally:
            dev.stop()
        assert _modes(project.parent) == before
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    finally:
        EmbeddedPostgres(project / ".kassa" / "pgdata").destroy()
        shutil.rmtree(private)


@pytest.fixture
def plain_user() -> Iterator[pwd.struct_passwd]:
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to make a throw-away user")
    name = f"kassa-t-{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def _user_can(user: pwd.struct_passwd, *args: str) -> bool:
    try:
        return subprocess.run(args, user=user.pw_uid, group=user.pw_gid, extra_groups=[],
                              capture_output=True, check=False, cwd="/").returncode == 0
    except PermissionError:  # the interpreter itself is out of reach
        return False


def _python_for(user: pwd.struct_passwd, into: Path) -> tuple[str, dict[str, str]]:
    """An interpreter `user` may run with kassa and its dependencies importable: ours when it
    can, else (ours, or this checkout, lives in a private directory: pyenv under /root, a
    clone in `mktemp -d`) the system's of the same version with hard-linked (or copied)
    twins of kassa's source and our site-packages in `into`, a directory of the user's."""
    if _user_can(user, sys.executable, "-c", "import kassa.cli"):
        return sys.executable, {}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/local/bin:/usr/bin")
    if system is None or not _user_can(user, system, "-c", "pass"):
        pytest.skip(f"no {version} that {user.pw_name} may run")

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    sources = [Path(kassa.__file__).resolve().parent.parent,
               *(Path(p) for p in sys.path if p.startswith(sys.prefix) and p.endswith(
                   "site-packages"))]
    paths = []
    for i, source in enumerate(sources):
        twin = into / "python" / str(i)
        shutil.copytree(source, twin, symlinks=True, copy_function=link_or_copy,
                        ignore=shutil.ignore_patterns("__pycache__"))
        paths.append(str(twin))
    return system, {"PYTHONPATH": os.pathsep.join(paths), "PYTHONDONTWRITEBYTECODE": "1"}


def test_a_plain_user_in_a_private_directory(plain_user):
    private = Path(tempfile.mkdtemp())
    os.chown(private, plain_user.pw_uid, plain_user.pw_gid)  # the user's own 0700 dir
    project = private / "my project"
    project.mkdir()
    os.chown(project, plain_user.pw_uid, plain_user.pw_gid)
    before = _modes(private)
    try:
        python, path = _python_for(plain_user, private)
        env = dev_env(HOME=str(private), **path)
        dev = DevProcess(env, project, user=plain_user.pw_uid, python=python)
        try:
            key = dev.wait_for_banner()
            _pay(env, key)
            data_dir = project / ".kassa" / "pgdata"
            assert not data_dir.is_symlink()  # its own files, where it asked for them
            assert data_dir.stat().st_uid == plain_user.pw_uid
            postmaster = _postmaster_pid(data_dir)
            dev.signal_group(signal.SIGINT)
            dev.wait()
            assert _gone_within(postmaster), dev.output()
        finally:
            dev.stop()
        assert _modes(private) == before
    finally:
        shutil.rmtree(private)


@pytest.mark.parametrize("moment", ["initdb", "server start"])
def test_a_stop_signal_during_start_up_leaves_no_server(tmp_path, moment):
    home = tmp_path / "home"
    env = {**dev_env(KASSA_HOME=str(home)), "KASSA_DATABASE_URL": ""}
    proc = subprocess.Popen([sys.executable, "-m", "kassa.cli", "migrate"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        data_dir = home / "pgdata"
        marker = "PG_VERSION" if moment == "initdb" else "postmaster.pid"
        deadline = time.monotonic() + 60
        while not (data_dir / marker).exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0, err  # interrupted, not finished
        pid_file = data_dir.resolve() / "postmaster.pid"
        if pid_file.exists():
            assert _gone_within(_postmaster_pid(data_dir.resolve())), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        EmbeddedPostgres(home / "pgdata").destroy()
