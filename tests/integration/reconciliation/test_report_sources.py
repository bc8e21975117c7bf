"""The daily pull's Stripe and Adyen report sources over loopback: Stripe's Reporting API
(a recorded-contract fake, tests/support/report_fakes.py: localstripe has none) — report
type checked, report run created over the day, polled, its file downloaded with the secret
key — and Adyen's settlement details file behind the report user's basic auth; each pulled
day becomes one run read by that PSP's parser; a day not published yet, or refused
credentials, is a failed try, not a run."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from pydantic import SecretStr

from kassa import bootstrap
from kassa.config import Settings
from kassa.psp.adyen import AdyenSettings
from kassa.psp.base import ReportUnavailable
from kassa.psp.stripe import StripeSettings
from kassa.psp.stripe.reports import COLUMNS, StripeSettlementReports
from kassa.reconciliation.reports import PARSERS
from kassa.services.reconciliation_pull import PullPolicy, day_bounds, pull_settlement_reports
from tests.support.report_fakes import AdyenReports, StripeReporting, serving

DAY = date(2026, 11, 2)
KEY = "sk_test_" + "r" * 24


def stripe_rows() -> list[dict[str, str]]:
    start, _ = day_bounds(DAY)
    return [
        {"_created": str(start + 60), "balance_transaction_id": "txn_1",
         "created_utc": "2026-11-02 00:01:00", "currency": "usd", "gross": "20.00",
         "fee": "0.88", "net": "19.12", "reporting_category": "charge", "source_id": "ch_1",
         "charge_id": "ch_1", "payment_intent_id": "pi_1",
         "payment_metadata[kassa_attempt]": "att_1"},
        {"_created": str(start + 120), "balance_transaction_id": "txn_2",
         "created_utc": "2026-11-02 00:02:00", "currency": "jpy", "gross": "-500",
         "fee": "0", "net": "-500", "reporting_category": "refund", "source_id": "re_2"},
        {"_created": str(start + 86_400 + 5), "balance_transaction_id": "txn_next_day",
         "created_utc": "2026-11-03 00:00:05", "currency": "usd", "gross": "1.00",
         "fee": "0.33", "net": "0.67", "reporting_category": "charge", "source_id": "ch_3"}]


async def test_stripe_report_run_is_created_polled_and_downloaded(tmp_path):
    _, end = day_bounds(DAY)
    fake = StripeReporting(secret_key=KEY, data_available_end=end, rows=stripe_rows())
    with serving(fake.app()) as url:
        fake.base_url = url
        settings = StripeSettings(secret_key=SecretStr(KEY), api_base=url, files_base=url,
                                  report_poll_seconds=0.01)
        async with httpx.AsyncClient() as client:
            source = StripeSettlementReports(client, settings)
            await source.download(day=DAY, into=tmp_path / "stripe.csv")
            # the data does not reach the end of the next day yet: not published
            with pytest.raises(ReportUnavailable, match="not published yet"):
                await source.download(day=DAY + timedelta(days=1), into=tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
    created = next(p for m, path, p in fake.requests if m == "POST")
    start, end = day_bounds(DAY)
    assert created["report_type"] == ["balance_change_from_activity.itemized.3"]
    assert created["parameters[interval_start]"] == [str(start)]
    assert created["parameters[interval_end]"] == [str(end)]
    assert created["parameters[columns][]"] == list(COLUMNS)
    polls = [path for m, path, _ in fake.requests if path.startswith("/v1/reporting/report_runs/")]
    assert len(polls) == 2  # pending once, then succeeded
    with (tmp_path / "stripe.csv").open() as f:
        rows = list(PARSERS["stripe"].parse(f))
    # the day only, in minor units (Stripe's file is in major units; JPY has none)
    assert [(r.category.value, r.psp_reference, r.kassa_reference, r.gross.minor, r.fee.minor,
             r.gross.currency) for r in rows] == [
        ("charge", "pi_1", "att_1", 2000, 88, "usd"), ("refund", "re_2", None, -500, 0, "jpy")]


async def test_a_stripe_file_url_off_stripe_gets_no_secret_key(tmp_path):
    _, end = day_bounds(DAY)
    fake = StripeReporting(secret_key=KEY, data_available_end=end, rows=stripe_rows(),
                           polls_before_success=1)
    with serving(fake.app()) as url:
        fake.base_url = "http://elsewhere.invalid"
        settings = StripeSettings(secret_key=SecretStr(KEY), api_base=url, files_base=url,
                                  report_poll_seconds=0.01)
        async with httpx.AsyncClient() as client:
            with pytest.raises(ReportUnavailable, match="not at a Stripe host"):
                await StripeSettlementReports(client, settings).download(
                    day=DAY, into=tmp_path / "s.csv")


ADYEN_REPORT = (
    # the columns in another order than Adyen's default: read by header name
    "Batch Number,Type,Merchant Reference,Psp Reference,Creation Date,Gross Currency,"
    "Gross Credit (GC),Gross Debit (GC),Net Currency,Net Credit (NC),Net Debit (NC),"
    "Commission (NC)\n"
    "7,Settled,att_a,8815000000000001,2026-11-02 10:00:00,EUR,10.00,,EUR,9.70,,0.30\n"
    "7,Refunded,att_b,8815000000000002,2026-11-02 11:00:00,EUR,,2.00,EUR,,2.00,\n"
    "7,MerchantPayout,,,2026-11-02 23:00:00,EUR,,,EUR,,7.70,\n")


async def test_adyen_settlement_details_are_pulled_with_basic_auth(world, tmp_path):
    k, _, _ = world
    fake = AdyenReports(username="report_123@Company.Kassa", password="s3cret", files={
        "KassaECOM/settlement_detail_report_2026_11_02.csv": ADYEN_REPORT})
    with serving(fake.app()) as url:
        template = (f"{url}/reports/download/MerchantAccount/KassaECOM/"
                    "settlement_detail_report_{day:%Y_%m_%d}.csv")
        adyen = AdyenSettings(api_key=SecretStr("k"), merchant_account="KassaECOM",
                              hmac_keys=SecretStr("00" * 32), settlement_report_url=template,
                              report_username="report_123@Company.Kassa",
                              report_password=SecretStr("s3cret"))
        wrong = adyen.model_copy(update={"report_password": SecretStr("nope")})
        async with httpx.AsyncClient() as client:
            sources = bootstrap.settlement_report_sources(
                Settings(env="test"), client, adyen=adyen,
                stripe=StripeSettings(secret_key=None))
            assert sorted(sources) == ["adyen", "simulator"]
            policy = PullPolicy(reports_dir=tmp_path, catch_up_days=2)
            # Nov 1 has no file (404, tried again later); Nov 2 is imported
            assert await pull_settlement_reports(k, sources={"adyen": sources["adyen"]},
                                                 policy=policy, worker="w",
                                                 today=DAY + timedelta(days=1)) == 1
            refused = bootstrap.settlement_report_sources(
                Settings(env="test"), client, adyen=wrong,
                stripe=StripeSettings(secret_key=None))["adyen"]
            with pytest.raises(ReportUnavailable, match="HTTP 401"):
                await refused.download(day=DAY, into=tmp_path / "refused.csv")
    pulls = {r["report_date"]: r for r in await k.pool.fetch(
        "SELECT * FROM reconciliation_pulls WHERE psp = 'adyen'")}
    assert pulls[DAY - timedelta(days=1)]["status"] == "failed"
    assert "HTTP 404" in pulls[DAY - timedelta(days=1)]["failure"]
    run = await k.pool.fetchrow("SELECT * FROM reconciliation_runs WHERE id = $1",
                                pulls[DAY]["run_id"])
    assert (run["format"], run["rows_read"]) == ("adyen", 2)
    # kassa never saw these payments: each row is missing in kassa, nothing is posted
    kinds = await k.pool.fetch("SELECT kind FROM reconciliation_discrepancies"
                               " WHERE run_id = $1", run["id"])
    assert [r["kind"] for r in kinds] == ["missing_in_kassa"] * 2
    assert (run["covers_from"], run["covers_to"]) == day_bounds(DAY)


def test_an_adyen_report_url_naming_another_field_is_refused_at_start_up():
    with pytest.raises(ValueError, match="may name only"):
        AdyenSettings(settlement_report_url="https://ca-test.adyen.com/{batch}.csv")


async def test_a_stripe_day_is_pulled_into_one_run(world, tmp_path):
    k, _, _ = world
    _, end = day_bounds(DAY)
    fake = StripeReporting(secret_key=KEY, data_available_end=end, rows=stripe_rows())
    with serving(fake.app()) as url:
        fake.base_url = url
        stripe = StripeSettings(secret_key=SecretStr(KEY), api_base=url, files_base=url,
                                report_poll_seconds=0.01)
        async with httpx.AsyncClient() as client:
            sources = bootstrap.settlement_report_sources(Settings(env="test"), client,
                                                          stripe=stripe)
            policy = PullPolicy(reports_dir=tmp_path, catch_up_days=2)
            pulled = [await pull_settlement_reports(
                k, sources={"stripe": sources["stripe"]}, policy=policy, worker=w,
                today=DAY + timedelta(days=2)) for w in ("a", "b")]
    # Nov 2 is imported; Nov 3 is past the report type's data (not published yet)
    assert pulled == [1, 0]
    pulls = {r["report_date"]: r for r in await k.pool.fetch(
        "SELECT * FROM reconciliation_pulls WHERE psp = 'stripe'")}
    assert pulls[DAY + timedelta(days=1)]["status"] == "failed"
    run = await k.pool.fetchrow("SELECT * FROM reconciliation_runs WHERE id = $1",
                                pulls[DAY]["run_id"])
    assert (run["format"], run["rows_read"], run["discrepancies"]) == ("stripe", 2, 2)
    assert sum(1 for m, _, _ in fake.requests if m == "POST") == 1  # one report run
