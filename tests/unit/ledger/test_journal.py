"""The journal (ledger/journal.py): each money event's posting is balanced, carries the
balance transaction the merchant sees for it, and both count the same money."""

from __future__ import annotations

from kassa.db import ops
from kassa.domain import payouts
from kassa.domain.money import Money
from kassa.domain.payments import Refund, RefundStatus
from kassa.domain.payouts import Payout, PayoutStatus
from kassa.ledger import journal

MID = "acct_j"


def merchant_net(post: ops.PostLedger) -> int:
    """What the posting credits the merchant's balance (available + pending), posted layer."""
    return -sum(e.amount.minor for e in post.posting.entries
                if e.account.startswith(f"merchant:{MID}:") and e.layer.value == "posted"
                and not e.account.endswith(":payouts_in_transit"))


def test_a_capture_carries_its_pending_charge_line_and_resolves_the_hold() -> None:
    post = journal.capture(merchant_id=MID, psp="simulator", gross=Money(1000, "usd"),
                           fee=Money(59, "usd"), held=Money(1000, "usd"), payment_id="pi_1",
                           charge_id="ch_1", bt_id="txn_1", now=10, available_on=99,
                           description="order 7")
    bt = post.balance_transaction
    assert bt is not None and (bt.type, bt.status, bt.source) == ("charge", "pending", "ch_1")
    assert (bt.amount, bt.fee, bt.available_on, bt.created) == (1000, 59, 99, 10)
    assert (post.source_id, post.hold_ref) == ("pi_1", "ch_1")
    assert merchant_net(post) == bt.amount - bt.fee
    wire = ops.wire([post])
    assert [o["op"] for o in wire] == ["post_ledger", "insert_balance_transaction"]
    no_hold = journal.capture(merchant_id=MID, psp="simulator", gross=Money(1000, "usd"),
                              fee=Money(59, "usd"), held=None, payment_id="pi_1",
                              charge_id=None, bt_id="txn_1", now=10, available_on=99,
                              description=None)
    assert no_hold.hold_ref is None and no_hold.balance_transaction is not None
    assert no_hold.balance_transaction.source == "pi_1"


def test_a_refund_and_its_failure_move_the_same_amount_both_ways() -> None:
    r = Refund(id="re_1", merchant_id=MID, payment_intent_id="pi_1", amount=Money(300, "eur"),
               status=RefundStatus.SUCCEEDED, created=1)
    out = journal.refund(r, psp="simulator", bt_id="txn_r", now=5)
    back = journal.refund_failure(r, psp="simulator", bt_id="txn_f", now=6)
    assert out.balance_transaction is not None and back.balance_transaction is not None
    assert (out.balance_transaction.amount, back.balance_transaction.amount) == (-300, 300)
    assert merchant_net(out) == -300 and merchant_net(back) == 300
    assert (out.balance_transaction.type, back.balance_transaction.type) == (
        "refund", "refund_failure")


def test_holds_availability_and_payouts() -> None:
    hold = journal.hold(merchant_id=MID, psp="simulator", amount=Money(500, "usd"),
                        attempt_id="att_1")
    release = journal.release_hold(merchant_id=MID, psp="simulator", held=Money(500, "usd"),
                                   charge_id="att_1")
    assert hold.balance_transaction is None and merchant_net(hold) == 0
    assert (release.source_id, release.hold_ref) == ("att_1", "att_1")
    avail = journal.make_available(merchant_id=MID, net=Money(941, "usd"), source_id="av_1")
    assert avail.balance_transaction is None and merchant_net(avail) == 0

    p = Payout(id="po_1", merchant_id=MID, amount=Money(700, "usd"),
               status=PayoutStatus.PENDING, created=1, arrival_date=0)
    made = journal.payout(p, payouts.create(merchant_id=MID, amount=p.amount), bt_id="txn_p",
                          now=3)
    assert made is not None and made.balance_transaction is not None
    assert (made.balance_transaction.amount, made.balance_transaction.description) == (
        -700, "Payout")
    assert merchant_net(made) == -700
    sent = payouts.move(merchant_id=MID, amount=p.amount, src=PayoutStatus.PENDING,
                        dst=PayoutStatus.IN_TRANSIT)
    assert journal.payout(p, sent, bt_id=None, now=4) is None  # moves no money
