"""The reconciliation exports an operator or accountant reads (``kassa reconcile report``):
a run's report (its match summary and each discrepancy), a merchant's settlement over a
period (gross, fees, refunds, disputes, net, payouts per currency, from the ledger's posted
entries), and a per-day summary per PSP account (the day's pull, rows read and matched,
discrepancies by kind and still open, the settlement posted, the PSP receivable left at the
day's end). Each is a JSON-ready dict; reconciliation/exports.py turns it into CSV rows or a
page of text. Nothing here is stored: every figure is summed from the ledger and the runs."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

from kassa.db import reconciliation_pulls as pulls_db
from kassa.db import reconciliation_reports as reports_db
from kassa.domain.errors import InvalidRequest, NotFound
from kassa.domain.reconciliation import DiscrepancyKind
from kassa.representations.reconciliation import discrepancy as render_discrepancy
from kassa.services.context import Kassa
from kassa.services.reconciliation import retrieve_run
from kassa.services.reconciliation_pull import day_bounds

KINDS = tuple(k.value for k in DiscrepancyKind)
MAX_PERIOD_DAYS = 366


async def run_report(kassa: Kassa, *, run_id: str) -> dict[str, Any]:
    run = await retrieve_run(kassa, run_id=run_id)
    found = [render_discrepancy(r) for r in await reports_db.run_discrepancies(kassa.pool,
                                                                              run_id)]
    by_kind = Counter(d["kind"] for d in found)
    by_resolution = Counter(d["resolution"]["status"] for d in found)
    # gross is in the rows' currency (kassa's receivable); settlement_gross, fee and net
    # in the currency the PSP paid in — the same one unless the PSP converted, at the rates
    # listed (kassa-side conversions never show here: the PSP charged and paid in one)
    settled = [{"currency": r["currency"], "matched_rows": r["matched_rows"],
                "posted_rows": r["posted_rows"], "gross": r["gross"],
                "settlement_currency": r["settlement_currency"],
                "settlement_gross": r["settlement_gross"], "fee": r["fee"],
                "net": r["settlement_gross"] - r["fee"],
                "exchange_rates": list(r["exchange_rates"])}
               for r in await reports_db.run_settled(kassa.pool, run_id)]
    return {"object": "reconciliation_report", "run": run, "summary": {
        "rows_read": run["rows_read"], "rows_matched": run["rows_matched"],
        "discrepancies": len(found), "by_kind": {k: by_kind.get(k, 0) for k in KINDS},
        "by_resolution": {s: by_resolution.get(s, 0)
                          for s in ("open", "auto_resolved", "resolved")},
        "settled": settled}, "discrepancies": found}


async def merchant_settlement(kassa: Kassa, *, merchant_id: str, start: date, end: date
                              ) -> dict[str, Any]:
    """``start`` to ``end``, both UTC days included."""
    if end < start:
        raise InvalidRequest("The period ends before it starts.", param="to")
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise InvalidRequest(f"A settlement report covers at most {MAX_PERIOD_DAYS} days.",
                             param="to")
    if not await reports_db.merchant_exists(kassa.pool, merchant_id):
        raise NotFound(f"No such merchant: '{merchant_id}'", param="merchant")
    lo, _ = day_bounds(start)
    _, hi = day_bounds(end)
    currencies = []
    for r in await reports_db.merchant_settlement(kassa.pool, merchant_id=merchant_id,
                                                  start=lo, end=hi):
        row = dict(r)
        # what the period left the merchant: its captures less kassa's fees, refunds and
        # disputes (with their fees); payouts are what was paid out of it
        row["net"] = row["gross"] - row["fees"] - row["refunds"] - row["disputes"]
        currencies.append(row)
    # the captures kassa converted into the merchant's settlement currency: each currency
    # row above is in the settlement currency; these say from what and at which rates
    conversions = [{"currency": r["currency"], "presentment_currency":
                    r["presentment_currency"], "charges": r["charges"],
                    "presentment_gross": r["presentment_gross"], "gross": r["gross"],
                    "exchange_rates": list(r["exchange_rates"])}
                   for r in await reports_db.merchant_conversions(
                       kassa.pool, merchant_id=merchant_id, start=lo, end=hi)]
    return {"object": "settlement_report", "merchant": merchant_id,
            "from": start.isoformat(), "to": end.isoformat(), "currencies": currencies,
            "conversions": conversions}


async def daily_summary(kassa: Kassa, *, day: date) -> dict[str, Any]:
    start, end = day_bounds(day)
    pulls = {r["psp"]: r for r in await pulls_db.pulls_of_day(kassa.pool, day)}
    runs = await reports_db.runs_of_day(kassa.pool, day=day, start=start, end=end)
    run_ids = [r["id"] for r in runs]
    counts = await reports_db.discrepancy_counts(kassa.pool, run_ids)
    posted = await reports_db.settlement_posted(kassa.pool, run_ids)
    converted = await reports_db.conversions_posted(kassa.pool, run_ids)
    named = await reports_db.day_psps(kassa.pool, day=day, start=start, end=end)
    out = []
    for psp in sorted(set(kassa.psps) | set(named)):
        mine = [r for r in runs if r["psp"] == psp]
        kinds = {c["kind"]: c for c in counts if c["psp"] == psp}
        pull = pulls.get(psp)
        out.append({
            "psp": psp,
            "pull": None if pull is None else {
                "status": pull["status"], "tries": pull["tries"], "run": pull["run_id"],
                "failure": pull["failure"]},
            "runs": [r["id"] for r in mine],
            "rows_read": sum(r["rows_read"] for r in mine),
            "rows_matched": sum(r["rows_matched"] for r in mine),
            "discrepancies": {k: kinds[k]["n"] if k in kinds else 0 for k in KINDS},
            "open": sum(c["open"] for c in kinds.values()),
            # per currency, from the ledger: gross credited to the receivable, fees and
            # cash debited in it (a converted settlement's are in its settlement currency)
            "settlement_posted": [{"currency": p["currency"], "gross": p["gross"],
                                   "fee": p["fee"], "net": p["net"]}
                                  for p in posted if p["psp"] == psp],
            # the PSP's conversions among them: gross (currency) paid as settled
            # (settlement currency, fees included) at the PSP's rate, and the FX gain
            # (negative: loss) against that rate
            "conversions_posted": [{"currency": c["currency"], "gross": c["gross"],
                                    "settlement_currency": c["settlement_currency"],
                                    "settled": c["settled"],
                                    "exchange_rate": c["exchange_rate"],
                                    "fx_gain": c["fx_gain"]}
                                   for c in converted if c["psp"] == psp],
            "receivable_left": [{"currency": b["currency"], "amount": b["total"]}
                                for b in await reports_db.receivable_at(kassa.pool, psp=psp,
                                                                        end=end)
                                if b["total"]]})
    return {"object": "reconciliation_daily_summary", "date": day.isoformat(),
            "through": (day + timedelta(days=1)).isoformat(), "psps": out}
