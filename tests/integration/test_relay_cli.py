"""`kassa relay status` and the relay role's refusal to start without Kafka."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from kassa.db import relay as relay_db
from kassa.services.context import Kassa


def kassa_cli(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KASSA_KAFKA_")}
    return subprocess.run([sys.executable, "-m", "kassa.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**env, "KASSA_DATABASE_URL": dsn})


async def test_relay_status_prints_position_published_and_backlog(kassa: Kassa, dsn: str):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    await relay_db.load_position(kassa.pool, name)
    await relay_db.save_position(kassa.pool, name=name, position=relay_db.Position(1, 1),
                                 published=3)
    total = await kassa.pool.fetchval(
        "SELECT count(*) FROM events WHERE (xid, seq) > ('1'::xid8, 1)")
    out = kassa_cli("relay", "status", dsn=dsn)
    assert out.returncode == 0, out.stderr
    [ours] = [r for r in json.loads(out.stdout) if r["name"] == name]
    assert (ours["xid"], ours["seq"], ours["published"], ours["backlog"]) == (1, 1, 3, total)


def test_relay_role_without_kafka_is_refused(dsn: str):
    out = kassa_cli("worker", "--role", "relay", dsn=dsn)
    assert out.returncode == 2
    assert "KASSA_KAFKA_BOOTSTRAP" in out.stderr
