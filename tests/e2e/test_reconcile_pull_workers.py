"""Two `kassa worker --role reconcile-pull` processes against one simulator process and one
database, as deployed: together they pull each due day once — one pull row per day, every
one imported, one run per distinct report — and leave the reports' files in
KASSA_RECONCILE_REPORTS_DIR."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg

from tests.support.databases import migrated_database
from tests.support.simulator_server import running_simulator_process


def test_two_pull_worker_processes_import_each_day_once(server_url, tmp_path):
    with migrated_database(server_url, "kassa_pull") as dsn, \
            running_simulator_process() as sim_url:
        env = {**os.environ, "KASSA_DATABASE_URL": dsn, "KASSA_SIMULATOR_URL": sim_url,
               "KASSA_HOME": str(tmp_path / "home"),
               "KASSA_RECONCILE_REPORTS_DIR": str(tmp_path / "reports"),
               "KASSA_RECONCILE_PULL_CATCH_UP_DAYS": "3"}
        logs = [(tmp_path / f"worker{i}.log").open("w") for i in range(2)]
        workers = [subprocess.Popen([sys.executable, "-m", "kassa.cli", "worker", "--role",
                                     "reconcile-pull"], env=env, stdout=log, stderr=log)
                   for log in logs]
        try:
            deadline = time.monotonic() + 90
            with psycopg.connect(dsn, autocommit=True) as db:
                while time.monotonic() < deadline:
                    imported = db.execute("SELECT count(*) FROM reconciliation_pulls WHERE"
                                          " status = 'imported'").fetchone()
                    if imported is not None and imported[0] >= 3:
                        break
                    assert all(w.poll() is None for w in workers), [
                        (tmp_path / f"worker{i}.log").read_text() for i in range(2)]
                    time.sleep(0.5)
                time.sleep(1.0)  # a late duplicate would show now
                pulls = db.execute("SELECT psp, report_date, status, tries FROM"
                                   " reconciliation_pulls ORDER BY report_date").fetchall()
                runs = db.execute("SELECT count(*) FROM reconciliation_runs").fetchone()
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(timeout=30)
            for log in logs:
                log.close()
    today = datetime.now(UTC).date()
    assert pulls == [("simulator", today - timedelta(days=n), "imported", 1) for n in (3, 2, 1)]
    assert runs == (3,)  # three days without a movement: a run each, checked for its day
    assert [w.returncode for w in workers] == [0, 0]
    files = sorted(p.name for p in (tmp_path / "reports" / "simulator").iterdir())
    assert files == [f"simulator_{today - timedelta(days=n)}.simulator.csv" for n in (3, 2, 1)]
