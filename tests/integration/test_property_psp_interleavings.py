"""Chaos property: whatever happens between kassa, the PSP and the customer, in any order,
the money the PSP moved is the money kassa's books show (issue 7, "Proof").

Hypothesis generates, per example, a few payments and a random interleaving of what can
happen to them: create+confirm with a good, a declined or a 3-D Secure card (capture
automatic or manual), a new confirm, cancel, the customer completing or failing 3-D Secure
on the simulator's page (and coming back to kassa's return endpoint, or closing the tab),
capture and refund (full or partial), expiry (of the authentication and of the hold), PSP
faults (503 with or without acting, timeouts before and after acting, a 4xx refusal, an
unreadable answer after acting), webhooks held back and then delivered late in a shuffled
order — or lost for good — and recovery passes. All of it runs through the real API
(in-process), the real simulator on loopback (its webhooks reach kassa over HTTP) and
PostgreSQL.

Then the world drains (webhooks flushed unless lost, the inbox applied, recovery until
nothing changes) and, for every payment of the example:

- every authorisation the simulator holds belongs to an attempt kassa knows;
- what the simulator captured and refunded equals the payment row (amount_received,
  amount_refunded) and the ledger (capture and refund transactions by source id);
- the simulator's live authorisation (at most one) matches the payment's status; a hold
  is resolved at most once, by a capture when the PSP captured it and by a release when
  the PSP voided it, and is open exactly when the PSP still holds the funds;
- every capture, void and refund attempt kassa recorded as succeeded is the one the PSP
  performed (and vice versa); nothing is left ``processing`` or open;
- what the API answered on the way (a cancel's ``canceled``, a capture's ``succeeded``,
  a refund's ``succeeded``, a 402 decline) is still true at the end;
- ``kassa.ledger.verify`` passes.

It drains twice: first leaving holds and open authentications alone (so live holds are
checked against the PSP), then expiring everything that still waits (so every example
also ends with nothing watched).

KASSA_CHAOS_EXAMPLES=200 for a longer hunt; the default keeps the suite within ~a minute.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import pytest
from hypothesis import HealthCheck, Phase, event, given
from hypothesis import strategies as st

from kassa import bootstrap
from kassa.api.app import create_app
from kassa.config import Settings
from kassa.ledger.verify import verify
from kassa.psp.simulator import SimulatorConfig
from kassa.services import merchants, psp_webhooks, recovery
from kassa.services.context import Kassa, WatchPolicy
from tests.support.api_server import serving
from tests.support.databases import migrated_database
from tests.support.psp_faults import GARBLED_AFTER_CHARGE, REFUSED, PSPWireFaults
from tests.support.recovery import make_due
from tests.support.simulator_server import running_simulator

pytestmark = pytest.mark.slow

SECRET = "whsec_chaos_0123456789abcdef"
PSP_TIMEOUT = 0.3  # kassa gives up on the PSP after this (its answer is then unknown)
HANG = 0.6  # a simulated timeout hangs this long (longer than kassa waits)
MAX_EXAMPLES = int(os.environ.get("KASSA_CHAOS_EXAMPLES", "50"))
# Shrinking a failure replays hundreds of examples (minutes); the failure message carries
# the example's whole history already. KASSA_CHAOS_SHRINK=1 shrinks it too.
PHASES = tuple(Phase) if os.environ.get("KASSA_CHAOS_SHRINK") else (
    Phase.explicit, Phase.reuse, Phase.generate)
EXAMPLES_RUN: list[int] = []

VISA, DECLINED, THREE_DS = ("pm_card_visa", "pm_card_chargeDeclined",
                            "pm_card_authenticationRequired")
SIM_FAULTS = ("error", "error_after_charge", "timeout_after_charge", "timeout_before_charge")
LIVE = ("authorized", "captured", "requires_action")  # simulator statuses holding anything
DRAIN_ROUNDS = 12


# --------------------------------------------------------------------- operations
# Each payment has a script (its creation, then what happens to it); an example is one
# random interleaving of the scripts. ``slot`` names the script's payment.


@dataclass(frozen=True)
class Create:
    slot: int
    card: str
    capture_method: str
    amount: int
    return_url: bool


@dataclass(frozen=True)
class Confirm:
    slot: int
    card: str


@dataclass(frozen=True)
class Cancel:
    slot: int


@dataclass(frozen=True)
class Customer:
    """The customer on the simulator's 3-D Secure page (of the latest attempt kassa showed)."""

    slot: int
    succeed: bool
    comes_back: bool  # follows the PSP's redirect to kassa (False: closes the tab)


@dataclass(frozen=True)
class Capture:
    slot: int
    percent: int | None  # of the amount; None: everything capturable


@dataclass(frozen=True)
class Refund:
    slot: int
    percent: int | None  # of the amount; None: everything refundable


@dataclass(frozen=True)
class Expire:
    """The payment's deadlines pass: an open authentication and an uncaptured hold."""

    slot: int


@dataclass(frozen=True)
class Settle:
    """The PSP settles the payment's pending captures and refunds."""

    slot: int
    succeed: bool


@dataclass(frozen=True)
class Together:
    """Two things happen to the payment at the same time (e.g. cancel and 3-D Secure)."""

    slot: int
    first: Step
    second: Step


@dataclass(frozen=True)
class Retry:
    """The client sends the payment's latest request again, with the same key."""

    slot: int


@dataclass(frozen=True)
class Fault:
    """The next mutating PSP call suffers this."""

    slot: int
    kind: str


@dataclass(frozen=True)
class Deliver:
    """Some of the held webhooks arrive (late, shuffled), then the inbox is applied."""

    slot: int
    seed: int
    share: float


@dataclass(frozen=True)
class Recover:
    """A recovery pass over every waiting attempt except holds (which would expire)."""

    slot: int


Step = Confirm | Cancel | Customer | Capture | Refund | Expire | Settle | Together | Retry \
    | Fault | Deliver | Recover
Op = Create | Step

card = st.sampled_from([VISA, VISA, DECLINED, THREE_DS, THREE_DS])
percent = st.one_of(st.none(), st.integers(10, 90))


def simple_step(slot: int, create: Create) -> st.SearchStrategy[Step]:
    """What can happen to the payment, weighted towards what its card makes likely (so
    that deep states — a refund of a capture after 3-D Secure — are reached often)."""
    at = st.just(slot)
    weights: dict[str, int] = {"confirm": 1, "cancel": 1, "customer": 1, "capture": 1,
                               "refund": 1, "expire": 1, "settle": 1, "retry": 1, "fault": 3,
                               "deliver": 1, "recover": 1}
    if create.card == THREE_DS:
        weights.update(customer=4, capture=2, refund=2)
    elif create.card == DECLINED:
        weights.update(confirm=3, capture=2, refund=2)
    elif create.capture_method == "manual":
        weights.update(capture=4, refund=2)
    else:
        weights.update(refund=4)
    options: dict[str, st.SearchStrategy[Step]] = {
        "confirm": st.builds(Confirm, slot=at, card=card),
        "cancel": st.builds(Cancel, slot=at),
        "customer": st.builds(Customer, slot=at, succeed=st.booleans(),
                              comes_back=st.booleans()),
        "capture": st.builds(Capture, slot=at, percent=percent),
        "refund": st.builds(Refund, slot=at, percent=percent),
        "expire": st.builds(Expire, slot=at),
        "settle": st.builds(Settle, slot=at, succeed=st.booleans()),
        "retry": st.builds(Retry, slot=at),
        "fault": st.builds(Fault, slot=at,
                           kind=st.sampled_from([*SIM_FAULTS, REFUSED, GARBLED_AFTER_CHARGE])),
        "deliver": st.builds(Deliver, slot=at, seed=st.integers(0, 2**16),
                             share=st.sampled_from([0.5, 1.0])),
        "recover": st.builds(Recover, slot=at),
    }
    # (one_of would drop repeated strategies: weights go through sampled_from)
    return st.sampled_from([name for name, n in weights.items() for _ in range(n)]
                           ).flatmap(options.__getitem__)


def step(slot: int, create: Create) -> st.SearchStrategy[Step]:
    one = simple_step(slot, create)
    together = st.builds(Together, slot=st.just(slot), first=one, second=one)
    return st.integers(0, 4).flatmap(lambda n: together if n == 0 else one)


@st.composite
def histories(draw: st.DrawFn) -> list[Op]:
    """Scripts for 1-4 payments, interleaved at random (each script keeps its order)."""
    scripts: list[list[Op]] = []
    for slot in range(draw(st.integers(1, 4))):
        create = draw(st.builds(Create, slot=st.just(slot), card=card,
                                capture_method=st.sampled_from(["automatic", "manual"]),
                                amount=st.integers(500, 50_000), return_url=st.booleans()))
        scripts.append([create, *draw(st.lists(step(slot, create), min_size=1,
                                                max_size=6))])
    order = draw(st.permutations([n for n, script in enumerate(scripts) for _ in script]))
    cursors = [0] * len(scripts)
    out: list[Op] = []
    for n in order:
        out.append(scripts[n][cursors[n]])
        cursors[n] += 1
    return out


# --------------------------------------------------------------------- the world


@dataclass
class World:
    kassa: Kassa
    api: httpx.AsyncClient  # kassa in-process
    sim: httpx.AsyncClient  # the simulator's API and controls
    wire: PSPWireFaults
    watch: WatchPolicy  # kassa's watch policy as configured


@dataclass
class Run:
    """One example: its merchant, payments, what the API promised, and a log."""

    w: World
    merchant_id: str
    auth: dict[str, str]
    slots: dict[int, str] = field(default_factory=dict)  # script -> payment id
    amounts: dict[str, int] = field(default_factory=dict)
    action_urls: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    promises: list[tuple[str, ...]] = field(default_factory=list)
    # per slot: the latest request (method, path, data, key) and its first answer
    sent: dict[int, tuple[str, str, dict[str, str] | None, str, httpx.Response]] = field(
        default_factory=dict)
    log: list[str] = field(default_factory=list)

    def fail(self, message: str) -> str:
        return message + "\n  history:\n    " + "\n    ".join(self.log[-60:])

    # -- kassa's API

    async def call(self, method: str, path: str, data: dict[str, str] | None = None, *,
                   slot: int | None = None, key: str | None = None) -> httpx.Response:
        key = key or str(uuid.uuid4())
        r = await self.w.api.request(method, path, data=data,
                                     headers={**self.auth, "Idempotency-Key": key})
        self.log.append(f"{method} {path} {data or ''} -> {r.status_code} {r.text[:160]}")
        if slot is not None:
            self.sent[slot] = (method, path, data, key, r)
        assert r.status_code < 500, self.fail(f"{method} {path} answered {r.status_code}")
        body = r.json()
        if r.status_code >= 400:
            assert isinstance(body.get("error"), dict) and body["error"].get("type"), \
                self.fail("a 4xx that is not Stripe-shaped")
            pi = body["error"].get("payment_intent")
            if isinstance(pi, dict):
                self.saw(pi)
        elif body.get("object") == "payment_intent":
            self.saw(body)
        return r

    def saw(self, pi: dict[str, Any]) -> None:
        action = pi.get("next_action") or {}
        url = (action.get("redirect_to_url") or {}).get("url")
        if url and url not in self.action_urls[pi["id"]]:
            self.action_urls[pi["id"]].append(url)

    def authorised(self, r: httpx.Response) -> None:
        """Promises of a create or confirm answer."""
        if r.status_code == 402:
            pi = r.json()["error"]["payment_intent"]
            self.promises.append(("declined", pi["id"], pi["latest_charge"]))
        elif r.status_code == 200 and r.json()["status"] == "succeeded":
            pi = r.json()
            self.promises.append(("charged", pi["id"], pi["latest_charge"],
                                  str(pi["amount_received"])))

    # -- the operations

    async def apply(self, op: Op) -> None:
        k = self.w.kassa
        if isinstance(op, Create):
            data = {"amount": str(op.amount), "currency": "usd", "payment_method": op.card,
                    "confirm": "true", "capture_method": op.capture_method}
            if op.return_url:
                data["return_url"] = "https://shop.example/done?order=1"
            r = await self.call("POST", "/v1/payment_intents", data, slot=op.slot)
            body = r.json()
            pi = body["error"].get("payment_intent") if r.status_code >= 400 else body
            assert isinstance(pi, dict), self.fail("create+confirm answered no payment")
            self.slots[op.slot] = pi["id"]
            self.amounts[pi["id"]] = op.amount
            self.authorised(r)
            event(f"create {op.card}: {r.status_code} {body.get('status', '')}")
            return
        if isinstance(op, Together):
            self.log.append("together:")
            await asyncio.gather(self.apply(op.first), self.apply(op.second))
            return
        if isinstance(op, Fault):
            self.log.append(f"fault {op.kind}")
            if op.kind in SIM_FAULTS:
                r = await self.w.sim.post("/_sim/faults", json={"faults": [op.kind]})
                assert r.status_code == 200, r.text
            else:
                self.w.wire.enqueue(op.kind)
            return
        if isinstance(op, Deliver):
            await self.deliver(seed=op.seed, share=op.share)
            return
        if isinstance(op, Recover):
            self.log.append("recovery pass")
            await self.make_due(holds=False)
            await self.recover()
            return
        pid = self.slots.get(op.slot)
        if pid is None:
            return
        if isinstance(op, Confirm):
            r = await self.call("POST", f"/v1/payment_intents/{pid}/confirm",
                                {"payment_method": op.card}, slot=op.slot)
            self.authorised(r)
            event(f"confirm: {r.status_code} {r.json().get('status', '')}")
        elif isinstance(op, Cancel):
            r = await self.call("POST", f"/v1/payment_intents/{pid}/cancel", slot=op.slot)
            if r.status_code == 200 and r.json()["status"] == "canceled":
                self.promises.append(("canceled", pid))
            event(f"cancel: {r.status_code} {r.json().get('status', '')}")
        elif isinstance(op, Customer):
            await self.customer(pid, op)
        elif isinstance(op, Capture):
            data = {}
            if op.percent is not None:
                data["amount_to_capture"] = str(max(1, self.amounts[pid] * op.percent // 100))
            r = await self.call("POST", f"/v1/payment_intents/{pid}/capture", data,
                                slot=op.slot)
            if r.status_code == 200 and r.json()["status"] == "succeeded":
                self.promises.append(("captured", pid, str(r.json()["amount_received"])))
            event(f"capture: {r.status_code} {r.json().get('status', '')}")
        elif isinstance(op, Refund):
            data = {"payment_intent": pid}
            if op.percent is not None:
                data["amount"] = str(max(1, self.amounts[pid] * op.percent // 100))
            r = await self.call("POST", "/v1/refunds", data, slot=op.slot)
            if r.status_code == 200:
                self.promises.append((f"refund_{r.json()['status']}", r.json()["id"]))
            event(f"refund: {r.status_code} {r.json().get('status', '')}")
        elif isinstance(op, Retry):
            await self.retry(op.slot)
        elif isinstance(op, Settle):
            await self.settle(pid, "succeeded" if op.succeed else "failed")
        elif isinstance(op, Expire):
            self.log.append(f"deadlines of {pid} pass")
            k.watch = dataclasses.replace(self.w.watch, action_expiry_seconds=0.0)
            try:
                await make_due(k, pid)
                await self.recover()
            finally:
                k.watch = self.w.watch

    async def retry(self, slot: int) -> None:
        """Same key, same request: an answer that was an outcome (200, 402) is replayed
        exactly; the first answer may still be running (409)."""
        if slot not in self.sent:
            return
        method, path, data, key, first = self.sent[slot]
        r = await self.call(method, path, data, key=key)
        event(f"retry after {first.status_code}: {r.status_code}")
        if first.status_code in (200, 402) and r.status_code != 409:
            assert (r.status_code, r.json()) == (first.status_code, first.json()), self.fail(
                f"the retry of {method} {path} answered otherwise than the request")
            assert r.headers.get("Idempotent-Replayed") == "true", self.fail("not a replay")

    async def settle(self, pid: str | None, outcome: str) -> None:
        """The PSP settles pending captures and refunds (of ``pid``; None: all of ours)."""
        keys = await self.w.kassa.pool.fetch(
            "SELECT id FROM attempts WHERE merchant_id = $1 AND operation IN"
            " ('capture', 'refund') AND ($2::text IS NULL OR payment_intent_id = $2)",
            self.merchant_id, pid)
        for row in keys:
            op = await sim_operation(self.w, row["id"])
            if op is not None and op["status"] == "pending":
                r = await self.w.sim.post(f"/_sim/operations/{row['id']}/settle",
                                          json={"outcome": outcome})
                assert r.status_code == 200, r.text
                self.log.append(f"the PSP settles {op['object']} {row['id']}: {outcome}")
                event(f"settle {op['object']} {outcome}")

    async def customer(self, pid: str, op: Customer) -> None:
        urls = self.action_urls.get(pid)
        if not urls:
            return
        result = "succeed" if op.succeed else "fail"
        async with httpx.AsyncClient() as browser:
            r = await browser.post(urls[-1] + "/complete", data={"result": result})
        self.log.append(f"customer {result}s 3DS of {pid} -> {r.status_code}")
        assert r.status_code == 303, self.fail(f"the 3DS page answered {r.text}")
        event(f"customer {result}s 3DS (comes back: {op.comes_back})")
        if not op.comes_back:
            return
        location = httpx.URL(r.headers["location"])
        assert location.path.startswith("/psp/simulator/return/"), location
        back = await self.w.api.get(location.raw_path.decode())
        self.log.append(f"  customer returns to kassa -> {back.status_code} "
                        f"{back.headers.get('location', back.text[:120])}")
        assert back.status_code in (200, 303), self.fail("the return endpoint failed")

    # -- webhooks and recovery

    async def sim_authorizations(self) -> list[dict[str, Any]]:
        rows = (await self.w.sim.get("/_sim/authorizations")).json()
        return [a for a in rows if a["merchant_id"] == self.merchant_id]

    async def deliver(self, *, seed: int, share: float) -> None:
        """Deliver (part of) this example's held webhooks, shuffled; apply the inbox."""
        ours = {a["id"] for a in await self.sim_authorizations()}
        held = [e for e in (await self.w.sim.get("/_sim/webhooks")).json()
                if e["state"] in ("pending", "failed")
                and (e["data"]["object"].get("authorization") or e["data"]["object"]["id"])
                in ours]
        random.Random(seed).shuffle(held)
        chosen = held[:math.ceil(len(held) * share)]
        for e in chosen:
            r = await self.w.sim.post(f"/_sim/webhooks/{e['id']}/resend")
            assert r.status_code == 200 and r.json()["status_code"] == 200, \
                self.fail(f"kassa refused webhook {e['type']}: {r.text}")
        applied = 0
        while n := await psp_webhooks.apply_pending(self.w.kassa):
            applied += n
        self.log.append(f"delivered {len(chosen)}/{len(held)} webhooks "
                        f"({', '.join(e['type'] for e in chosen)}); applied {applied}")

    async def make_due(self, *, holds: bool) -> int:
        """This example's watched attempts are due now (holds too only with ``holds``)."""
        result = await self.w.kassa.pool.execute(
            "UPDATE attempts SET next_check_at = now() - interval '1 second'"
            " WHERE merchant_id = $1 AND next_check_at IS NOT NULL"
            " AND ($2 OR NOT (operation = 'authorize' AND status = 'succeeded'))",
            self.merchant_id, holds)
        return int(result.split()[-1])

    async def recover(self) -> None:
        """Recovery passes until none of this example's attempts is due."""
        due: list[Any] = []
        for _ in range(20):
            due = [dict(r) for r in await self.w.kassa.pool.fetch(
                "SELECT id, operation, status, tries, next_check_at, now() AS now"
                " FROM attempts WHERE merchant_id = $1 AND next_check_at <= now()",
                self.merchant_id)]
            if not due:
                return
            if not await recovery.recover_open_attempts(self.w.kassa):
                await asyncio.sleep(0.02)  # another pass may hold them (SKIP LOCKED)
        raise AssertionError(self.fail(f"recovery passes never worked off the due attempts:"
                                       f" {due}"))

    async def consume_leftover_faults(self) -> None:
        self.w.wire.clear()
        pending = (await self.w.sim.get("/_sim/stats")).json()["faults_pending"]
        for _ in pending:  # a void of no authorization: the fault is used, nothing done
            await self.w.sim.post("/v1/authorizations/sim_none/void",
                                  json={"idempotency_key": str(uuid.uuid4())})
        if pending:
            self.log.append(f"dropped unused faults {pending}")

    async def snapshot(self) -> tuple[Any, ...]:
        pool = self.w.kassa.pool
        return (
            tuple(await pool.fetch("SELECT id, status, version FROM payment_intents"
                                   " WHERE merchant_id = $1 ORDER BY id", self.merchant_id)),
            tuple(await pool.fetch("SELECT id, status FROM attempts WHERE merchant_id = $1"
                                   " ORDER BY id", self.merchant_id)),
            tuple(await pool.fetch("SELECT id, status FROM refunds WHERE merchant_id = $1"
                                   " ORDER BY id", self.merchant_id)),
            tuple(await pool.fetch("SELECT id FROM ledger_transactions WHERE merchant_id = $1"
                                   " ORDER BY id", self.merchant_id)),
            # faults still queued (last: the drain is quiet only without them)
            len(self.w.wire.queue)
            + len((await self.w.sim.get("/_sim/stats")).json()["faults_pending"]),
        )

    async def drain(self, *, lost: bool, expire: bool) -> None:
        """Until nothing changes: webhooks delivered (unless lost), inbox applied, every
        waiting attempt looked at (holds and open authentications expired with
        ``expire``)."""
        k = self.w.kassa
        self.log.append(f"drain (webhooks lost: {lost}, expire: {expire})")
        if expire:
            k.watch = dataclasses.replace(self.w.watch, action_expiry_seconds=0.0)
        try:
            before = None
            for _ in range(DRAIN_ROUNDS):
                if not lost:
                    await self.deliver(seed=len(self.log), share=1.0)
                else:
                    while await psp_webhooks.apply_pending(k):
                        pass
                await self.settle(None, "succeeded")
                await self.make_due(holds=expire)
                await self.recover()
                now = await self.snapshot()
                if now == before:
                    if not now[-1]:
                        return
                    # quiet, with faults no PSP call needs any more: drop them (each used
                    # by a call that does nothing) and let the world settle without them
                    await self.consume_leftover_faults()
                before = now
        finally:
            k.watch = self.w.watch
        raise AssertionError(self.fail(f"still changing after {DRAIN_ROUNDS} drain rounds"))


# --------------------------------------------------------------------- the checks


async def sim_operation(w: World, key: str) -> dict[str, Any] | None:
    r = await w.sim.get(f"/v1/operations/{key}")
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def check(run: Run, *, final: bool) -> None:
    w, mid = run.w, run.merchant_id
    pool = w.kassa.pool
    fail = run.fail
    payments = {r["id"]: r for r in await pool.fetch(
        "SELECT * FROM payment_intents WHERE merchant_id = $1", mid)}
    attempts = [dict(r) for r in await pool.fetch(
        "SELECT id, payment_intent_id, operation, status, amount, capture, refund_id, purpose,"
        " next_check_at FROM attempts WHERE merchant_id = $1 ORDER BY created_at, id", mid)]
    refund_rows = {r["id"]: r for r in await pool.fetch(
        "SELECT id, payment_intent_id, amount, status FROM refunds WHERE merchant_id = $1", mid)}
    txs = await pool.fetch(
        "SELECT t.id, t.kind, t.source_id, t.hold_ref, e.account, e.layer, e.amount"
        " FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.merchant_id = $1", mid)
    sim_auths = {a["idempotency_key"]: a for a in await run.sim_authorizations()}
    auth_attempts = {a["id"]: a for a in attempts if a["operation"] == "authorize"}

    # every charge at the PSP is one kassa knows about
    unknown = set(sim_auths) - set(auth_attempts)
    assert not unknown, fail(f"the PSP holds authorisations kassa never recorded: {unknown}")

    psp_posted: dict[tuple[str, str], int] = defaultdict(int)  # (kind, source) -> psp debit
    resolutions: dict[str, list[str]] = defaultdict(list)  # hold_ref -> kinds resolving it
    holds: set[str] = set()
    seen_tx: set[int] = set()
    for t in txs:
        if t["account"].startswith("psp:") and t["layer"] == "posted":
            psp_posted[(t["kind"], t["source_id"])] += t["amount"]
        if t["id"] in seen_tx:
            continue
        seen_tx.add(t["id"])
        if t["kind"] == "authorization_hold":
            holds.add(t["source_id"])
        if t["hold_ref"] is not None and t["kind"] in ("capture", "authorization_release"):
            resolutions[t["hold_ref"]].append(t["kind"])

    for pid, p in payments.items():
        mine = [a for a in auth_attempts.values() if a["payment_intent_id"] == pid]
        at_psp = [sim_auths[a["id"]] for a in mine if a["id"] in sim_auths]
        where = f"payment {pid} ({p['status']}; PSP: " \
                f"{[(s['status'], s['amount_captured'], s['amount_refunded']) for s in at_psp]})"
        assert p["status"] != "processing", fail(f"{where} is stuck in processing")
        captured = sum(s["amount_captured"] for s in at_psp)
        refunded = sum(s["amount_refunded"] for s in at_psp)
        assert p["amount_received"] == captured, fail(
            f"{where}: kassa received {p['amount_received']}, the PSP captured {captured}")
        assert psp_posted[("capture", pid)] == captured, fail(
            f"{where}: the ledger captured {psp_posted[('capture', pid)]}, the PSP {captured}")
        assert p["amount_refunded"] == refunded, fail(
            f"{where}: kassa refunded {p['amount_refunded']}, the PSP {refunded}")
        ledger_refunded = sum(
            -psp_posted[("refund", rid)] - psp_posted[("refund_reversal", rid)]
            for rid, r in refund_rows.items() if r["payment_intent_id"] == pid)
        assert ledger_refunded == refunded, fail(
            f"{where}: the ledger refunded {ledger_refunded}, the PSP {refunded}")

        live = [s for s in at_psp if s["status"] in LIVE]
        assert len(live) <= 1, fail(f"{where}: more than one live authorisation")
        expected = {"captured": "succeeded", "authorized": "requires_capture",
                    "requires_action": "requires_action"}
        if live:
            s = live[0]
            assert p["status"] == expected[s["status"]], fail(
                f"{where}: the PSP's authorisation is {s['status']}")
            assert p["latest_charge"] == s["idempotency_key"], fail(where)
            if s["status"] == "authorized":
                assert p["amount_capturable"] == s["amount"], fail(where)
        else:
            assert p["status"] in ("requires_payment_method", "requires_confirmation",
                                   "canceled"), fail(f"{where}: nothing is live at the PSP")
            assert p["amount_capturable"] == 0, fail(where)
        if final:
            assert p["status"] not in ("requires_action", "requires_capture"), fail(
                f"{where} still waits after every deadline passed")

    # holds: one per uncaptured authorisation, resolved as the PSP resolved it
    for key, a in auth_attempts.items():
        s = sim_auths.get(key)
        res = resolutions.get(key, [])
        where = f"hold of {key} (payment {a['payment_intent_id']}, PSP: " \
                f"{s and s['status']}, resolved by {res})"
        assert len(res) <= 1, fail(f"{where} resolved twice")
        if s is not None and s["status"] == "authorized":
            assert key in holds and not res, fail(f"{where}: the PSP holds the funds")
        if key in holds:
            want = {"captured": ["capture"], "voided": ["authorization_release"],
                    "authorized": []}.get(s["status"] if s else "", None)
            assert want is not None and res == want, fail(f"{where}: the ledger disagrees")
    pending_layer = sum(t["amount"] for t in txs if t["layer"] == "pending"
                        and t["account"] == f"merchant:{mid}:pending")
    held_at_psp = sum(s["amount"] for s in sim_auths.values() if s["status"] == "authorized")
    assert -pending_layer == held_at_psp, fail(
        f"the ledger holds {-pending_layer}, the PSP {held_at_psp}")

    # every operation kassa recorded is the one the PSP performed, and vice versa
    performed = {"capture": "captured", "void": "voided", "refund": "refunded"}
    for a in attempts:
        where = f"{a['operation']} attempt {a['id']} of {a['payment_intent_id']} " \
                f"({a['status']}, purpose {a['purpose']})"
        if a["operation"] == "authorize":
            allowed = ("succeeded", "failed") if final else ("succeeded", "failed",
                                                             "requires_action")
            assert a["status"] in allowed, fail(f"{where} is still open")
            continue
        assert a["status"] in ("succeeded", "failed"), fail(f"{where} is still open")
        op = await sim_operation(w, a["id"])
        did = op is not None and op["status"] == performed[a["operation"]]
        assert did == (a["status"] == "succeeded"), fail(f"{where}; the PSP says {op}")
        if a["operation"] == "refund":
            r = refund_rows[a["refund_id"]]
            assert r["status"] == ("succeeded" if did else "failed"), fail(f"{where}: {r}")
            net = -psp_posted[("refund", r["id"])] - psp_posted[("refund_reversal", r["id"])]
            assert net == (r["amount"] if did else 0), fail(f"{where}: ledger {net}")
    if final:
        watched = [a["id"] for a in attempts if a["next_check_at"] is not None]
        assert not watched, fail(f"still watched after the drain: {watched}")

    # what the API answered on the way is still true
    for promise in run.promises:
        kind, obj = promise[0], promise[1]
        if kind == "canceled":
            p = payments[obj]
            at_psp = [sim_auths.get(a["id"]) for a in auth_attempts.values()
                      if a["payment_intent_id"] == obj]
            assert p["status"] == "canceled" and not any(
                s and s["amount_captured"] for s in at_psp), fail(
                f"cancel answered canceled for {obj}; now {p['status']}, PSP {at_psp}")
        elif kind == "declined":
            s = sim_auths.get(promise[2])
            assert s is None or s["status"] == "declined", fail(
                f"{obj} answered 402 for {promise[2]}; the PSP says {s}")
        elif kind == "charged":
            s = sim_auths.get(promise[2])
            assert s is not None and s["amount_captured"] == int(promise[3]), fail(
                f"{obj} answered succeeded for {promise[2]}; the PSP says {s}")
        elif kind == "captured":
            assert payments[obj]["amount_received"] == int(promise[2]), fail(
                f"capture of {obj} answered {promise[2]}; now {payments[obj]}")
        elif kind == "refund_succeeded":
            assert refund_rows[obj]["status"] == "succeeded", fail(
                f"refund {obj} answered succeeded; now {refund_rows[obj]['status']}")

    report = await verify(pool)
    assert report.ok, fail(f"ledger verify: {report.problems}")


# --------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def chaos_sim_url() -> Iterator[str]:
    with running_simulator(SimulatorConfig(webhook_secret=SECRET, webhook_hold=True,
                                           async_delay_ms=None, timeout_hang_s=HANG)) as url:
        yield url


@pytest.fixture(scope="module")
async def chaos_world(server_url: str, settings: Settings, chaos_sim_url: str
                      ) -> AsyncIterator[World]:
    wire = PSPWireFaults()
    with migrated_database(server_url, "kassa_chaos") as url:
        async with httpx.AsyncClient(transport=wire, timeout=PSP_TIMEOUT) as http:
            k, close = await bootstrap.build(settings.model_copy(update={
                "simulator_url": chaos_sim_url, "simulator_webhook_secret": SECRET,
                "psp_timeout_seconds": PSP_TIMEOUT}), url, pool_size=8, http=http)
            try:
                app = create_app(kassa=k, key_cache_seconds=0.0)
                async with serving(app) as api_url, \
                        httpx.AsyncClient(transport=httpx.ASGITransport(
                            app=app, raise_app_exceptions=False),
                            base_url="http://kassa.test") as api, \
                        httpx.AsyncClient(base_url=chaos_sim_url) as sim:
                    r = await sim.post("/_sim/config", json={
                        "webhook_url": f"{api_url}/psp/simulator/webhooks"})
                    assert r.status_code == 200, r.text
                    yield World(kassa=k, api=api, sim=sim, wire=wire, watch=k.watch)
            finally:
                await close()


@pytest.fixture(scope="module")
def examples_run() -> Iterator[list[int]]:
    """Every example must have run (an async Hypothesis test that silently runs none
    proves nothing); fails at teardown otherwise."""
    EXAMPLES_RUN.clear()
    yield EXAMPLES_RUN
    assert len(EXAMPLES_RUN) >= MAX_EXAMPLES, f"only {len(EXAMPLES_RUN)} examples ran"


@hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=PHASES,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow,
                                            HealthCheck.data_too_large])
@given(ops=histories(), lost=st.booleans(), pending=st.booleans())
async def test_the_psp_and_the_books_agree_after_any_interleaving(
        chaos_world: World, examples_run: list[int], ops: list[Op], lost: bool,
        pending: bool) -> None:
    """``lost``: held webhooks are never delivered; ``pending``: the PSP answers captures
    and refunds ``pending`` and settles them later (Settle, or at the drain)."""
    examples_run.append(len(ops))
    w = chaos_world
    w.wire.clear()
    mode = "pending" if pending else "immediate"
    r = await w.sim.post("/_sim/config", json={"capture_mode": mode, "refund_mode": mode})
    assert r.status_code == 200, r.text
    m = await merchants.create_merchant(w.kassa, name="chaos")
    run = Run(w=w, merchant_id=m["merchant_id"],
              auth={"Authorization": f"Bearer {m['secret_key']}"})
    event(f"webhooks lost: {lost}; pending operations: {pending}")
    for op in ops:
        await run.apply(op)
    await run.drain(lost=lost, expire=False)
    await check(run, final=False)
    await run.drain(lost=lost, expire=True)
    await check(run, final=True)
