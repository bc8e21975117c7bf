"""The chaos world's driver (tests/integration/test_property_psp_interleavings.py): the
operations an example is made of, and ``Run``, which applies them to kassa's API, the
simulator (its page, faults, webhooks) and recovery, keeps what the API promised on the
way, and drains the world at the end."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import event

from kassa.services import recovery
from kassa.services.context import Kassa, WatchPolicy
from kassa.webhooks import inbound as psp_webhooks
from tests.support.psp_faults import PSPWireFaults
from tests.support.recovery import make_due

VISA, DECLINED, THREE_DS = ("pm_card_visa", "pm_card_chargeDeclined",
                            "pm_card_authenticationRequired")
SIM_FAULTS = ("error", "error_after_charge", "timeout_after_charge", "timeout_before_charge")
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
class Lapse:
    """The PSP lets the payment's open authorisation go on its own (its validity ended
    before kassa's deadline): voided at the PSP, kassa not told."""

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


Step = Confirm | Cancel | Customer | Capture | Refund | Expire | Lapse | Settle | Together \
    | Retry | Fault | Deliver | Recover
Op = Create | Step



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
    lapsed: set[str] = field(default_factory=set)  # authorisations the PSP let go itself
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
        elif isinstance(op, Lapse):
            await self.lapse(pid)
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

    async def lapse(self, pid: str) -> None:
        charge = await self.w.kassa.pool.fetchval(
            "SELECT latest_charge FROM payment_intents WHERE id = $1", pid)
        auth = next((a for a in await self.sim_authorizations()
                     if a["idempotency_key"] == charge), None)
        if auth is None or auth["status"] not in ("authorized", "requires_action"):
            return
        key = f"lapse-{uuid.uuid4()}"
        for _ in range(6):  # a fault queued for kassa may hit this call first: repeat it
            r = await self.w.sim.post(f"/v1/authorizations/{auth['id']}/void",
                                      json={"idempotency_key": key})
            if r.status_code == 200:
                break
        assert r.status_code == 200, r.text
        self.lapsed.add(charge)
        self.log.append(f"the PSP lets {auth['status']} {charge} of {pid} go: "
                        f"{r.json()['status']}")
        event(f"the PSP lets {auth['status']} go")

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


async def sim_operation(w: World, key: str) -> dict[str, Any] | None:
    """The simulator's current result for the operation sent with ``key`` (None: never
    received, or refused before acting)."""
    r = await w.sim.get(f"/v1/operations/{key}")
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body
