"""The `kassa` command tree assembled from the kassa.cli modules: every command registered once,
in the order `kassa --help` lists them, reached by the console script, and cheap to load."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import typer.main

import kassa.cli


def _tree(command: object) -> object:
    """{name: subtree} for a group (typer ships its own click: no isinstance), None for a
    command."""
    commands = getattr(command, "commands", None)
    if commands is None:
        return None
    return {name: _tree(sub) for name, sub in commands.items()}


def test_every_command_and_group_in_the_order_help_lists_them():
    root = typer.main.get_command(kassa.cli.app)
    assert _tree(root) == {
        "migrate": None, "api": None, "worker": None, "simulator": None, "dev": None,
        "balance": None, "merchants": {"create": None},
        "ledger": {"verify": None, "checkpoint": None},
        "relay": {"status": None},
        "webhooks": {"redeliver": None, "list-dead": None},
        "attempts": {"list": None},
        "reconcile": {"import": None, "runs": None, "discrepancies": None, "resolve": None,
                      "report": {"run": None, "settlement": None, "daily": None}},
        "payouts": {"review": None},
        "fx": {"load": None, "pull": None, "rates": None},
        "routing": {"show": None, "create": None, "activate": None, "backtest": None},
        "psp": {"status": None},
        "vault": {"rotate-kek": None},
    }
    assert list(_tree(root)) == ["migrate", "api", "worker", "simulator", "dev", "balance",
                                 "merchants",
                                 "ledger", "relay", "webhooks", "attempts", "reconcile",
                                 "payouts", "fx", "routing", "psp", "vault"]


def test_the_console_script_runs_the_same_app():
    (script,) = entry_points(group="console_scripts", name="kassa")
    assert script.load() is kassa.cli.app


def test_loading_the_cli_loads_no_service_database_or_server_code():
    # `kassa --help` and a start-up error stay instant: commands import what they run
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, kassa.cli; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True).stdout.split()
    heavy = [m for m in loaded if m.split(".")[0] in ("asyncpg", "psycopg", "uvicorn", "fastapi")
             or m.startswith(("kassa.services", "kassa.db", "kassa.api", "kassa.psp"))]
    assert heavy == []
