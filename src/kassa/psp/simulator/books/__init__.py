"""The simulated acquirer's books (``Acquirer``), what they refuse, and the records they keep;
which module holds what is in ../README.md ("Where the code is")."""

from kassa.psp.simulator.books.acquirer import Acquirer
from kassa.psp.simulator.books.errors import (
    AuthorizationNotFound,
    Conflict,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
)
from kassa.psp.simulator.books.records import Authorization, Body, Operation, SimDispute

__all__ = [
    "Acquirer",
    "Authorization",
    "AuthorizationNotFound",
    "Body",
    "Conflict",
    "IdempotencyConflict",
    "InvalidRequest",
    "NotFound",
    "Operation",
    "SimDispute",
]
