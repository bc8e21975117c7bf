"""The `kassa` CLI against a real database (KASSA_DATABASE_URL): commands, migrations only
where asked for (under a lock), and start-up errors as two lines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from alembic.script import ScriptDirectory

from kassa.db.embedded import EmbeddedPostgres
from kassa.db.migrate import MIGRATION_LOCK, alembic_config, upgrade
from tests.support.databases import empty_database, migrated_database


def kassa(*args: str, dsn: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    if dsn is not None:
        full["KASSA_DATABASE_URL"] = dsn
    return subprocess.run([sys.executable, "-m", "kassa.cli", *args], capture_output=True,
                          text=True, timeout=120, env=full)


HEAD = ScriptDirectory.from_config(alembic_config("postgresql://unused/x")).get_current_head()


@pytest.fixture
def private_dsn(server_url):
    with migrated_database(server_url, "kassa_cli") as url:
        yield url


@pytest.fixture
def empty_dsn(server_url):
    with empty_database(server_url, "kassa_cli") as url:
        yield url


def test_merchants_create_prints_a_working_key(private_dsn):
    out = kassa("merchants", "create", "Acme Books", dsn=private_dsn)
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert created["merchant_id"].startswith("acct_")
    assert created["secret_key"].startswith("sk_test_")
    with psycopg.connect(private_dsn) as conn:
        assert conn.execute("SELECT name FROM merchants WHERE id = %s",
                            (created["merchant_id"],)).fetchone() == ("Acme Books",)
        # only the hash is stored
        assert conn.execute("SELECT count(*) FROM api_keys WHERE key_hash::text LIKE %s",
                            (f"%{created['secret_key']}%",)).fetchone() == (0,)


def test_ledger_verify_passes_then_reports_and_exits_1(private_dsn):
    ok = kassa("ledger", "verify", dsn=private_dsn)
    assert ok.returncode == 0, ok.stderr
    assert "ledger OK" in ok.stdout
    with psycopg.connect(private_dsn, autocommit=True) as conn:
        # a payment claiming money the ledger never received (the DB allows this row)
        conn.execute(
            "INSERT INTO payment_intents (id, merchant_id, amount, currency, status,"
            " capture_method, amount_received, created) VALUES ('pi_bad', 'acct_x', 500,"
            " 'usd', 'succeeded', 'automatic', 500, 0)")
    bad = kassa("ledger", "verify", dsn=private_dsn)
    assert bad.returncode == 1
    assert "pi_bad" in bad.stderr and "FAIL" in bad.stderr


def test_migrate_is_idempotent(private_dsn):
    out = kassa("migrate", dsn=private_dsn)
    assert out.returncode == 0, out.stderr


def _has_schema(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass('payment_intents')").fetchone() != (None,)


@pytest.mark.parametrize("args", [["api"], ["worker"], ["merchants", "create", "X"],
                                  ["ledger", "verify"], ["relay", "status"],
                                  ["webhooks", "list-dead"]])
def test_only_migrate_and_dev_migrate(empty_dsn, args):
    out = kassa(*args, dsn=empty_dsn, KASSA_PORT=str(_free_port()))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2, out.stderr
    assert "schema is behind" in lines[0] and "run `kassa migrate`" in lines[1]
    assert not _has_schema(empty_dsn)


def test_a_schema_one_migration_behind_is_refused(empty_dsn):
    upgrade(empty_dsn, "0005")
    out = kassa("ledger", "verify", dsn=empty_dsn)
    assert out.returncode == 2
    assert "at: 0005" in out.stderr and HEAD in out.stderr
    assert kassa("migrate", dsn=empty_dsn).returncode == 0
    assert kassa("ledger", "verify", dsn=empty_dsn).returncode == 0


def test_two_migrations_at_once_queue_on_the_lock_and_both_succeed(empty_dsn):
    with psycopg.connect(empty_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATION_LOCK)
        env = {**os.environ, "KASSA_DATABASE_URL": empty_dsn}
        procs = [subprocess.Popen([sys.executable, "-m", "kassa.cli", "migrate"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        deadline = time.monotonic() + 60
        while _lock_waiters(holder) < 2:  # both are queued behind the lock we hold
            assert time.monotonic() < deadline, "the migrations did not wait for the lock"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATION_LOCK)
        results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert all("waiting for another migration" in err for _, err in results)
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]


def test_two_migrations_racing_without_help_both_succeed(empty_dsn):
    env = {**os.environ, "KASSA_DATABASE_URL": empty_dsn}
    start = threading.Barrier(2)
    results: list[subprocess.CompletedProcess[str]] = []

    def run() -> None:
        start.wait()
        results.append(subprocess.run([sys.executable, "-m", "kassa.cli", "migrate"], env=env,
                                      capture_output=True, text=True, timeout=120))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]


def _lock_waiters(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                       " AND classid = %s AND objid = %s AND NOT granted",
                       MIGRATION_LOCK).fetchone()
    return int(row[0]) if row else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("setting", ["KASSA_PORT", "KASSA_SIMULATOR_PORT", "KASSA_VAULT_PORT",
                                     "KASSA_VAULT_FORWARD_PORT"])
def test_a_busy_port_is_one_line_naming_the_setting_and_exit_2(private_dsn, tmp_path, setting):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        ports = {"KASSA_PORT": str(_free_port()), "KASSA_SIMULATOR_PORT": str(_free_port()),
                 "KASSA_VAULT_PORT": str(_free_port()),
                 "KASSA_VAULT_FORWARD_PORT": str(_free_port()), setting: str(port),
                 "KASSA_HOME": str(tmp_path / "home")}
        out = kassa("dev", dsn=private_dsn, **ports)
    assert out.returncode == 2, out.stderr
    cause, remedy = out.stderr.strip().splitlines()
    assert cause == f"kassa: port {port} on 127.0.0.1 is already in use ({setting})"
    assert setting in remedy
    assert "Traceback" not in out.stderr


def test_a_busy_embedded_database_port_names_its_setting(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        try:
            out = kassa("migrate", dsn=None, KASSA_HOME=str(tmp_path / "home"),
                        KASSA_EMBEDDED_DB_PORT=str(port), KASSA_DATABASE_URL="")
        finally:
            EmbeddedPostgres(tmp_path / "home" / "pgdata").destroy()
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[0] == (
        f"kassa: port {port} on 127.0.0.1 is already in use (KASSA_EMBEDDED_DB_PORT)")


def test_start_up_errors_are_two_lines_and_tracebacks_only_with_debug():
    unreachable = f"postgresql://postgres@127.0.0.1:{_free_port()}/kassa"
    out = kassa("api", dsn=unreachable, KASSA_PORT=str(_free_port()))
    assert out.returncode == 2
    cause, remedy = out.stderr.strip().splitlines()
    assert cause.startswith("kassa: cannot connect to the database")
    assert "KASSA_DATABASE_URL" in remedy
    debug = kassa("api", "--debug", dsn=unreachable, KASSA_PORT=str(_free_port()))
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    bad = kassa("migrate", dsn=unreachable, KASSA_PORT="eighty")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "kassa: invalid setting KASSA_PORT: Input should be a valid integer, unable to parse "
        "string as an integer", "kassa: fix or unset KASSA_PORT"]
    url = kassa("ledger", "verify", dsn="not a url")
    assert url.returncode == 2
    cause, remedy = url.stderr.strip().splitlines()
    assert cause.startswith("kassa: the database URL is not valid")
    assert "KASSA_DATABASE_URL" in remedy


def test_attempts_list_stuck_shows_what_needs_attention_and_exits_1(private_dsn):
    out = kassa("attempts", "list", "--stuck", dsn=private_dsn)
    assert out.returncode == 0, out.stderr
    assert "0 attempt(s) need attention" in out.stdout
    with psycopg.connect(private_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO payment_intents (id, merchant_id, amount, currency, status,"
            " capture_method, created) VALUES ('pi_stuck', 'acct_x', 700, 'usd',"
            " 'processing', 'automatic', 0)")
        conn.execute(
            "INSERT INTO attempts (id, merchant_id, payment_intent_id, operation, psp,"
            " status, amount, currency, tries, error, next_check_at) VALUES ('ch_stuck',"
            " 'acct_x', 'pi_stuck', 'authorize', 'simulator', 'needs_attention', 700, 'usd',"
            " 20, '{\"code\": \"recovery_exhausted\"}', now() + interval '1 hour')")
    stuck = kassa("attempts", "list", "--stuck", dsn=private_dsn)
    assert stuck.returncode == 1
    assert "ch_stuck  authorize  needs_attention  pi_stuck  simulator  700 usd  tries=20" \
        in stuck.stdout
    assert "recovery_exhausted" in stuck.stdout
    listed = kassa("attempts", "list", "--json", dsn=private_dsn)
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == ["ch_stuck"]


@pytest.mark.parametrize("command", [["api"], ["vault"]])
def test_kassa_api_and_vault_refuse_to_start_without_a_checkout_token_secret(command, tmp_path):
    """Refused before anything is bound or connected (the database URL leads nowhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KASSA_")}
    env.update({"KASSA_ENV": "production", "KASSA_VAULT_FORWARD_SECRET": "f" * 32,
                "KASSA_HOME": str(tmp_path), "KASSA_PORT": "0", "KASSA_VAULT_PORT": "0",
                "KASSA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x",
                "KASSA_VAULT_FORWARD_PORT": "0"})
    out = subprocess.run([sys.executable, "-m", "kassa.cli", *command], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    cause, remedy = out.stderr.strip().splitlines()
    assert cause == ("kassa: KASSA_CHECKOUT_TOKEN_SECRET is not set (the hosted checkout's "
                     "tokens are signed with it)")
    assert "KASSA_CHECKOUT_TOKEN_SECRET" in remedy and "Traceback" not in out.stderr
