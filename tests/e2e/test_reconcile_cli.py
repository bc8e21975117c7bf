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


def _on_a_tty(*args: str, dsn: str) -> tuple[int, str, str]:
    """Run kassa with stderr on a pseudo-terminal (as in an operator's shell); stdout piped."""
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "KASSA_DATABASE_URL": dsn, "COLUMNS": "160"}
    proc = subprocess.Popen([sys.executable, "-m", "kassa.cli", *args], stdout=subprocess.PIPE,
                            stderr=follower, text=True, env=env)
    os.close(follower)
    err = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        err += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    return proc.returncode, out, err.decode(errors="replace")


def test_a_long_import_shows_a_progress_bar_on_a_terminal_only(private_dsn, tmp_path):
    rows = 30_000  # the bar is updated every 10,000 rows
    report = tmp_path / "long.csv"
    with report.open("w") as f:
        f.write("type,psp_reference,merchant_reference,currency,gross,fee,net,status,created\n")
        for i in range(rows):
            f.write(f"fee,,,usd,0,{i + 1},-{i + 1},,{1796169600 + i}\n")
    code, out, err = _on_a_tty("reconcile", "import", "--psp", "simulator", str(report),
                               dsn=private_dsn)
    assert code == 0, err
    assert json.loads(out)["rows_read"] == rows  # stdout stays the run's JSON
    assert "importing long.csv" in err and "rows/s" in err and "ETA" in err
    assert f"{rows}/{rows}" in err  # the bar ends full, at the true count
    # on a pipe: nothing but the run
    again = kassa("reconcile", "import", "--psp", "simulator", str(report), dsn=private_dsn)
    assert again.returncode == 0 and again.stderr == ""


def test_reports_from_the_command_line(private_dsn, tmp_path):
    report = tmp_path / "2026-12-01.csv"
    report.write_text(REPORT)
    run = json.loads(kassa("reconcile", "import", "--psp", "simulator", str(report),
                           dsn=private_dsn).stdout)
    as_csv = kassa("reconcile", "report", "run", run["id"], "--format", "csv", dsn=private_dsn)
    assert as_csv.returncode == 0, as_csv.stderr
    lines = as_csv.stdout.splitlines()
    assert lines[0].startswith("record,run,psp,currency,matched_rows")
    # the fee row is posted (summary); the unknown charge is a discrepancy
    assert lines[1].startswith(f"summary,{run['id']},simulator,usd,0,1,0,500,-500,")
    assert lines[2].startswith(f"discrepancy,{run['id']},simulator,usd,")
    assert ",missing_in_kassa,charge," in lines[2] and len(lines) == 3
    as_json = json.loads(kassa("reconcile", "report", "run", run["id"], "--format", "json",
                               dsn=private_dsn).stdout)
    assert as_json["summary"]["by_kind"]["missing_in_kassa"] == 1
    day = kassa("reconcile", "report", "daily", "--date", "2026-12-02", dsn=private_dsn)
    assert day.returncode == 0, day.stderr
    assert "simulator: not pulled" in day.stdout
    assert "discrepancies 1: missing in kassa 1; still open 1" in day.stdout
    assert "PSP fees 5.00 USD, to the bank -5.00 USD" in day.stdout
    unknown = kassa("reconcile", "report", "settlement", "--merchant", "acct_nobody",
                    "--from", "2026-12-01", "--to", "2026-12-31", dsn=private_dsn)
    assert unknown.returncode == 1 and "No such merchant" in unknown.stderr
    bad = kassa("reconcile", "report", "daily", "--date", "yesterday", dsn=private_dsn)
    assert bad.returncode == 2 and "is not a date" in bad.stderr
    missing = kassa("reconcile", "report", "run", "recon_nope", dsn=private_dsn)
    assert missing.returncode == 1 and "No such reconciliation run" in missing.stderr
