"""Failover and crash chaos across two PSPs, counted at both ends (issue 11's proof).

    python -m bench.chaos [--payments 2000] [--rate 60] [--concurrency 24] [--kills 5]
                          [--seed 1]

kassa's API and a worker process (recovery, inbound PSP events) run as subprocesses against
two simulator PSPs, ``simulator`` (A) and ``sim_b`` (B), under a ``priority`` routing
configuration (A, then B). Concurrent clients create+confirm payments (a share with manual
capture, then a capture and a partial refund), retrying every request with its
Idempotency-Key on any error, while:

- A refuses connections for a while (a gate in front of it stops listening and drops its
  connections): payments fail over to B, A's breaker opens and half-opens (watched on the
  API's /metrics);
- A times out after charging for a share of its calls (the simulator's ``timeout_rate``):
  those payments must be resolved at A by recovery, never sent to B;
- the API is SIGKILLed ``--kills`` times, a successor (started just before) taking over
  its address.

Then recovery settles and the run counts each simulator's own records (authorisations,
captures, refunds) against kassa's payments, attempts, refunds and ledger per PSP: no
payment charged at both, none charged twice at one, none lost, receivables equal to what
each PSP holds, ledger balanced (``kassa ledger verify``). It prints a table and a JSON
line, and exits 1 on any mismatch. PostgreSQL: the server of KASSA_BENCH_DATABASE_URL or a
durable embedded one, with a fresh database. tests/e2e/test_chaos_failover.py runs the same
code small.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import stack
from bench.stack import Service, log

A, B = "simulator", "sim_b"
CHARGED = ("authorized", "captured")  # a simulator authorisation that holds or took money
OPEN_ATTEMPTS = ("started", "unknown", "pending", "needs_attention")
RETRY_STATUSES = (409, 429, 500, 502, 503, 504)  # 409: the key's first request still runs


@dataclass(frozen=True)
class Plan:
    payments: int = 2000
    concurrency: int = 24
    rate: float = 60.0  # payments started per second (paced: the chaos timeline is in time)
    kills: int = 5
    manual_share: float = 0.3  # payments captured by a separate call, then partly refunded
    outage: tuple[float, float] = (0.10, 0.30)  # A refuses connections (share of payments)
    outage_min_s: float = 4.0  # and for at least this long: the breaker's cool-down passes
    timeouts: tuple[float, float] = (0.45, 0.85)  # A times out after charging
    timeout_rate: float = 0.15
    kill_window: tuple[float, float] = (0.2, 0.85)  # the API is killed evenly within
    kills_after_outage: bool = False  # no kill before A is back (a successor's breaker
    # starts closed with an empty window: a short run's outage may then never open it)
    settle_s: float = 120.0  # for recovery to settle every open attempt at the end
    seed: int = 1


# ------------------------------------------------------------------------ gates


class Gate:
    """A TCP proxy on loopback in front of a server (simulator A; the current API process),
    which can go down: it stops listening (new connections are refused, as by a host with
    nothing on the port) and drops the connections it carries (a request in flight is then
    an unknown outcome, not a refusal). A new connection goes to ``target_port`` as it is
    then."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = stack.free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port,
                                                  reuse_address=True)

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()

    async def close(self) -> None:
        """Down for good, once every connection's handler has ended."""
        await self.down()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        try:
            await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
        finally:
            self._writers -= {client_w, server_w}


# ------------------------------------------------------------------------ the world


@dataclass
class World:
    plan: Plan
    es: contextlib.ExitStack
    workdir: Path
    dsn: str
    env: dict[str, str]
    api_url: str
    sim_urls: dict[str, str]  # the simulators' own addresses (A's without the gate)
    gate: Gate
    api_gate: Gate  # the API's address, in front of whichever API process is current
    secret_key: str = ""
    merchant_id: str = ""
    worker_metrics_url: str = ""
    api: Service | None = None
    started: int = 0  # payments the clients began
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    done: int = 0  # payments the clients finished (the chaos timeline follows it)
    phase: str = "normal"
    began: float = field(default_factory=time.monotonic)
    kills: int = 0
    problems: list[str] = field(default_factory=list)
    client_statuses: Counter[str] = field(default_factory=Counter)
    first_answers: Counter[str] = field(default_factory=Counter)  # of create+confirm
    retries: Counter[str] = field(default_factory=Counter)
    breaker_seen: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    breaker_opened: int = 0  # the most times A's breaker opened within one API life
    a_back: asyncio.Event = field(default_factory=asyncio.Event)
    a_before_back: set[str] = field(default_factory=set)  # A's authorisations when it came back
    payments: list[str] = field(default_factory=list)
    phase_of: dict[str, str] = field(default_factory=dict)  # payment -> phase it began in
    answered_unknown: set[str] = field(default_factory=set)  # create+confirm said processing

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret_key}"}


def kassa_env(dsn: str, workdir: Path, gate: Gate, b_url: str) -> dict[str, str]:
    """Settings that make the chaos quick to resolve: a short PSP timeout (A's hung answers
    are unknown outcomes within 1.5 s), recovery looking after 2 s and backing off at most
    2 s (A's lookups fail while it is down), a breaker that decides on 10 calls."""
    return stack.base_env(workdir) | {
        "KASSA_DATABASE_URL": dsn, "KASSA_ENV": "test",
        "KASSA_SIMULATOR_URL": gate.url, "KASSA_SIMULATOR_ACCOUNTS": f"{B}={b_url}",
        "KASSA_PSP_TIMEOUT_SECONDS": "1.5", "KASSA_RECOVERY_AFTER_SECONDS": "2",
        "KASSA_RECOVERY_INTERVAL_SECONDS": "0.5", "KASSA_RECOVERY_BACKOFF_CAP_SECONDS": "2",
        "KASSA_RECOVERY_MAX_TRIES": "1000", "KASSA_PENDING_POLL_SECONDS": "1",
        "KASSA_IDEMPOTENCY_LOCK_TIMEOUT_SECONDS": "4", "KASSA_ROUTING_CACHE_SECONDS": "1",
        "KASSA_BREAKER_WINDOW_SECONDS": "10", "KASSA_BREAKER_MIN_VOLUME": "10",
        "KASSA_BREAKER_COOLDOWN_SECONDS": "2", "KASSA_BREAKER_PROBES": "2",
        "KASSA_API_ANSWER_WITHIN_SECONDS": "10"}


def spawn_simulator(es: contextlib.ExitStack, workdir: Path, name: str,
                    hang_s: float) -> tuple[Service, int]:
    port = stack.free_port()
    service = stack.spawn(es, name, [
        sys.executable, "-m", "kassa.psp.simulator.server", "--port", str(port),
        "--timeout-hang-s", str(hang_s)], stack.base_env(workdir), workdir)
    return service, port


async def healthy(service: Service, url: str) -> None:
    await asyncio.to_thread(stack.wait_healthy, service, url + "/healthz")


async def start_api(w: World) -> tuple[Service, int]:
    """A new API process on a port of its own, once it answers with its database (its
    /healthz is 503 while the default PSP, A, is down: the outage this run makes)."""
    port = stack.free_port()
    api = stack.spawn(w.es, f"api-{port}", [sys.executable, "-m", "kassa.cli", "api"],
                      w.env | {"KASSA_PORT": str(port)}, w.workdir)
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(timeout=2) as c:
        while True:
            if api.proc.poll() is not None:
                raise RuntimeError(f"the API exited with {api.proc.returncode}:\n"
                                   f"{api.log_tail()}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = await c.get(f"http://127.0.0.1:{port}/healthz")
                if r.json().get("checks", {}).get("database"):
                    return api, port
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer in 120 s:\n{api.log_tail()}")
            await asyncio.sleep(0.1)


async def route(w: World) -> None:
    async with httpx.AsyncClient(base_url=w.api_url, headers=w.auth, timeout=10) as c:
        r = await c.post("/v1/routing_configs", json={
            "rules": [], "default_route": {"strategy": "priority", "psps": [A, B]}})
        assert r.status_code == 200, r.text
        r = await c.post(f"/v1/routing_configs/{r.json()['id']}/activate")
        assert r.status_code == 200, r.text


# ------------------------------------------------------------------------ clients


async def send(w: World, c: httpx.AsyncClient, method: str, path: str, key: str | None,
               data: dict[str, str] | None = None) -> httpx.Response:
    """One request, repeated with the same Idempotency-Key on any error until it has an
    answer that is not one (a 2xx, or a 4xx that is the API's verdict)."""
    headers = {} if key is None else {"Idempotency-Key": key}
    while True:
        try:
            r = await c.request(method, path, data=data, headers=headers)
        except httpx.TransportError as exc:
            w.retries[type(exc).__name__] += 1
        else:
            if r.status_code not in RETRY_STATUSES:
                return r
            w.retries[str(r.status_code)] += 1
        await asyncio.sleep(0.2 + random.random() * 0.3)


async def settled(w: World, c: httpx.AsyncClient, pid: str, *, leave: tuple[str, ...]
                  ) -> dict[str, Any]:
    """The payment once it is in none of ``leave`` (recovery resolves unknown outcomes)."""
    deadline = time.monotonic() + w.plan.settle_s
    while True:
        r = await send(w, c, "GET", f"/v1/payment_intents/{pid}", None)
        body: dict[str, Any] = r.json()
        if body.get("status") not in leave or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.3)


async def one_payment(w: World, c: httpx.AsyncClient, i: int, rng: random.Random) -> None:
    manual = rng.random() < w.plan.manual_share
    amount = rng.randint(500, 50_000)
    phase = w.phase
    r = await send(w, c, "POST", "/v1/payment_intents", f"chaos-{i}-create", {
        "amount": str(amount), "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true", "capture_method": "manual" if manual else "automatic"})
    body = r.json()
    if r.status_code != 200:
        w.problems.append(f"payment {i}: create+confirm answered {r.status_code} {r.text[:200]}")
        return
    w.payments.append(body["id"])
    w.phase_of[body["id"]] = phase
    w.first_answers[body["status"]] += 1
    if body["status"] == "processing":  # the PSP's outcome unknown: recovery's to resolve
        w.answered_unknown.add(body["id"])
    pi = await settled(w, c, body["id"], leave=("processing",))
    if manual:
        if pi["status"] != "requires_capture":
            w.problems.append(f"{pi['id']}: {pi['status']} where requires_capture was due")
            return
        r = await send(w, c, "POST", f"/v1/payment_intents/{pi['id']}/capture",
                       f"chaos-{i}-capture")
        if r.status_code != 200:
            w.problems.append(f"{pi['id']}: capture answered {r.status_code} {r.text[:200]}")
            return
        pi = await settled(w, c, pi["id"], leave=("requires_capture", "processing"))
        r = await send(w, c, "POST", "/v1/refunds", f"chaos-{i}-refund",
                       {"payment_intent": pi["id"], "amount": str(amount // 3)})
        if r.status_code != 200:
            w.problems.append(f"{pi['id']}: refund answered {r.status_code} {r.text[:200]}")
    w.client_statuses[pi["status"]] += 1


async def clients(w: World) -> None:
    """Payment i starts no earlier than i / rate seconds in (a client free by then)."""
    queue = iter(range(w.plan.payments))
    began = time.monotonic()

    async def client(n: int) -> None:
        rng = random.Random(w.plan.seed * 1000 + n)
        async with httpx.AsyncClient(base_url=w.api_url, headers=w.auth, timeout=30) as c:
            for i in queue:
                await asyncio.sleep(max(0.0, began + i / w.plan.rate - time.monotonic()))
                w.started += 1
                await one_payment(w, c, i, rng)
                async with w.progress:
                    w.done += 1
                    w.progress.notify_all()

    await asyncio.gather(*(client(n) for n in range(w.plan.concurrency)))


# ------------------------------------------------------------------------ chaos


def say(w: World, message: str) -> None:
    log(f"{time.monotonic() - w.began:6.1f}s  {message}")


async def until_done(w: World, share: float) -> None:
    """Until this share of the payments is done (the clients pace their starts, so this is
    a point in time too, with the API's cold start behind it)."""
    async with w.progress:
        await w.progress.wait_for(lambda: w.done >= share * w.plan.payments)


async def outage(w: World) -> None:
    """A refuses connections from one share of the payments to another (and at least
    outage_min_s), then comes back."""
    await until_done(w, w.plan.outage[0])
    say(w, f"A down at {w.done} payments")
    w.phase = "outage"
    await w.gate.down()
    started = time.monotonic()
    await until_done(w, w.plan.outage[1])
    await asyncio.sleep(max(0.0, w.plan.outage_min_s - (time.monotonic() - started)))
    await w.gate.up()
    w.phase = "after_outage"
    w.a_back.set()
    async with httpx.AsyncClient(timeout=10) as sim:
        w.a_before_back = {a["id"] for a in (await sim.get(
            w.sim_urls[A] + "/_sim/authorizations")).json()}
    say(w, f"A back at {w.done} payments")


async def timeouts(w: World) -> None:
    """A charges, then hangs past kassa's PSP timeout, for a share of its calls."""
    async with httpx.AsyncClient(base_url=w.sim_urls[A], timeout=10) as sim:
        await w.a_back.wait()  # A's own timeouts, not a refused connection's
        await until_done(w, w.plan.timeouts[0])
        say(w, f"A times out after charging ({w.plan.timeout_rate:.0%}) from {w.done} payments")
        r = await sim.post("/_sim/config", json={"timeout_rate": w.plan.timeout_rate,
                                                 "seed": w.plan.seed})
        assert r.status_code == 200, r.text
        w.phase = "timeouts"
        await until_done(w, w.plan.timeouts[1])
        await sim.post("/_sim/config", json={"timeout_rate": 0})
        w.phase = "after_timeouts"
        say(w, f"A answers in time again from {w.done} payments")


async def killer(w: World) -> None:
    """SIGKILL the API at evenly spread points of the run; its requests in flight die with
    it (attempts orphaned, keys held). A successor takes over the API's address (the gate
    in front, as a load balancer would) as soon as it answers; successors are started
    ahead, two at a time, since a cold start takes 10-20 s on this busy 2-core machine and
    would otherwise keep the API away that long per kill. Meanwhile the clients' repeats
    find no API and repeat again."""
    low, high = w.plan.kill_window
    ahead = [asyncio.create_task(start_api(w)) for _ in range(min(2, w.plan.kills))]
    for n in range(w.plan.kills):
        at = low + (high - low) * n / max(1, w.plan.kills - 1)
        await until_done(w, at)
        if w.plan.kills_after_outage:
            await w.a_back.wait()
        assert w.api is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(w.api.proc.pid, signal.SIGKILL)
        await asyncio.to_thread(w.api.proc.wait)
        w.kills += 1
        say(w, f"API killed ({w.kills}/{w.plan.kills}) at {w.done} payments")
        w.api, w.api_gate.target_port = await ahead.pop(0)
        if n + len(ahead) + 1 < w.plan.kills:
            ahead.append(asyncio.create_task(start_api(w)))
        say(w, f"its successor serves from {w.done} payments")


def breaker_of(text: str, psp: str) -> tuple[int | None, int]:
    """A's breaker state and times opened, from the API's /metrics text (a line scan: the
    full parser costs this loop more CPU than the clients do, polled ten times a second)."""
    state, opened = None, 0
    wanted = f'{{psp="{psp}"}} '
    for line in text.splitlines():
        if line.startswith("kassa_psp_breaker_state" + wanted):
            state = int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("kassa_psp_breaker_opened" + wanted):
            opened = int(float(line.rsplit(" ", 1)[1]))
    return state, opened


async def breaker_watch(w: World, stop: asyncio.Event) -> None:
    """A's breaker as the API sees it (per process: a killed API starts closed)."""
    async with httpx.AsyncClient(base_url=w.api_url, timeout=2) as c:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                state, opened = breaker_of((await c.get("/metrics")).text, A)
                if state is not None:
                    w.breaker_seen[w.phase].add(state)
                w.breaker_opened = max(w.breaker_opened, opened)
            await asyncio.sleep(0.2)


# ------------------------------------------------------------------------ the count


async def settle(w: World) -> int:
    """Wait until no attempt of the merchant is open; returns how many still are."""
    from kassa.db.pool import create_pool

    pool = await create_pool(w.dsn, min_size=1, max_size=2)
    deadline = time.monotonic() + w.plan.settle_s
    try:
        while True:
            n = int(await pool.fetchval(
                "SELECT count(*) FROM attempts WHERE merchant_id = $1 AND status = ANY($2)",
                w.merchant_id, list(OPEN_ATTEMPTS)))
            if n == 0 or time.monotonic() > deadline:
                return n
            await asyncio.sleep(0.5)
    finally:
        await pool.close()


async def count(w: World) -> dict[str, Any]:
    """Both ends: each simulator's records against kassa's rows and ledger."""
    from kassa.db.pool import create_pool
    from kassa.ledger.verify import verify

    books: dict[str, list[dict[str, Any]]] = {}
    stats: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(timeout=30) as c:
        for psp, url in w.sim_urls.items():
            rows = (await c.get(url + "/_sim/authorizations")).json()
            books[psp] = [a for a in rows if a["merchant_id"] == w.merchant_id]
            stats[psp] = (await c.get(url + "/_sim/stats")).json()
    pool = await create_pool(w.dsn, min_size=1, max_size=2)
    try:
        payments = {r["id"]: dict(r) for r in await pool.fetch(
            "SELECT id, status, psp, amount, amount_received, amount_refunded"
            " FROM payment_intents WHERE merchant_id = $1", w.merchant_id)}
        attempts = {r["id"]: dict(r) for r in await pool.fetch(
            "SELECT id, payment_intent_id, operation, psp, status, error->>'code' AS code"
            " FROM attempts WHERE merchant_id = $1 ORDER BY created_at, id", w.merchant_id)}
        refunds = await pool.fetch(
            "SELECT r.payment_intent_id, r.amount, r.status FROM refunds r"
            " WHERE r.merchant_id = $1", w.merchant_id)
        receivable = {r["account"]: int(r["total"]) for r in await pool.fetch(
            "SELECT e.account, sum(e.amount) AS total FROM ledger_entries e"
            " JOIN ledger_transactions t ON t.id = e.transaction_id"
            " WHERE t.merchant_id = $1 AND e.layer = 'posted'"
            " AND e.account LIKE 'psp:%:receivable' GROUP BY 1", w.merchant_id)}
        report = await verify(pool)
    finally:
        await pool.close()

    problems: list[str] = []
    charged_at: dict[str, list[str]] = defaultdict(list)  # payment -> psps that charged it
    unrecorded = 0  # charges at a PSP that kassa does not hold as its succeeded attempt
    by_payment: dict[str, dict[str, Any]] = {}
    for psp, rows in books.items():
        for a in rows:
            if a["status"] not in CHARGED:
                continue
            attempt = attempts.get(a["idempotency_key"])
            if attempt is None:
                unrecorded += 1
                problems.append(f"{psp} charged {a['id']} for no attempt kassa knows (lost)")
                continue
            if attempt["psp"] != psp or attempt["status"] != "succeeded":
                unrecorded += 1
                problems.append(f"{psp} charged {a['id']}; kassa's attempt {attempt['id']} "
                                f"says {attempt['psp']} {attempt['status']}")
            charged_at[attempt["payment_intent_id"]].append(psp)
            by_payment[attempt["payment_intent_id"]] = a
    at_both = sum(1 for psps in charged_at.values() if len(set(psps)) > 1)
    twice_at_one = sum(1 for psps in charged_at.values()
                       if any(n > 1 for n in Counter(psps).values()))
    refunded: Counter[str] = Counter()
    for r in refunds:
        if r["status"] == "succeeded":
            refunded[r["payment_intent_id"]] += r["amount"]
        elif r["status"] != "failed":
            problems.append(f"refund of {r['payment_intent_id']} still {r['status']}")
    lost = unrecorded  # money taken that kassa does not show, or a payment not taken
    for pid in w.payments:
        p = payments.get(pid)
        if p is None or p["status"] != "succeeded":
            lost += 1
            problems.append(f"{pid}: {p['status'] if p else 'missing'} at the end, not "
                            "succeeded")
            continue
        charge = by_payment.get(pid)
        if charge is None:
            lost += 1
            problems.append(f"{pid}: succeeded in kassa, charged at no PSP")
            continue
        if charged_at[pid][0] != p["psp"]:
            problems.append(f"{pid}: kassa says {p['psp']}, charged at {charged_at[pid][0]}")
        if (charge["amount_captured"], charge["amount_refunded"]) != (p["amount_received"],
                                                                      refunded[pid]):
            problems.append(f"{pid}: the PSP captured {charge['amount_captured']} refunded "
                            f"{charge['amount_refunded']}; kassa received "
                            f"{p['amount_received']} refunded {refunded[pid]}")
        if p["amount_refunded"] != refunded[pid]:
            problems.append(f"{pid}: amount_refunded {p['amount_refunded']} but refunds "
                            f"sum to {refunded[pid]}")
    unknown_then_elsewhere = 0
    tries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in attempts.values():
        if t["operation"] == "authorize":
            tries[t["payment_intent_id"]].append(t)
    failovers = 0
    for pid, ts in tries.items():
        psps = {t["psp"] for t in ts}
        if psps == {A, B}:
            failovers += 1
            if any(t["psp"] == A and not (t["status"] == "failed"
                                          and t["code"] == "psp_unavailable") for t in ts):
                unknown_then_elsewhere += 1
                problems.append(f"{pid}: sent to B after an attempt at A that was not "
                                f"provably unprocessed: {ts}")
    split: dict[str, Counter[str]] = defaultdict(Counter)  # phase -> PSP that charged
    for pid, phase in w.phase_of.items():
        split[phase][payments[pid]["psp"] if pid in payments else "-"] += 1
    patterns = Counter(" > ".join(f"{t['psp']}:{t['status']}"
                                  + (f"({t['code']})" if t["code"] else "") for t in ts)
                       for ts in tries.values())
    open_attempts = [t for t in attempts.values() if t["status"] in OPEN_ATTEMPTS]
    if open_attempts:
        problems.append(f"{len(open_attempts)} attempts still open: {open_attempts[:3]}")
    per_psp: dict[str, dict[str, int]] = {}
    for psp in (A, B):
        charged = [a for a in books[psp] if a["status"] in CHARGED]
        captured = sum(a["amount_captured"] for a in charged)
        refunded_at = sum(a["amount_refunded"] for a in charged)
        succeeded = [p for p in payments.values() if p["status"] == "succeeded"
                     and p["psp"] == psp]
        per_psp[psp] = {
            "psp_charges": len(charged),
            "psp_captured": captured,
            "psp_refunded": refunded_at,
            "psp_refund_ops": int(stats[psp].get("refunds", 0)),
            "kassa_succeeded": len(succeeded),
            "kassa_received": sum(p["amount_received"] for p in succeeded),
            "kassa_refunded": sum(refunded[p["id"]] for p in succeeded),
            "ledger_receivable": receivable.get(f"psp:{psp}:receivable", 0),
        }
        row = per_psp[psp]
        if row["psp_charges"] != row["kassa_succeeded"]:
            problems.append(f"{psp}: {row['psp_charges']} charges at the PSP, "
                            f"{row['kassa_succeeded']} succeeded payments in kassa")
        if (row["psp_captured"], row["psp_refunded"]) != (row["kassa_received"],
                                                          row["kassa_refunded"]):
            problems.append(f"{psp}: the PSP holds {captured}-{refunded_at}, kassa "
                            f"{row['kassa_received']}-{row['kassa_refunded']}")
        if row["ledger_receivable"] != captured - refunded_at:
            problems.append(f"{psp}: ledger receivable {row['ledger_receivable']} != "
                            f"{captured - refunded_at} the PSP holds")
    # payments answered "processing" (an unknown outcome), by the account that charged them
    resolved = Counter(payments[pid]["psp"] for pid in w.answered_unknown
                       if payments.get(pid, {}).get("status") == "succeeded")
    if at_both or twice_at_one:
        problems.append(f"doubles: {at_both} payments charged at both PSPs, {twice_at_one} "
                        "charged twice at one")
    if not report.ok:
        problems.append(f"ledger verify: {report.problems[:5]}")
    return {"per_psp": per_psp, "doubles_at_both": at_both, "doubles_at_one": twice_at_one,
            "lost": lost, "failed_over": failovers, "sent_elsewhere_after_unknown":
            unknown_then_elsewhere, "ledger_ok": report.ok, "ledger_checked": report.checked,
            "faults_at_a": stats[A].get("faults_injected", {}),
            "a_charges_after_outage": sum(1 for a in books[A] if a["status"] in CHARGED
                                          and a["id"] not in w.a_before_back),
            "unknown_resolved_by_recovery_at": dict(resolved),
            "psp_by_phase": {k: dict(v) for k, v in split.items()},
            "charge_histories": dict(patterns.most_common(8)),
            "problems": problems}


async def scrape_worker(w: World) -> dict[str, float]:
    """The worker's own PSP calls at A (workers/metrics.py), by operation and outcome."""
    out: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=5) as c:
        text = (await c.get(w.worker_metrics_url)).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "kassa_psp_requests_total" and s.labels["psp"] == A:
                out[f"{s.labels['operation']}/{s.labels['outcome']}"] = s.value
    return out


# ------------------------------------------------------------------------ the run


async def run(plan: Plan, es: contextlib.ExitStack, workdir: Path, dsn: str) -> dict[str, Any]:
    # the simulators, the worker and the API start while this process creates the
    # merchant (each takes seconds)
    sim_a, a_port = spawn_simulator(es, workdir, "sim-a", hang_s=2.0)
    sim_b, b_port = spawn_simulator(es, workdir, "sim-b", hang_s=2.0)
    a_url, b_url = f"http://127.0.0.1:{a_port}", f"http://127.0.0.1:{b_port}"
    gate = Gate(a_port)
    await gate.up()
    api_gate = Gate(0)  # pointed at the first API once it answers
    await api_gate.up()
    w = World(plan=plan, es=es, workdir=workdir, dsn=dsn,
              env=kassa_env(dsn, workdir, gate, b_url), api_url=api_gate.url,
              sim_urls={A: a_url, B: b_url}, gate=gate, api_gate=api_gate)
    metrics_port = stack.free_port()
    w.worker_metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    stack.spawn(es, "worker", [sys.executable, "-m", "kassa.cli", "worker", "--role",
                               "recovery", "--role", "psp-webhooks"],
                w.env | {"KASSA_WORKER_METRICS_PORT": str(metrics_port)}, workdir)
    (merchant,), (w.api, api_gate.target_port), *_ = await asyncio.gather(
        stack.new_merchants(dsn, gate.url, 1), start_api(w), healthy(sim_a, a_url),
        healthy(sim_b, b_url))
    w.secret_key, w.merchant_id = merchant["secret_key"], merchant["merchant_id"]
    await route(w)
    log(f"{plan.payments} payments, {plan.concurrency} clients, {plan.kills} API kills")
    stop = asyncio.Event()
    watch = asyncio.create_task(breaker_watch(w, stop))
    started = w.began = time.monotonic()
    try:
        await asyncio.gather(clients(w), outage(w), timeouts(w), killer(w))
    finally:
        stop.set()
        await watch
    took = time.monotonic() - started
    say(w, f"clients done in {took:.1f}s; settling")
    still_open = await settle(w)
    settled_in = time.monotonic() - started - took
    counted = await count(w)
    worker_calls = await scrape_worker(w)
    await gate.close()  # ends their connections before the loop does
    await api_gate.close()
    problems = w.problems + counted.pop("problems")
    if still_open:
        problems.append(f"{still_open} attempts still open after {plan.settle_s}s")
    seen = {k: sorted(v) for k, v in w.breaker_seen.items()}
    if 2 not in seen.get("outage", []):
        problems.append(f"A's breaker was never seen open while A was down ({seen})")
    if counted["a_charges_after_outage"] == 0:
        problems.append("A took no payment after it came back (its breaker never closed)")
    if not counted["failed_over"]:
        problems.append("no payment failed over to B during the outage")
    if not counted["faults_at_a"].get("timeout_after_charge"):
        problems.append("A never timed out after charging")
    if w.kills != plan.kills:
        problems.append(f"{w.kills} API kills, {plan.kills} planned")
    return {"bench": "chaos", "plan": asdict(plan), "seconds": round(took, 1),
            "settled_in_s": round(settled_in, 1), "payments_per_s": round(plan.payments / took, 1),
            "kills": w.kills, "first_answers": dict(w.first_answers),
            "final_statuses": dict(w.client_statuses), "client_retries": dict(w.retries),
            "breaker_states_seen": seen, "breaker_opened_max": w.breaker_opened,
            "worker_psp_calls_at_a": worker_calls, **counted, "problems": problems,
            "ok": not problems}


def render(summary: dict[str, Any]) -> str:
    lines = [f"chaos: {summary['plan']['payments']} payments in {summary['seconds']}s "
             f"({summary['payments_per_s']}/s), {summary['kills']} API kills, settled "
             f"{summary['settled_in_s']}s later"]
    cols = ("psp_charges", "kassa_succeeded", "psp_captured", "kassa_received",
            "psp_refunded", "kassa_refunded", "ledger_receivable", "psp_refund_ops")
    lines.append(f"{'':10}" + "".join(f"{c:>18}" for c in cols))
    for psp, row in summary["per_psp"].items():
        lines.append(f"{psp:10}" + "".join(f"{row[c]:>18}" for c in cols))
    for key in ("doubles_at_both", "doubles_at_one", "lost", "failed_over",
                "sent_elsewhere_after_unknown", "unknown_resolved_by_recovery_at",
                "a_charges_after_outage",
                "ledger_ok", "faults_at_a", "psp_by_phase", "charge_histories",
                "first_answers", "final_statuses",
                "breaker_states_seen", "breaker_opened_max", "worker_psp_calls_at_a",
                "client_retries"):
        lines.append(f"  {key}: {summary[key]}")
    lines.append("OK: both ends agree" if summary["ok"] else
                 "MISMATCH:\n  " + "\n  ".join(summary["problems"][:40]))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--payments", type=int, default=Plan.payments)
    p.add_argument("--concurrency", type=int, default=Plan.concurrency)
    p.add_argument("--kills", type=int, default=Plan.kills)
    p.add_argument("--rate", type=float, default=Plan.rate, help="payments started per second")
    p.add_argument("--seed", type=int, default=Plan.seed)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(payments=args.payments, concurrency=args.concurrency, kills=args.kills,
                rate=args.rate, seed=args.seed)
    with contextlib.ExitStack() as es:
        workdir = stack.workdir(es)
        server = stack.start_server(es, workdir)
        dsn = stack.migrated_database(es, server, "kassa_chaos")
        summary = asyncio.run(run(plan, es, workdir, dsn))
    print(render(summary))
    print(json.dumps(summary, default=str))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
