"""`kassa reconcile` and `kassa payouts review` as an operator runs them, against a real
database: a settlement report imported twice is one run; its discrepancies are listed and
resolved with who and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.databases import migrated_database

REPORT = ("type,psp_reference,merchant_reference,currency,gross,fee,net,status,created\n"
          "charge,sim_nobody_knows,att_unknown,usd,1000,25,975,captured,1796169600\n"
          "fee,,,usd,0,500,-500,,1796169600\n")


def kassa(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KASSA_DATABASE_URL": dsn}
    return subprocess.run([sys.executable, "-m", "kassa.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture
def private_dsn(server_url):
    with migrated_database(server_url, "kassa_recon_cli") as url:
        yield url


def test_import_twice_list_and_resolve(private_dsn, tmp_path):
    report = tmp_path / "2026-12-01.csv"
    report.write_text(REPORT)
    first = kassa("reconcile", "import", "--psp", "simulator", str(report), dsn=private_dsn)
    assert first.returncode == 0, first.stderr
    run = json.loads(first.stdout)
    assert (run["rows_read"], run["rows_matched"], run["discrepancies"]) == (2, 0, 1)
    assert run["source"]["name"] == "2026-12-01.csv"
    again = kassa("reconcile", "import", "--psp", "simulator", str(report), dsn=private_dsn)
    assert json.loads(again.stdout)["id"] == run["id"]  # the same file: the same run
    runs = kassa("reconcile", "runs", dsn=private_dsn)
    assert [json.loads(line)["id"] for line in runs.stdout.splitlines()] == [run["id"]]
    listed = kassa("reconcile", "discrepancies", run["id"], dsn=private_dsn)
    (found,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (found["kind"], found["psp_reference"]) == ("missing_in_kassa", "sim_nobody_knows")
    done = kassa("reconcile", "resolve", found["id"], "--by", "ops@example.com", "--why",
                 "test charge at the PSP, refunded there", dsn=private_dsn)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["resolution"]["by"] == "ops@example.com"
    twice = kassa("reconcile", "resolve", found["id"], "--by", "x", "--why", "y",
                  dsn=private_dsn)
    assert twice.returncode == 1 and "already resolved" in twice.stderr
    verify = kassa("ledger", "verify", dsn=private_dsn)
    assert verify.returncode == 0, verify.stderr  # the fee row's settlement balances


def test_a_file_that_is_not_a_report_is_refused_and_leaves_no_run(private_dsn, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("type,psp_reference\ncharge,sim_1\n")
    r = kassa("reconcile", "import", "--psp", "simulator", str(bad), dsn=private_dsn)
    assert r.returncode == 1 and "missing column" in r.stderr
    assert kassa("reconcile", "runs", dsn=private_dsn).stdout == ""


def test_payouts_review_lists_nothing_and_refuses_an_unknown_payout(private_dsn):
    assert kassa("payouts", "review", dsn=private_dsn).stdout == ""
    r = kassa("payouts", "review", "po_unknown", "--by", "me", "--why", "checked",
              dsn=private_dsn)
    assert r.returncode == 1 and "not held for review" in r.stderr
