"""The reconciliation exports as files: CSV rows (amounts in minor units, as the API, with
their currency) and the daily summary as a page of text an accountant reads (major units).
Pure formatting of what services/reconciliation_reports.py assembled."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from kassa.domain.currencies import to_major
from kassa.domain.money import Money

RUN_COLUMNS = ("record", "run", "psp", "currency", "matched_rows", "posted_rows",
               "settled_gross", "settled_fee", "settled_net", "discrepancy", "row_number",
               "kind", "category", "merchant", "psp_reference", "kassa_object",
               "kassa_amount", "psp_amount", "kassa_value", "psp_value", "resolution",
               "resolved_by", "resolution_how", "settlement_currency", "settlement_gross",
               "exchange_rates")
SETTLEMENT_COLUMNS = ("merchant", "from", "to", "currency", "charges", "capture_reversals",
                      "gross", "fees",
                      "refund_count", "refunds", "dispute_count", "disputes", "dispute_fees",
                      "net", "payout_count", "payouts", "converted_from", "exchange_rates")
DAILY_KINDS = ("missing_in_kassa", "missing_at_psp", "amount_mismatch", "fee_mismatch",
               "currency_mismatch", "status_mismatch")
DAILY_COLUMNS = ("date", "psp", "pull", "runs", "rows_read", "rows_matched", *DAILY_KINDS,
                 "open", "currency", "settled_gross", "settled_fee", "settled_net",
                 "receivable_left", "converted")


def to_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})
    return out.getvalue()


def run_rows(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``summary`` rows (per currency: matched, posted, settled), then a ``discrepancy`` row
    each. A summary's ``settled_gross`` is in ``currency``; its ``settled_fee`` and
    ``settled_net`` in ``settlement_currency`` (another one where the PSP converted, at
    ``exchange_rates``)."""
    run = report["run"]
    for s in report["summary"]["settled"]:
        yield {"record": "summary", "run": run["id"], "psp": run["psp"],
               "currency": s["currency"], "matched_rows": s["matched_rows"],
               "posted_rows": s["posted_rows"], "settled_gross": s["gross"],
               "settled_fee": s["fee"], "settled_net": s["net"],
               "settlement_currency": s["settlement_currency"],
               "settlement_gross": s["settlement_gross"],
               "exchange_rates": " ".join(s["exchange_rates"])}
    for d in report["discrepancies"]:
        yield {"record": "discrepancy", "run": run["id"], "psp": run["psp"],
               "currency": d["currency"], "discrepancy": d["id"],
               "row_number": d["row_number"], "kind": d["kind"], "category": d["category"],
               "merchant": d["merchant"], "psp_reference": d["psp_reference"],
               "kassa_object": d["kassa_object"], "kassa_amount": d["kassa_amount"],
               "psp_amount": d["psp_amount"], "kassa_value": d["kassa_value"],
               "psp_value": d["psp_value"], "resolution": d["resolution"]["status"],
               "resolved_by": d["resolution"]["by"], "resolution_how": d["resolution"]["how"]}


def settlement_rows(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One row per settlement currency; ``converted_from`` names the presentment currencies
    kassa converted into it, at ``exchange_rates``."""
    for c in report["currencies"]:
        into = [v for v in report.get("conversions", ()) if v["currency"] == c["currency"]]
        yield {"merchant": report["merchant"], "from": report["from"], "to": report["to"], **c,
               "converted_from": " ".join(v["presentment_currency"] for v in into),
               "exchange_rates": " ".join(sorted({r for v in into
                                                  for r in v["exchange_rates"]}))}


def daily_rows(summary: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One row per PSP account and currency (settled or still receivable); an account
    without either has one row without a currency. ``converted``: what the PSP's
    conversions took out of the currency (its gross) or paid into it (negative: what it paid
    for them), so settled_gross = settled_fee + settled_net + converted."""
    for p in summary["psps"]:
        base = {"date": summary["date"], "psp": p["psp"],
                "pull": p["pull"]["status"] if p["pull"] else "",
                "runs": " ".join(p["runs"]), "rows_read": p["rows_read"],
                "rows_matched": p["rows_matched"], **p["discrepancies"], "open": p["open"]}
        posted = {s["currency"]: s for s in p["settlement_posted"]}
        left = {b["currency"]: b["amount"] for b in p["receivable_left"]}
        converted: dict[str, int] = {}
        for c in p.get("conversions_posted", ()):
            converted[c["currency"]] = converted.get(c["currency"], 0) + c["gross"]
            converted[c["settlement_currency"]] = (converted.get(c["settlement_currency"], 0)
                                                   - c["settled"])
        currencies = sorted(set(posted) | set(left)) or [None]
        for ccy in currencies:
            s = posted.get(ccy or "", {})
            yield {**base, "currency": ccy, "settled_gross": s.get("gross", 0 if ccy else None),
                   "settled_fee": s.get("fee", 0 if ccy else None),
                   "settled_net": s.get("net", 0 if ccy else None),
                   "receivable_left": left.get(ccy or "", 0 if ccy else None),
                   "converted": converted.get(ccy or "", 0 if ccy else None)}


def _major(amount: int, currency: str) -> str:
    return f"{to_major(Money(amount, currency)):,} {currency.upper()}"


def daily_text(summary: dict[str, Any]) -> str:
    """The day per PSP account, in words and major units."""
    lines = [f"Reconciliation, {summary['date']} (UTC)", ""]
    for p in summary["psps"]:
        pull = p["pull"]
        if pull is None:
            state = "not pulled"
        else:
            tries = f"{pull['tries']} {'try' if pull['tries'] == 1 else 'tries'}"
            state = f"pulled ({pull['status']}, {tries})" + (
                f": {pull['failure']}" if pull["failure"] else "")
        lines.append(f"{p['psp']}: {state}")
        lines.append(f"  report rows read {p['rows_read']:,}, matched {p['rows_matched']:,}"
                     f" (runs: {', '.join(p['runs']) or 'none'})")
        found = {k: n for k, n in p["discrepancies"].items() if n}
        if found:
            listed = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in found.items())
            lines.append(f"  discrepancies {sum(found.values())}: {listed}; still open "
                         f"{p['open']}")
        else:
            lines.append("  discrepancies: none")
        for s in p["settlement_posted"]:
            lines.append(f"  settlement posted: gross {_major(s['gross'], s['currency'])},"
                         f" PSP fees {_major(s['fee'], s['currency'])}, to the bank"
                         f" {_major(s['net'], s['currency'])}")
        if not p["settlement_posted"]:
            lines.append("  settlement posted: nothing")
        for c in p.get("conversions_posted", ()):
            gain = c["fx_gain"]
            lines.append(f"  converted by the PSP: {_major(c['gross'], c['currency'])} paid as"
                         f" {_major(c['settled'], c['settlement_currency'])} (fees included)"
                         f" at {c['exchange_rate']}; FX {'gain' if gain >= 0 else 'loss'}"
                         f" {_major(abs(gain), c['settlement_currency'])}")
        left = ", ".join(_major(b["amount"], b["currency"]) for b in p["receivable_left"])
        lines.append(f"  PSP receivable left at the day's end: {left or 'zero'}")
        lines.append("")
    return "\n".join(lines)
