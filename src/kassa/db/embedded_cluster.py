"""The files of an embedded PostgreSQL cluster that kassa writes: initdb's options, the one
include line in postgresql.conf, kassa.conf (rewritten on every start: port and socket dir
may change) and the unix socket directory."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from kassa.db.embedded_processes import HOST
from kassa.db.embedded_root import OsUser

SUPERUSER = "postgres"
CONF_FILE = "kassa.conf"
INCLUDE_LINE = f"include_if_exists = '{CONF_FILE}'"

# sizeof(sockaddr_un.sun_path) on Linux is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


def initdb_args(bin_dir: Path, data_dir: Path, *, fast: bool) -> list[str]:
    """The initdb command line for a new cluster in ``data_dir`` (``fast``: no fsync)."""
    args = [
        str(bin_dir / "initdb"),
        f"--pgdata={data_dir}",
        f"--username={SUPERUSER}",
        "--auth=trust",
        "--encoding=UTF8",
        # The builtin provider gives Unicode-aware C.UTF-8 semantics without depending on
        # which OS locales are installed; lc_* = C keeps sorting and messages predictable.
        "--locale=C",
        "--locale-provider=builtin",
        "--builtin-locale=C.UTF-8",
        "--no-instructions",
    ]
    if fast:
        args.append("--no-sync")
    return args


def include_kassa_conf(data_dir: Path) -> None:
    """Make postgresql.conf read kassa.conf (appends the include line once)."""
    conf = data_dir / "postgresql.conf"
    if INCLUDE_LINE not in conf.read_text().splitlines():
        # Our settings live in their own file, rewritten on each start (port and socket dir
        # may change); postgresql.conf only gets this one include line, once.
        with conf.open("a") as f:
            f.write(f"\n# kassa: settings managed by kassa.db.embedded\n{INCLUDE_LINE}\n")


def write_conf(data_dir: Path, port: int, user: OsUser | None, *, fast: bool) -> None:
    """kassa.conf for a server on ``port`` (``fast``: fsync and full-page writes off)."""
    socket_dir = _socket_dir(data_dir, port, user)
    settings: dict[str, str | int] = {
        "listen_addresses": _conf_str(HOST),
        "port": port,
        "unix_socket_directories": _conf_str(_socket_dir_entry(socket_dir)),
        "max_connections": 200,
        "shared_buffers": _conf_str("256MB"),
        "max_wal_size": _conf_str("2GB"),
        # pg_ctl -l sends the server's stderr to data_dir/postgres.log; no collector, so
        # that one file holds everything, including failures before the collector would start.
        "logging_collector": "off",
        "log_destination": _conf_str("stderr"),
    }
    if fast:
        settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    text = "# Written by kassa.db.embedded on every start; edits here are overwritten.\n"
    text += "".join(f"{k} = {v}\n" for k, v in settings.items())
    path = data_dir / CONF_FILE
    path.write_text(text)
    if user is not None:
        os.chown(path, user.uid, user.gid)


def _socket_dir(data_dir: Path, port: int, user: OsUser | None) -> Path:
    # The unix socket is a convenience for psql/pgbench; the data dir is the natural home,
    # but deep paths overflow sun_path, so fall back to a short per-data-dir dir in /tmp.
    if _socket_path_ok(data_dir, port):
        return data_dir
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"kassa-pg-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    st = path.lstat()
    if user is not None and st.st_uid == os.geteuid():
        os.chown(path, user.uid, user.gid)
        st = path.lstat()
    expected_uid = user.uid if user is not None else os.geteuid()
    # /tmp is shared: refuse a dir someone else planted there.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != expected_uid:
        raise RuntimeError(f"socket dir {path} is not a directory owned by uid {expected_uid}")
    return path


def _socket_path_ok(directory: Path, port: int) -> bool:
    return len(os.fsencode(directory / f".s.PGSQL.{port}")) <= _MAX_SOCKET_PATH


def _socket_dir_entry(path: Path) -> str:
    # unix_socket_directories is a comma-separated list; quote entries with separators.
    s = str(path)
    return f'"{s}"' if any(c in s for c in ", ") else s


def _conf_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
