"""A won dispute reconciled from a Stripe itemized or an Adyen settlement-details report.

Stripe writes the win as a balance transaction of reporting category ``dispute_reversal``
(the amount back, the dispute fee returned), Adyen as a ``ChargebackReversed`` row; both
are kassa's ``chargeback_reversal``. Before they were mapped the parsers skipped them, and
every won dispute became a false ``missing_at_psp``. Counted at both ends: the report's
rows for the payment and its dispute net to what kassa booked on bank:cash, and the PSP
receivable this payment put there ends at zero."""

from __future__ import annotations

import time

import pytest

from kassa.domain.money import Money
from kassa.ledger.verify import verify
from kassa.psp.simulator.settlement_report import PRICING, chargeback_fee
from kassa.services import reconciliation as recon
from tests.integration.psp.conftest import World
from tests.integration.psp.test_dispute_settlement_report import won_dispute


async def _balance(world: World, pattern: str) -> int:
    return int(await world.kassa.pool.fetchval(
        "SELECT coalesce(sum(amount), 0)::bigint FROM ledger_entries WHERE account LIKE $1",
        pattern))


CHARGE_FEE = PRICING.fee_for(Money(8_000, "usd")).minor  # the simulator's contract


def _stripe(auth_id: str, sim_dispute: str, fee: int, now: int) -> str:
    f, c = f"{fee / 100:.2f}", f"{CHARGE_FEE / 100:.2f}"
    return ("balance_transaction_id,created_utc,currency,gross,fee,reporting_category,"
            "source_id,payment_intent_id\n"
            f"txn_1,{now},usd,80.00,{c},charge,ch_1,{auth_id}\n"
            f"txn_2,{now},usd,-80.00,{f},dispute,{sim_dispute},\n"
            f"txn_3,{now},usd,80.00,-{f},dispute_reversal,{sim_dispute},\n")


def _adyen(auth_id: str, sim_dispute: str, fee: int, now: int) -> str:
    f, c = f"{(8_000 + fee) / 100:.2f}", f"{(8_000 - CHARGE_FEE) / 100:.2f}"
    day = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
    return ("Batch Number,Type,Merchant Reference,Psp Reference,Creation Date,Gross Currency,"
            "Gross Credit (GC),Gross Debit (GC),Net Currency,Net Credit (NC),Net Debit (NC)\n"
            f"9,Settled,,{auth_id},{day},USD,80.00,,USD,{c},\n"
            f"9,Chargeback,,{sim_dispute},{day},USD,,80.00,USD,,{f}\n"
            f"9,ChargebackReversed,,{sim_dispute},{day},USD,80.00,,USD,{f},\n"
            f"9,MerchantPayout,,,{day},USD,,,USD,,{c}\n")


@pytest.mark.parametrize("report_format", ["stripe", "adyen"])
async def test_a_won_dispute_is_reconciled_from_the_psps_own_format(
        world: World, tmp_path, report_format: str) -> None:
    receivable = await _balance(world, "psp:%:receivable")  # other tests' money too
    pi, auth_id, sim_dispute, d = await won_dispute(world)
    fee = chargeback_fee("usd")
    now = int(time.time())
    day = now - now % 86400
    text = (_stripe if report_format == "stripe" else _adyen)(auth_id, sim_dispute, fee, now)
    path = tmp_path / f"{report_format}.csv"
    path.write_text(text)
    # the capture, less the chargeback, plus its reversal: not yet paid by the PSP
    assert await _balance(world, "psp:%:receivable") - receivable == 8_000
    cash = await _balance(world, "bank:cash")

    run = await recon.import_report(world.kassa, psp="simulator", path=path,
                                    report_format=report_format, covers=(day, day + 86400))

    items = await world.kassa.pool.fetch(
        "SELECT category, problem, posted, gross, fee, psp_status FROM reconciliation_items"
        " WHERE run_id = $1 AND matched = $2 ORDER BY category", run["id"], d["id"])
    assert [(i["category"], i["problem"], i["posted"], i["gross"], i["fee"], i["psp_status"])
            for i in items] == [
        ("chargeback", None, True, -8_000, fee, "charged_back"),
        ("chargeback_reversal", None, True, 8_000, -fee, "reversed")], \
        [dict(i) for i in items]
    # (other tests' objects of the day, absent from this report, are theirs to explain)
    discrepancies = await world.kassa.pool.fetch(
        "SELECT kind, category, kassa_object FROM reconciliation_discrepancies"
        " WHERE run_id = $1 AND (kassa_object IN ($2, $3) OR kassa_object IS NULL)",
        run["id"], d["id"], pi["id"])
    assert [dict(x) for x in discrepancies] == []
    # both ends: the PSP paid the bank the charge's net and nothing for the won dispute
    assert await _balance(world, "bank:cash") - cash == 8_000 - CHARGE_FEE
    assert await _balance(world, "psp:%:receivable") == receivable  # this payment's: 0
    report = await verify(world.kassa.pool)
    assert report.ok, report.problems
