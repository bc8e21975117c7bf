"""Property: any sequence of payment operations conserves money (ARCHITECTURE §2-§3,
CONVENTIONS rule 13).

Hypothesis generates histories of create / confirm / capture (full, partial, too much) /
cancel / refund (full, partial, too much) across three merchants and usd, jpy and kwd, and
runs them through the real services against PostgreSQL and the PSP simulator on loopback.
A small model predicts each operation's outcome: legal operations must succeed with the
predicted result, illegal ones must raise the domain error and change nothing. After every
example the ledger must balance, ``verify`` must pass, captured ≤ authorised, refunded ≤
captured, the PSP receivable must carry exactly what was received, each merchant's balance
must equal its balance transactions (and captures minus fees minus refunds), and every
authorisation hold must be resolved at most once (exactly once when the payment finished).

The test is ``async``: pytest-asyncio runs each Hypothesis example on the session loop,
so the example can use kassa's asyncpg pool directly. kassa gets a database of its own so
the global checks (trial balance, verify) see nothing but these histories.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from kassa import bootstrap
from kassa.config import Settings
from kassa.domain.errors import (
    AmountError,
    CardError,
    ConcurrentModification,
    IllegalTransition,
    InvalidRequest,
)
from kassa.domain.money import Money
from kassa.domain.payments import CANCELABLE, PaymentStatus
from kassa.ledger import invariants
from kassa.ledger.verify import verify
from kassa.services import balances, merchants, payments, refunds
from kassa.services.context import Kassa
from tests.support.databases import migrated_database
from tests.support.properties import async_property, examples_guard

S = PaymentStatus
VISA, DECLINED, THREE_DS = ("pm_card_visa", "pm_card_chargeDeclined",
                            "pm_card_authenticationRequired")
CURRENCIES = ("usd", "jpy", "kwd")
MERCHANTS = 3
# KASSA_PROPERTY_EXAMPLES=500 for a longer hunt; 25 keeps the suite fast
MAX_EXAMPLES = int(os.environ.get("KASSA_PROPERTY_EXAMPLES", "25"))
EXAMPLES_RUN: list[int] = []  # one entry per example, checked by the examples_run fixture


# --------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Create:
    merchant: int
    currency: str
    amount: int
    payment_method: str | None
    capture_method: str
    confirm: bool


@dataclass(frozen=True)
class Confirm:
    payment: int
    payment_method: str | None


@dataclass(frozen=True)
class Capture:
    payment: int
    percent: int | None  # of the amount; None = everything capturable; > 100 = too much


@dataclass(frozen=True)
class Cancel:
    payment: int
    reason: str | None


@dataclass(frozen=True)
class RefundOp:
    payment: int
    percent: int | None  # of the amount; None = everything refundable


Op = Create | Confirm | Capture | Cancel | RefundOp

payment_ref = st.integers(0, 7)
percent = st.one_of(st.none(), st.integers(1, 130))  # > 100: more than allowed
card = st.sampled_from([VISA, VISA, VISA, DECLINED, THREE_DS])
create_op = st.builds(
    Create, merchant=st.integers(0, MERCHANTS - 1), currency=st.sampled_from(CURRENCIES),
    amount=st.one_of(st.integers(1, 60), st.integers(1, 200_000)),  # tiny: fee == amount
    payment_method=st.sampled_from([VISA, VISA, VISA, VISA, DECLINED, THREE_DS, None]),
    capture_method=st.sampled_from(["automatic", "manual"]),
    confirm=st.sampled_from([True, True, False]))
operation = st.one_of(
    create_op,
    st.builds(Confirm, payment=payment_ref, payment_method=st.one_of(st.none(), card)),
    st.builds(Capture, payment=payment_ref, percent=percent),
    st.builds(Capture, payment=payment_ref, percent=percent),
    st.builds(Cancel, payment=payment_ref,
              reason=st.sampled_from([None, "duplicate", "requested_by_customer"])),
    st.builds(RefundOp, payment=payment_ref, percent=percent),
    st.builds(RefundOp, payment=payment_ref, percent=percent),
)
# a few payments first, then anything (including more payments)
history = st.tuples(st.lists(create_op, min_size=2, max_size=6),
                    st.lists(operation, min_size=4, max_size=24)).map(lambda t: t[0] + t[1])


# --------------------------------------------------------------------- the model


@dataclass
class Expected:
    """What the payment must look like, predicted from the operations alone."""

    id: str
    merchant_id: str
    currency: str
    amount: int
    capture_method: str
    status: S
    payment_method: str | None
    capturable: int = 0
    received: int = 0
    refunded: int = 0
    held: bool = False  # a manual authorisation put a hold on the ledger

    def authorised_with(self, payment_method: str) -> type[Exception] | None:
        """Apply an authorisation with this card; return the error confirm raises."""
        self.payment_method = payment_method
        if payment_method == DECLINED:
            self.status, self.payment_method = S.REQUIRES_PAYMENT_METHOD, None
            return CardError
        if payment_method == THREE_DS:
            self.status = S.REQUIRES_ACTION
        elif self.capture_method == "automatic":
            self.status, self.received = S.SUCCEEDED, self.amount
        else:
            self.status, self.capturable, self.held = S.REQUIRES_CAPTURE, self.amount, True
        return None


def part(amount: int, pct: int | None) -> int | None:
    return None if pct is None else max(1, amount * pct // 100)


@dataclass
class History:
    kassa: Kassa
    merchant_ids: list[str]
    payments: list[Expected]

    def pick(self, ref: int) -> Expected | None:
        return self.payments[ref % len(self.payments)] if self.payments else None


async def current(k: Kassa, e: Expected) -> dict[str, Any]:
    return await retrieved(k, e.merchant_id, e.id)


async def retrieved(k: Kassa, merchant_id: str, payment_id: str) -> dict[str, Any]:
    """The intent as the API shows it, with the refunded amount kassa counts on it (Stripe
    shows that on the charge, not the intent)."""
    p = await payments.load(k, merchant_id=merchant_id, payment_id=payment_id)
    return {**await payments.retrieve(k, merchant_id=merchant_id, payment_id=payment_id),
            "amount_refunded": p.amount_refunded}


def assert_matches(row: dict[str, Any], e: Expected, op: Op) -> None:
    got = (row["status"], row["amount_capturable"], row["amount_received"],
           row["amount_refunded"], row["payment_method"])
    want = (e.status.value, e.capturable, e.received, e.refunded, e.payment_method)
    assert got == want, f"after {op}: (status, capturable, received, refunded, pm) {got} != {want}"


async def expect(error: type[Exception] | None, call: Any) -> Any:
    """Await ``call``; it must raise exactly ``error`` (or nothing when None)."""
    if error is None:
        return await call
    with pytest.raises(error) as exc:
        await call
    if error is InvalidRequest:  # AmountError is an InvalidRequest too; either is fine
        assert isinstance(exc.value, InvalidRequest)
    return exc.value


async def apply(h: History, op: Op) -> None:
    k = h.kassa
    if isinstance(op, Create):
        await create(h, op)
        return
    e = h.pick(op.payment)
    if e is None:
        return
    before = await current(k, e)
    error: type[Exception] | None = None

    if isinstance(op, Confirm):
        if e.status in (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION):
            card_ = op.payment_method or e.payment_method
            error = InvalidRequest if card_ is None else e.authorised_with(card_)
        else:
            # requires_action: the customer never authenticated (same card), or a new card
            # cannot replace an open attempt; requires_capture: never authorise twice
            error = IllegalTransition
        await expect(error, payments.confirm(k, merchant_id=e.merchant_id, payment_id=e.id,
                                             payment_method=op.payment_method))

    elif isinstance(op, Capture):
        amount = part(e.amount, op.percent)
        if e.status is not S.REQUIRES_CAPTURE:
            error = IllegalTransition
        elif amount is not None and amount > e.capturable:
            error = AmountError
        else:
            e.status, e.received, e.capturable = S.SUCCEEDED, amount or e.capturable, 0
        await expect(error, payments.capture(k, merchant_id=e.merchant_id, payment_id=e.id,
                                             amount_to_capture=amount))

    elif isinstance(op, Cancel):
        if e.status in CANCELABLE:
            e.status, e.capturable = S.CANCELED, 0
        else:
            error = IllegalTransition
        await expect(error, payments.cancel(k, merchant_id=e.merchant_id, payment_id=e.id,
                                            cancellation_reason=op.reason))

    else:
        amount = part(e.amount, op.percent)
        refundable = e.received - e.refunded
        if e.status is not S.SUCCEEDED or refundable == 0:
            error = InvalidRequest
        elif amount is not None and amount > refundable:
            error = AmountError
        result = await expect(error, refunds.create(k, merchant_id=e.merchant_id,
                                                    payment_intent=e.id, amount=amount))
        if error is None:
            assert result["status"] == "succeeded", result
            assert result["amount"] == (amount or refundable)
            e.refunded += result["amount"]

    event(f"{type(op).__name__} from {before['status']}: {error.__name__ if error else 'ok'}")
    after = await current(k, e)
    if error is not None and error is not CardError:
        assert after == before, f"{op} raised {error.__name__} but changed the payment"
    assert_matches(after, e, op)


async def create(h: History, op: Create) -> None:
    k = h.kassa
    merchant_id = h.merchant_ids[op.merchant]
    call = payments.create(k, merchant_id=merchant_id, amount=op.amount, currency=op.currency,
                           capture_method=op.capture_method, payment_method=op.payment_method,
                           confirm=op.confirm)
    if op.confirm and op.payment_method is None:
        await expect(InvalidRequest, call)
        event("Create: InvalidRequest")
        return
    e = Expected(id="", merchant_id=merchant_id, currency=op.currency, amount=op.amount,
                 capture_method=op.capture_method, payment_method=op.payment_method,
                 status=S.REQUIRES_CONFIRMATION if op.payment_method
                 else S.REQUIRES_PAYMENT_METHOD)
    error = e.authorised_with(op.payment_method) if op.confirm and op.payment_method else None
    result = await expect(error, call)
    event(f"Create: {error.__name__ if error else 'ok'}")
    e.id = result.payment_intent["id"] if isinstance(result, CardError) else result["id"]
    h.payments.append(e)
    assert_matches(await current(k, e), e, op)


# --------------------------------------------------------------------- invariants


async def check_invariants(h: History) -> None:
    k = h.kassa
    pool = k.pool
    ids = [e.id for e in h.payments]

    # money is conserved: every currency and layer sums to zero, and verify agrees
    for row in await invariants.trial_balance(pool):
        assert row["total"] == 0, dict(row)
    report = await verify(pool)
    assert report.ok, report.problems

    rows = {r["id"]: r for r in await pool.fetch(
        "SELECT id, amount, status, amount_capturable, amount_received, amount_refunded"
        " FROM payment_intents WHERE id = ANY($1::text[])", ids)}
    captured = dict(await pool.fetch(
        "SELECT t.source_id, sum(e.amount)::bigint FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " WHERE t.kind = 'capture' AND e.layer = 'posted' AND e.account LIKE 'psp:%'"
        " AND e.amount > 0 AND t.source_id = ANY($1::text[]) GROUP BY 1", ids))
    refunded = dict(await pool.fetch(
        "SELECT r.payment_intent_id, -sum(e.amount)::bigint FROM refunds r"
        " JOIN ledger_transactions t ON t.source_id = r.id AND t.kind = 'refund'"
        " JOIN ledger_entries e ON e.transaction_id = t.id AND e.account LIKE 'psp:%'"
        " WHERE r.payment_intent_id = ANY($1::text[]) GROUP BY 1", ids))
    for e in h.payments:
        p = rows[e.id]
        assert p["status"] != S.PROCESSING.value, e
        assert 0 <= p["amount_received"] <= p["amount"]  # captured <= authorised
        assert 0 <= p["amount_refunded"] <= p["amount_received"]  # refunded <= captured
        assert captured.get(e.id, 0) == p["amount_received"] == e.received
        assert refunded.get(e.id, 0) == p["amount_refunded"] == e.refunded

    # each merchant's balance is its balance transactions, and captures - fees - refunds
    expected: dict[str, dict[str, int]] = {m: defaultdict(int) for m in h.merchant_ids}
    on_hold: dict[str, dict[str, int]] = {m: defaultdict(int) for m in h.merchant_ids}
    for e in h.payments:
        if e.received:
            fee = k.fees.fee_for(Money(e.received, e.currency)).minor
            expected[e.merchant_id][e.currency] += e.received - fee - e.refunded
        on_hold[e.merchant_id][e.currency] += e.capturable
    for merchant_id in h.merchant_ids:
        b = await balances.balance(k, merchant_id=merchant_id)
        total: dict[str, int] = defaultdict(int)
        for part_ in (*b["available"], *b["pending"]):
            total[part_["currency"]] += part_["amount"]
        bt = dict(await pool.fetch(
            "SELECT currency, sum(net)::bigint FROM balance_transactions"
            " WHERE merchant_id = $1 GROUP BY 1", merchant_id))
        nonzero = {c: v for c, v in total.items() if v}
        assert nonzero == {c: v for c, v in bt.items() if v}, (merchant_id, b, bt)
        assert nonzero == {c: v for c, v in expected[merchant_id].items() if v}
        # open authorisations are exactly the merchant's pending-layer liability
        held = dict(await pool.fetch(
            "SELECT currency, -sum(amount)::bigint FROM ledger_entries"
            " WHERE account = $1 AND layer = 'pending' GROUP BY 1",
            f"merchant:{merchant_id}:pending"))
        assert {c: v for c, v in held.items() if v} == {
            c: v for c, v in on_hold[merchant_id].items() if v}

    # one hold per manual authorisation, resolved at most once, and exactly once when its
    # payment finished (captured or voided)
    holds = await pool.fetch(
        "SELECT a.payment_intent_id, h.source_id,"
        " (SELECT count(*) FROM ledger_transactions r WHERE r.hold_ref = h.source_id"
        "  AND r.kind IN ('capture', 'authorization_release')) AS resolutions"
        " FROM ledger_transactions h JOIN attempts a ON a.id = h.source_id"
        " WHERE h.kind = 'authorization_hold' AND a.payment_intent_id = ANY($1::text[])", ids)
    assert Counter(r["payment_intent_id"] for r in holds) == Counter(
        {e.id: 1 for e in h.payments if e.held})
    by_payment = {e.id: e for e in h.payments}
    for hold in holds:
        e = by_payment[hold["payment_intent_id"]]
        assert hold["resolutions"] <= 1, dict(hold)
        finished = e.status in (S.SUCCEEDED, S.CANCELED)
        assert hold["resolutions"] == (1 if finished else 0), (dict(hold), e)


# --------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
async def own_kassa(server_url: str, settings: Settings) -> AsyncIterator[Kassa]:
    with migrated_database(server_url, "kassa_property") as url:
        k, close = await bootstrap.build(settings, url, pool_size=6)
        try:
            yield k
        finally:
            await close()


@pytest.fixture(scope="module")
def examples_run() -> Iterator[list[int]]:
    yield from examples_guard(EXAMPLES_RUN, MAX_EXAMPLES)


@pytest.mark.slow
@async_property(MAX_EXAMPLES)
@given(ops=history)
async def test_money_is_conserved(own_kassa: Kassa, examples_run: list[int],
                                  ops: list[Op]) -> None:
    examples_run.append(len(ops))
    h = History(kassa=own_kassa, merchant_ids=[
        (await merchants.create_merchant(own_kassa, name=f"property {n}"))["merchant_id"]
        for n in range(MERCHANTS)], payments=[])
    for op in ops:
        await apply(h, op)
    await check_invariants(h)


# --------------------------------------------------------------------- regressions


@pytest.fixture
async def scratch_kassa(server_url: str, settings: Settings) -> AsyncIterator[Kassa]:
    """kassa on a throw-away database: a regression would leave payments stuck."""
    with migrated_database(server_url, "kassa_property") as url:
        k, close = await bootstrap.build(settings, url, pool_size=8)
        try:
            yield k
        finally:
            await close()


async def test_confirming_an_authorised_payment_is_refused(scratch_kassa: Kassa) -> None:
    """Was: a second authorisation at the PSP, then UniqueViolationError (500) and the
    payment stuck in processing with a started attempt."""
    k = scratch_kassa
    m = (await merchants.create_merchant(k, name="regression"))["merchant_id"]
    pi = await payments.create(k, merchant_id=m, amount=1000, currency="usd",
                               payment_method=VISA, capture_method="manual", confirm=True)
    assert pi["status"] == "requires_capture"
    with pytest.raises(IllegalTransition):
        await payments.confirm(k, merchant_id=m, payment_id=pi["id"])
    assert await payments.retrieve(k, merchant_id=m, payment_id=pi["id"]) == pi
    assert await k.pool.fetchval(
        "SELECT count(*) FROM attempts WHERE payment_intent_id = $1", pi["id"]) == 1
    await payments.capture(k, merchant_id=m, payment_id=pi["id"], amount_to_capture=400)
    assert (await verify(k.pool)).ok


async def test_a_new_card_cannot_replace_an_open_3ds_attempt(scratch_kassa: Kassa) -> None:
    """Was: the new card was silently ignored and a second authorisation was sent for the
    old card, leaving the first attempt open in requires_action for ever."""
    k = scratch_kassa
    m = (await merchants.create_merchant(k, name="regression"))["merchant_id"]
    pi = await payments.create(k, merchant_id=m, amount=1000, currency="usd",
                               payment_method=THREE_DS, confirm=True)
    assert pi["status"] == "requires_action"
    with pytest.raises(IllegalTransition):
        await payments.confirm(k, merchant_id=m, payment_id=pi["id"], payment_method=VISA)
    assert await payments.retrieve(k, merchant_id=m, payment_id=pi["id"]) == pi
    assert await k.pool.fetchval(
        "SELECT count(*) FROM attempts WHERE payment_intent_id = $1", pi["id"]) == 1
    # cancelling closes the open attempt
    await payments.cancel(k, merchant_id=m, payment_id=pi["id"])
    assert await k.pool.fetchval(
        "SELECT count(*) FROM attempts WHERE payment_intent_id = $1"
        " AND status IN ('started', 'unknown', 'requires_action')", pi["id"]) == 0


# --------------------------------------------------------------------- races


async def test_concurrent_partial_refunds_never_exceed_what_was_captured(scratch_kassa: Kassa
                                                                         ) -> None:
    k = scratch_kassa
    m = (await merchants.create_merchant(k, name="race"))["merchant_id"]
    pi = await payments.create(k, merchant_id=m, amount=10_000, currency="usd",
                               payment_method=VISA, capture_method="manual", confirm=True)
    await payments.capture(k, merchant_id=m, payment_id=pi["id"], amount_to_capture=7_000)
    results = await asyncio.gather(
        *(refunds.create(k, merchant_id=m, payment_intent=pi["id"], amount=1_500)
          for _ in range(6)), return_exceptions=True)
    ok = [r for r in results if isinstance(r, dict)]
    errors = [r for r in results if not isinstance(r, dict)]
    assert all(isinstance(e, InvalidRequest | ConcurrentModification) for e in errors), errors
    assert 1 <= len(ok) <= 4  # 4 x 1,500 <= 7,000 < 5 x 1,500
    assert all(r["status"] == "succeeded" for r in ok)
    after = await retrieved(k, m, pi["id"])
    assert after["amount_refunded"] == 1_500 * len(ok) <= after["amount_received"] == 7_000
    report = await verify(k.pool)
    assert report.ok, report.problems


async def test_capture_racing_cancel_resolves_the_hold_once(scratch_kassa: Kassa) -> None:
    k = scratch_kassa
    m = (await merchants.create_merchant(k, name="race"))["merchant_id"]
    for _ in range(5):
        pi = await payments.create(k, merchant_id=m, amount=5_000, currency="jpy",
                                   payment_method=VISA, capture_method="manual", confirm=True)
        capture, cancel = await asyncio.gather(
            payments.capture(k, merchant_id=m, payment_id=pi["id"]),
            payments.cancel(k, merchant_id=m, payment_id=pi["id"]), return_exceptions=True)
        outcomes = [r for r in (capture, cancel) if isinstance(r, dict)]
        losers = [r for r in (capture, cancel) if not isinstance(r, dict)]
        assert len(outcomes) == 1, (capture, cancel)
        assert all(isinstance(e, IllegalTransition | ConcurrentModification) for e in losers)
        after = await payments.retrieve(k, merchant_id=m, payment_id=pi["id"])
        assert after["status"] == outcomes[0]["status"] in ("succeeded", "canceled")
        resolutions = await k.pool.fetchval(
            "SELECT count(*) FROM ledger_transactions WHERE hold_ref = $1",
            pi["latest_charge"])
        assert resolutions == 1
    report = await verify(k.pool)
    assert report.ok, report.problems
