"""``Books``, what every part of the acquirer's books shares: the records in memory, their
persistence (store.py), per-object event sequences, idempotency by key, and the reads.

Every method here is synchronous on purpose: the simulator runs on one event loop, so no
other request can run between the idempotency-key check and the write that follows it.
Asynchronous outcomes are reported through ``notify(type, object, sequence)``, which the app
turns into signed webhooks; ``on_pending(key, outcome)`` asks the app to settle an operation
later.

With a ``store`` every mutating call (marked ``@persisted``) writes what it changed before
it returns, and ``open`` reads it all back: the books survive a restart, as a PSP's do.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from kassa.psp.simulator.books.errors import (
    AuthorizationNotFound,
    IdempotencyConflict,
    InvalidRequest,
)
from kassa.psp.simulator.books.records import Authorization, Body, Operation, SimDispute
from kassa.psp.simulator.store import SqliteStore

Notify = Callable[[str, Body, int], object]  # (type, object, its per-object sequence)
OnPending = Callable[[str, str], None]

F = TypeVar("F", bound=Callable[..., Any])


def fingerprint(*parts: object) -> str:
    """A request's identity under its idempotency key, as a string that survives storage."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def persisted(method: F) -> F:
    """Write what the call changed to the store before its answer leaves (also when it
    raised after changing something)."""

    @functools.wraps(method)
    def wrapper(self: Books, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.save()

    return wrapper  # type: ignore[return-value]


@dataclass(slots=True)
class Books:
    """In-memory authorizations, operations by idempotency key, disputes and counters."""

    authorizations: dict[str, Authorization] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    disputes: dict[str, SimDispute] = field(default_factory=dict)  # by authorization id
    counts: Counter[str] = field(default_factory=Counter)
    notify: Notify | None = None
    on_pending: OnPending | None = None
    store: SqliteStore | None = None
    # what the current call changed, written by save()
    _dirty_auths: set[str] = field(default_factory=set)
    _dirty_ops: set[str] = field(default_factory=set)
    _dirty_disputes: set[str] = field(default_factory=set)
    sequences: Counter[str] = field(default_factory=Counter)  # events per object
    _dirty_sequences: set[str] = field(default_factory=set)

    # -- persistence -----------------------------------------------------------------

    @classmethod
    def open(cls, store: SqliteStore | None) -> Self:
        """Books with what ``store`` kept (empty without one)."""
        books = cls(store=store)
        if store is None:
            return books
        saved = store.load()
        for a in saved["authorizations"]:
            books.authorizations[a["id"]] = Authorization(**a)
        for key, o in saved["operations"].items():
            books.operations[key] = Operation(**o)
        for d in saved["disputes"]:
            books.disputes[d["authorization_id"]] = SimDispute(**d)
        books.counts.update(saved["counts"])
        books.sequences.update(saved["sequences"])
        return books

    def touch(self, *, auth: str | None = None, key: str | None = None,
              dispute: str | None = None) -> None:
        """Mark an object changed by this call (by authorization id / operation key)."""
        if auth is not None:
            self._dirty_auths.add(auth)
        if key is not None:
            self._dirty_ops.add(key)
        if dispute is not None:
            self._dirty_disputes.add(dispute)

    def save(self) -> None:
        if self.store is not None and (self._dirty_auths or self._dirty_ops
                                       or self._dirty_disputes or self._dirty_sequences):
            self.store.save(
                authorizations=[self.authorizations[i] for i in self._dirty_auths
                                if i in self.authorizations],
                operations=[(k, self.operations[k]) for k in self._dirty_ops
                            if k in self.operations],
                disputes=[self.disputes[i] for i in self._dirty_disputes
                          if i in self.disputes],
                counts=dict(self.counts),
                sequences={k: self.sequences[k] for k in self._dirty_sequences})
        self._dirty_auths.clear()
        self._dirty_ops.clear()
        self._dirty_disputes.clear()
        self._dirty_sequences.clear()

    def reset(self) -> None:
        self.authorizations.clear()
        self.operations.clear()
        self.disputes.clear()
        self.counts.clear()
        self.sequences.clear()
        if self.store is not None:
            self.store.clear()

    # -- events ----------------------------------------------------------------------

    def _emit(self, type: str, obj: Body) -> None:
        # per-object event sequence, kept with the books: after a restart the next event
        # about an old object must still be newer than the ones kassa applied
        object_id = str(obj["id"])
        self.sequences[object_id] += 1
        self._dirty_sequences.add(object_id)
        if self.notify is not None:
            self.notify(type, obj, self.sequences[object_id])

    # -- idempotency -----------------------------------------------------------------

    def _replay(self, key: str, fingerprint: str) -> Body | None:
        op = self.operations.get(key)
        if op is None:
            return None
        if op.fingerprint != fingerprint:
            self.counts["idempotency_conflicts"] += 1
            raise IdempotencyConflict(
                f"Idempotency key {key!r} was already used for a different {op.kind} request."
            )
        self.counts["replays"] += 1
        return op.response

    def _record(self, key: str, kind: str, fingerprint: str, auth_id: str,
                response: Body) -> Body:
        current = dict(response) if kind in ("capture", "refund") else None
        self.operations[key] = Operation(kind, fingerprint, auth_id, response, current)
        self.touch(auth=auth_id, key=key)
        return response

    # -- shared by the operations ----------------------------------------------------

    def _authorization(self, authorization_id: str, currency: str | None) -> Authorization:
        auth = self.authorizations.get(authorization_id)
        if auth is None:
            raise AuthorizationNotFound(authorization_id)
        if currency is not None and currency != auth.currency:
            raise InvalidRequest(
                f"Currency {currency!r} does not match the authorization's {auth.currency!r}.",
                "currency",
            )
        return auth

    def _result(self, kind: str, success_status: str, key: str, auth: Authorization,
                amount: int, failure: tuple[str, str] | None) -> Body:
        """The answer to a capture, void or refund (``failure``: its code and message)."""
        if failure is not None:
            self.counts["failed_operations"] += 1
        return {
            "id": f"simop_{secrets.token_hex(12)}",
            "object": kind,
            "authorization": auth.id,
            "idempotency_key": key,
            "status": success_status if failure is None else "failed",
            "amount": amount,
            "currency": auth.currency,
            "failure_code": None if failure is None else failure[0],
            "message": None if failure is None else failure[1],
            "created": int(time.time()),
        }

    # -- reads -----------------------------------------------------------------------

    def operation_view(self, idempotency_key: str) -> Body | None:
        """An operation's result; for an authorization, its *current* state, for a capture
        or refund its current result (a pending one settles, a refund may bounce)."""
        op = self.operations.get(idempotency_key)
        if op is None:
            return None
        if op.kind == "authorize":
            return self.authorizations[op.authorization_id].view()
        return dict(op.current) if op.current is not None else op.response

    def authorization_list(self) -> list[Body]:
        return [a.summary() for a in self.authorizations.values()]

    def stats(self) -> Body:
        by_status = Counter(a.status for a in self.authorizations.values())
        return {
            "authorizations": self.counts["authorizations"],
            "authorizations_by_status": dict(by_status),
            "captures": self.counts["captures"],
            "voids": self.counts["voids"],
            "refunds": self.counts["refunds"],
            "failed_operations": self.counts["failed_operations"],
            "replays": self.counts["replays"],
            "idempotency_conflicts": self.counts["idempotency_conflicts"],
            "operations": len(self.operations),
            "disputes": self.counts["disputes"],
        }
