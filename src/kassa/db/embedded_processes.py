"""Which processes hold an embedded PostgreSQL data dir: its postmaster (postmaster.pid), the
kassa process that owns the running server (the owner file), and free ports on loopback."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Postmaster:
    """The parts of PGDATA/postmaster.pid we use."""

    pid: int
    port: int | None
    listen: str
    status: str


def read_postmaster_pid(data_dir: Path) -> Postmaster | None:
    """The parts of data_dir/postmaster.pid we use, or None when there is none."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if not lines or not lines[0].strip().isdigit():
        return None

    def line(i: int) -> str:
        return lines[i].strip() if len(lines) > i else ""

    port = line(3)
    return Postmaster(
        pid=int(line(0)),
        port=int(port) if port.isdigit() else None,
        listen=line(5),
        status=line(7),
    )


def process_start(pid: int) -> str | None:
    """The start time of process `pid` (field 22 of /proc/pid/stat), to tell a live owner
    from an unrelated process that got its pid later; None when unknown."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat_line.rsplit(")", 1)[1].split()[19]


def write_owner(path: Path) -> None:
    path.write_text(f"{os.getpid()} {process_start(os.getpid()) or ''}\n")


def owner_alive(path: Path) -> bool:
    try:
        pid_text, _, started = path.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = process_start(pid)
    return not started or now is None or now == started


def is_postgres_process(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    # After a reboot or crash the pid in a stale postmaster.pid may belong to an unrelated
    # process; on Linux, check it really is a postgres.
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: trust kill(0)
    except OSError:
        return True
    return comm in {"postgres", "postmaster"}


def port_is_free(port: int) -> bool:
    # SO_REUSEADDR like postgres itself uses: otherwise TIME_WAIT sockets left by the last
    # shutdown would make the previous port look taken and we'd hop ports on every restart.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])
