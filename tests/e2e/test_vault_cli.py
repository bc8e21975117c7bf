"""`kassa vault rotate-kek` as an operator runs it: a new version in the keyring file, every
data key re-wrapped with a progress bar, the old version retired; and `kassa vault` refuses
to start with a keyring that did not wrap its keys."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from kassa.vault.keyring import LocalKeyring, new_keyring_file
from tests.integration.test_database_roles import kassa_cli
from tests.support.databases import migrated_database
from tests.support.processes import free_port, kassa_process, wait_healthy
from tests.support.vault import CHECKOUT_TOKEN_SECRET, FORWARD_TOKEN, keyring_text, tokenise

pytestmark = pytest.mark.slow


def _env(db: str, home: Path, kek: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KASSA_")}
    return {**env, "KASSA_DATABASE_URL": db, "KASSA_HOME": str(home), "KASSA_ENV": "test",
            "KASSA_VAULT_KEK_FILE": str(kek), "KASSA_VAULT_PORT": str(port),
            "KASSA_VAULT_FORWARD_SECRET": FORWARD_TOKEN, "KASSA_VAULT_KEK_REFRESH_SECONDS": "0.2",
            "KASSA_VAULT_FORWARD_PORT": str(free_port()),
            "KASSA_CHECKOUT_TOKEN_SECRET": CHECKOUT_TOKEN_SECRET,
            "KASSA_API_KEY_CACHE_SECONDS": "0"}


async def test_rotate_kek_rewraps_everything_and_retires_the_old_version(server_url, tmp_path):
    kek = tmp_path / "kek"
    new_keyring_file(kek)
    port = free_port()
    with migrated_database(server_url, "kassa_vault_cli") as db:
        env = _env(db, tmp_path / "home", kek, port)
        shop = json.loads(kassa_cli("merchants", "create", "Rotating", env=env).stdout)
        url = f"http://127.0.0.1:{port}"
        with kassa_process(["vault"], env, log=tmp_path / "vault.log") as proc:
            await wait_healthy(url, proc)
            pms = [(await tokenise(url, shop["publishable_key"], "4242424242424242")).json()
                   for _ in range(7)]
            out = kassa_cli("vault", "rotate-kek", "--batch-size", "3", env=env)
            assert out.returncode == 0, out.stderr
            lines = out.stderr.splitlines()
            assert "added KEK version 2 to the keyring" in out.stderr
            assert any(line.endswith("] 8/8 data keys") for line in lines), out.stderr
            assert "retired KEK version 1: no data key uses it" in out.stderr
            assert list(LocalKeyring(path=kek).versions()) == [1, 2]
            # the running vault learnt version 2 from the file: new cards, same fingerprint
            again = (await tokenise(url, shop["publishable_key"], "4242424242424242")).json()
            assert again["card"]["fingerprint"] == pms[0]["card"]["fingerprint"]
            async with httpx.AsyncClient(base_url=url) as c:
                r = await c.get(f"/v1/payment_methods/{pms[0]['id']}",
                                auth=(shop["secret_key"], ""))
                assert r.status_code == 200
            again_out = kassa_cli("vault", "rotate-kek", env=env)  # a second rotation: v3
            assert again_out.returncode == 0 and "added KEK version 3" in again_out.stderr
        # a vault started with another keyring refuses, in two lines
        wrong = {**env, "KASSA_VAULT_KEKS": keyring_text(1, 2, 3)}
        with kassa_process(["vault"], wrong) as proc:
            proc.wait(timeout=30)
            err = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.returncode == 2, err
        assert "cannot be used with this keyring" in err and "Traceback" not in err
