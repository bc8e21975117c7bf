"""Integration tests for kassa.db.embedded against a real PostgreSQL 18 from the wheel."""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kassa.db.embedded import (
    EmbeddedPostgres,
    default_data_dir,
    pgbench_path,
    psql_path,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("embedded-pg")
    if os.geteuid() == 0:
        # pytest makes its tmp dirs 0700; the server runs as a non-root user that must be
        # able to walk down to the data dir. (EmbeddedPostgres also does this itself.)
        for p in (base, *base.parents):
            p.chmod(stat.S_IMODE(p.stat().st_mode) | stat.S_IXOTH)
    return base / "pgdata"


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(data_dir, fast=True)
    t0 = time.perf_counter()
    pg.start()
    print(f"cold start (initdb + start): {time.perf_counter() - t0:.2f}s")
    yield pg
    pg.stop()


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
    pid_before = (data_dir / "postmaster.pid").read_text().split()[0]
    with EmbeddedPostgres(data_dir, fast=True) as other:
        assert other.dsn == server.dsn
        assert (data_dir / "postmaster.pid").read_text().split()[0] == pid_before
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


def test_stop_is_idempotent(tmp_path_factory: pytest.TempPathFactory) -> None:
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("idem") / "pgdata", fast=True)
    pg.stop()  # never started: no-op
    pg.start()
    pg.start()  # finds its own server again and still owns it
    pg.stop()
    assert not pg.is_running()
    pg.stop()
    assert not pg.is_running()


def test_stale_postmaster_pid_is_removed(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("stale") / "pgdata"
    with EmbeddedPostgres(data_dir, fast=True):
        pass
    # A pid that can't exist (above pid_max) stands in for a server that died in a crash.
    pid_file = data_dir / "postmaster.pid"
    pid_file.write_text(f"99999999\n{data_dir}\n0\n1\n\n127.0.0.1\n\nready\n")
    with EmbeddedPostgres(data_dir, fast=True) as pg:
        assert pg.is_running()
        assert pid_file.read_text().split()[0] != "99999999"


def test_start_failure_reports_server_log(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("broken") / "pgdata"
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


def test_taken_port_is_replaced(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("port") / "pgdata"
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
