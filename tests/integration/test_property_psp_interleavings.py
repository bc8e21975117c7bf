"""Chaos property: whatever happens between kassa, the PSP and the customer, in any order,
the money the PSP moved is the money kassa's books show (issue 7, "Proof").

Hypothesis generates, per example, a few payments and a random interleaving of what can
happen to them: create+confirm with a good, a declined or a 3-D Secure card (capture
automatic or manual), a new confirm, cancel, the customer completing or failing 3-D Secure
on the simulator's page (and coming back to kassa's return endpoint, or closing the tab),
capture and refund (full or partial), expiry (of the authentication and of the hold, and
the PSP letting an authorisation go before kassa's deadline), retries with the same key, PSP
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

import os
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

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
from kassa.services import merchants
from tests.support.api_server import serving
from tests.support.chaos import (
    DECLINED,
    SIM_FAULTS,
    THREE_DS,
    VISA,
    Cancel,
    Capture,
    Confirm,
    Create,
    Customer,
    Deliver,
    Expire,
    Fault,
    Lapse,
    Op,
    Recover,
    Refund,
    Retry,
    Run,
    Settle,
    Step,
    Together,
    World,
    sim_operation,
)
from tests.support.databases import migrated_database
from tests.support.psp_faults import GARBLED_AFTER_CHARGE, REFUSED, PSPWireFaults
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
LIVE = ("authorized", "captured", "requires_action")  # simulator statuses holding anything


# --------------------------------------------------------------------- histories
# Each payment has a script (its creation, then what happens to it); an example is one
# random interleaving of the scripts. ``slot`` names the script's payment.

card = st.sampled_from([VISA, VISA, DECLINED, THREE_DS, THREE_DS])
percent = st.one_of(st.none(), st.integers(10, 90))


def simple_step(slot: int, create: Create) -> st.SearchStrategy[Step]:
    """What can happen to the payment, weighted towards what its card makes likely (so
    that deep states — a refund of a capture after 3-D Secure — are reached often)."""
    at = st.just(slot)
    weights: dict[str, int] = {"confirm": 1, "cancel": 1, "customer": 1, "capture": 1,
                               "refund": 1, "expire": 1, "lapse": 0, "settle": 1, "retry": 1,
                               "fault": 3,
                               "deliver": 1, "recover": 1}
    if create.card == THREE_DS:
        weights.update(customer=4, capture=2, refund=2, lapse=1)
    elif create.card == DECLINED:
        weights.update(confirm=3, capture=2, refund=2)
    elif create.capture_method == "manual":
        weights.update(capture=4, refund=2, lapse=1)
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
        "lapse": st.builds(Lapse, slot=at),
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



# --------------------------------------------------------------------- the checks


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
    if not final:
        # a hold the PSP let go is learned at kassa's deadline (the final drain), or when
        # something is tried on it; until then kassa rightly still shows it held
        for p in payments.values():
            s = sim_auths.get(p["latest_charge"] or "")
            if s and s["status"] == "voided" and p["latest_charge"] in run.lapsed \
                    and p["status"] == "requires_capture":
                sim_auths[p["latest_charge"]] = {**s, "status": "authorized"}
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
        if a["operation"] == "void" and op is not None and op["failure_code"] in (
                "already_voided", "authorization_voided"):
            continue  # void at the PSP either way: the authorisation checks above judge it
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
            assert s is None or s["status"] in ("declined", "voided"), fail(
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
