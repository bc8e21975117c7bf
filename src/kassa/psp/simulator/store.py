"""The simulated acquirer's books on disk, so a restarted simulator remembers them.

A real PSP does not forget an authorisation because it restarted; a simulator that did
left every payment it had authorised stuck in kassa (capture, void and refund answered 404).
``Acquirer`` marks what a call changed; ``SqliteStore.save`` writes exactly those objects
in one SQLite transaction before the call's answer is sent, and ``load`` reads them all
back at start-up.

SQLite from the standard library: one file, no server, and a transaction per call costs
tens of microseconds in WAL mode (``synchronous=NORMAL``: a power cut may lose the last
calls, a killed process loses nothing that was answered).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS authorizations (id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS operations (key TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS disputes (authorization_id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS counts (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sequences (object_id TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, body BLOB NOT NULL);
"""


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def load(self) -> dict[str, Any]:
        """Everything stored: {"authorizations": [...], "operations": {key: ...},
        "disputes": [...], "counts": {...}, "sequences": {object id: last event's}}."""
        db = self._db
        return {
            "authorizations": [orjson.loads(b) for (b,) in
                               db.execute("SELECT body FROM authorizations")],
            "operations": {k: orjson.loads(b) for k, b in
                           db.execute("SELECT key, body FROM operations")},
            "disputes": [orjson.loads(b) for (b,) in db.execute("SELECT body FROM disputes")],
            "counts": dict(db.execute("SELECT name, value FROM counts")),
            "sequences": dict(db.execute("SELECT object_id, value FROM sequences")),
        }

    def save(self, *, authorizations: Iterable[Any], operations: Iterable[tuple[str, Any]],
             disputes: Iterable[Any], counts: dict[str, int],
             sequences: dict[str, int]) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR REPLACE INTO authorizations VALUES (?, ?)",
                           [(a.id, orjson.dumps(asdict(a))) for a in authorizations])
            db.executemany("INSERT OR REPLACE INTO operations VALUES (?, ?)",
                           [(k, orjson.dumps(asdict(o))) for k, o in operations])
            db.executemany("INSERT OR REPLACE INTO disputes VALUES (?, ?)",
                           [(d.authorization_id, orjson.dumps(asdict(d))) for d in disputes])
            db.executemany("INSERT OR REPLACE INTO counts VALUES (?, ?)", list(counts.items()))
            db.executemany("INSERT OR REPLACE INTO sequences VALUES (?, ?)",
                           list(sequences.items()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def load_tokens(self) -> list[dict[str, Any]]:
        """The stored cards /_sim/tokens created (tokens.py)."""
        return [orjson.loads(b) for (b,) in self._db.execute("SELECT body FROM tokens")]

    def save_token(self, token_id: str, body: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO tokens VALUES (?, ?)",
                         (token_id, orjson.dumps(body)))

    def clear(self) -> None:
        self._db.executescript("DELETE FROM authorizations; DELETE FROM operations;"
                               " DELETE FROM disputes; DELETE FROM counts;"
                               " DELETE FROM sequences; DELETE FROM tokens;")

    def close(self) -> None:
        self._db.close()
