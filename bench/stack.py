"""The system under test, started on loopback and torn down again: PostgreSQL, a fresh
migrated database, the PSP simulator, the API (and optionally the card vault) as subprocesses,
and N merchants.

Everything is registered on a ``contextlib.ExitStack`` so that an exception or Ctrl-C
stops what was started (and only that), in reverse order.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 10.0


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(dsn: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


# ------------------------------------------------------------------------ PostgreSQL


def start_server(stack: contextlib.ExitStack, workdir: Path) -> str:
    """KASSA_BENCH_DATABASE_URL, or a durable (fsync on) embedded server in ``workdir``.
    Returns a URL to the server's maintenance database."""
    url = os.environ.get("KASSA_BENCH_DATABASE_URL")
    if url:
        log(f"using the server of KASSA_BENCH_DATABASE_URL ({urlsplit(url).hostname})")
        return url
    from kassa.db.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(workdir / "pgdata", database="postgres", fast=False)
    log("starting embedded PostgreSQL (durable settings)")
    stack.callback(pg.stop)
    return pg.start()


def create_database(stack: contextlib.ExitStack, server_url: str, prefix: str) -> str:
    """A new empty database, dropped again on exit; returns its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    stack.callback(drop_database, server_url, name)
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with contextlib.suppress(psycopg.Error), psycopg.connect(server_url, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def migrated_database(stack: contextlib.ExitStack, server_url: str, prefix: str) -> str:
    from kassa.db.migrate import upgrade

    dsn = create_database(stack, server_url, prefix)
    upgrade(dsn)
    return dsn


def analyze(dsn: str, *, vacuum: bool = False) -> None:
    """ANALYZE (plans made on empty tables are terrible); VACUUM too after bulk loads so
    autovacuum does not kick in during a measurement; then CHECKPOINT for the same reason."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)" if vacuum else "ANALYZE")
        with contextlib.suppress(psycopg.Error):  # needs pg_checkpoint or superuser
            conn.execute("CHECKPOINT")


def commits(dsn: str) -> int:
    """Transactions committed in the database so far (pg_stat_database; the counters are
    flushed by each backend within a second, so read this after the load has settled)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute("SELECT xact_commit FROM pg_stat_database"
                           " WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def server_facts(dsn: str) -> dict[str, str | int | None]:
    """Version and the settings that decide write throughput; the postmaster pid if local."""
    names = ("fsync", "synchronous_commit", "shared_buffers", "full_page_writes",
             "wal_sync_method", "max_wal_size", "max_connections")
    with psycopg.connect(dsn, autocommit=True) as conn:
        facts: dict[str, str | int | None] = {
            "version": conn.execute("SHOW server_version").fetchone()[0]}  # type: ignore[index]
        for name in names:
            facts[name] = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))
                                       ).fetchone()[0]  # type: ignore[index]
        facts["backend_pid"] = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    return facts


# ------------------------------------------------------------------------ subprocesses


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def spawn(stack: contextlib.ExitStack, name: str, args: list[str], env: dict[str, str],
          workdir: Path) -> Service:
    """Start ``args`` in its own session (so Ctrl-C reaches only us, and we stop its whole
    process group, e.g. uvicorn's workers), logging to ``workdir/name.log``."""
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                start_new_session=True)
    service = Service(name, proc, log_path)
    stack.callback(stop_service, service)
    return service


def stop_service(service: Service) -> None:
    stop_process(service.proc)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process group of a child started with start_new_session; then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_healthy(service: Service, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.proc.returncode}:\n"
                               f"{service.log_tail()}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        time.sleep(0.2)
    raise RuntimeError(f"{service.name} not healthy at {url} after {timeout}s:\n"
                       f"{service.log_tail()}")


def python_env() -> dict[str, str]:
    """Our environment without KASSA_* (a developer's settings must not leak in), with
    this repository importable (for ``python -m bench.load``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KASSA_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def base_env(workdir: Path) -> dict[str, str]:
    return python_env() | {"KASSA_HOME": str(workdir / "kassa-home")}


def start_simulator(stack: contextlib.ExitStack, workdir: Path) -> tuple[Service, str]:
    port = free_port()
    service = spawn(stack, "simulator",
                    [sys.executable, "-m", "kassa.psp.simulator.server", "--port", str(port),
                     "--latency-ms", "0"],
                    base_env(workdir), workdir)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(service, url + "/healthz")
    return service, url


def start_api(stack: contextlib.ExitStack, workdir: Path, *, dsn: str, simulator_url: str,
              workers: int, pool_size: int | None, extra_env: dict[str, str] | None = None
              ) -> tuple[Service, str]:
    port = free_port()
    env = base_env(workdir) | {
        "KASSA_DATABASE_URL": dsn, "KASSA_SIMULATOR_URL": simulator_url,
        "KASSA_PORT": str(port), "KASSA_API_WORKERS": str(workers)}
    if pool_size:
        env["KASSA_DB_POOL_SIZE"] = str(pool_size)
    env |= extra_env or {}
    service = spawn(stack, "api", [sys.executable, "-m", "kassa.cli", "api"], env, workdir)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(service, url + "/healthz")
    return service, url


# ------------------------------------------------------------------------ merchants


def start_vault(stack: contextlib.ExitStack, workdir: Path, *, dsn: str, simulator_url: str
                ) -> tuple[Service, str, dict[str, str]]:
    """``kassa vault`` with a fresh key-encryption key, forwarding to the simulator only;
    returns the service, its URL and the settings the API needs to reach it."""
    port, forward_port = free_port(), free_port()
    secret = secrets.token_hex(32)
    reach = {"KASSA_VAULT_URL": f"http://127.0.0.1:{port}", "KASSA_VAULT_PORT": str(port),
             "KASSA_VAULT_FORWARD_PORT": str(forward_port),
             "KASSA_VAULT_FORWARD_SECRET": secret,
             # the checkout's tokens have a secret of their own (shared by API and vault)
             "KASSA_CHECKOUT_TOKEN_SECRET": secrets.token_hex(32)}
    env = base_env(workdir) | reach | {
        "KASSA_DATABASE_URL": dsn, "KASSA_VAULT_FORWARD_HOSTS": simulator_url,
        "KASSA_VAULT_KEKS": f"v1:{base64.b64encode(secrets.token_bytes(32)).decode()}"}
    service = spawn(stack, "vault", [sys.executable, "-m", "kassa.cli", "vault"], env, workdir)
    wait_healthy(service, reach["KASSA_VAULT_URL"] + "/healthz")
    return service, reach["KASSA_VAULT_URL"], reach


async def _create_merchants(dsn: str, simulator_url: str, n: int) -> list[dict[str, str]]:
    from kassa import bootstrap
    from kassa.config import Settings
    from kassa.services.merchants import create_merchant

    settings = Settings(database_url=dsn, simulator_url=simulator_url)
    kassa, close = await bootstrap.build(settings, dsn, pool_size=8)
    try:
        made = await asyncio.gather(*(create_merchant(kassa, name=f"Bench merchant {i}")
                                      for i in range(n)))
    finally:
        await close()
    return made


def create_merchants(dsn: str, simulator_url: str, n: int) -> list[dict[str, str]]:
    """N merchants through the service layer (their ids and keys)."""
    return asyncio.run(_create_merchants(dsn, simulator_url, n))


async def _verify_ledger(dsn: str) -> dict[str, Any]:
    from kassa.db.pool import create_pool
    from kassa.ledger.verify import verify

    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        report = await verify(pool)
    finally:
        await pool.close()
    return {"ok": report.ok, "checked": report.checked, "problems": report.problems[:5]}


def verify_ledger(dsn: str) -> dict[str, Any]:
    """`kassa ledger verify` on what the run wrote: a sanity check, not a measurement."""
    return asyncio.run(_verify_ledger(dsn))


def save_cards(st: Stack) -> list[str]:
    """For each merchant, a card tokenised at the vault and attached to a new customer (a
    returning customer's saved card, reusable); the payment parameters naming both."""
    import httpx

    saved = []
    with httpx.Client(timeout=30.0) as c:
        for sk, pk in zip(st.keys, st.publishable, strict=True):
            pm = c.post(st.vault_url + "/v1/payment_methods", auth=(pk, ""), data={
                "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
                "card[exp_year]": "2034", "card[cvc]": "123"}).raise_for_status().json()["id"]
            cus = c.post(st.api_url + "/v1/customers",
                         auth=(sk, "")).raise_for_status().json()["id"]
            c.post(f"{st.api_url}/v1/payment_methods/{pm}/attach", auth=(sk, ""),
                   data={"customer": cus}).raise_for_status()
            saved.append(f"customer={cus}&payment_method={pm}")
    return saved


# ------------------------------------------------------------------------ the whole stack


@dataclass
class Stack:
    workdir: Path
    server_url: str
    dsn: str
    simulator_url: str = ""
    api_url: str = ""
    api: Service | None = None
    simulator: Service | None = None
    keys: list[str] = field(default_factory=list)  # the merchants' secret keys
    publishable: list[str] = field(default_factory=list)  # theirs, in the same order
    vault_url: str = ""
    vault: Service | None = None
    saved: list[str] = field(default_factory=list)  # with a vault: a saved card per merchant


def workdir(stack: contextlib.ExitStack) -> Path:
    path = Path(tempfile.mkdtemp(prefix="kassa-bench-", dir="/tmp"))
    stack.callback(shutil.rmtree, path, ignore_errors=True)
    return path


def build(stack: contextlib.ExitStack, *, merchants: int, api_workers: int,
          pool_size: int | None, api_env: dict[str, str] | None = None,
          vault: bool = False) -> Stack:
    """Server, fresh database, migrations, simulator, API and merchants (not yet ANALYZEd);
    with ``vault``, the card vault too, and the API forwarding card data through it."""
    wd = workdir(stack)
    server_url = start_server(stack, wd)
    dsn = migrated_database(stack, server_url, "kassa_bench")
    log(f"database {urlsplit(dsn).path.lstrip('/')} migrated")
    st = Stack(wd, server_url, dsn)
    st.simulator, st.simulator_url = start_simulator(stack, wd)
    made = create_merchants(dsn, st.simulator_url, merchants)
    st.keys = [m["secret_key"] for m in made]
    st.publishable = [m["publishable_key"] for m in made]
    log(f"{len(st.keys)} merchants created")
    if vault:
        st.vault, st.vault_url, reach = start_vault(stack, wd, dsn=dsn,
                                                    simulator_url=st.simulator_url)
        api_env = (api_env or {}) | reach
        log(f"vault healthy at {st.vault_url}")
    st.api, st.api_url = start_api(stack, wd, dsn=dsn, simulator_url=st.simulator_url,
                                   workers=api_workers, pool_size=pool_size,
                                   extra_env=api_env)
    log(f"API ({api_workers} worker(s)) healthy at {st.api_url}")
    if vault:
        st.saved = save_cards(st)
        log(f"{len(st.saved)} cards saved to customers")
    return st

