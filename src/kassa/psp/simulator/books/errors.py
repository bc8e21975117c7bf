"""What the books refuse, each answered by one status (runtime.py maps them)."""

from __future__ import annotations


class InvalidRequest(Exception):
    """The request is malformed (answered 400, not stored under its key)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class IdempotencyConflict(Exception):
    """The key was already used for a different request (answered 409)."""


class AuthorizationNotFound(Exception):
    """No authorization has this id (answered 404, not stored under its key)."""


class NotFound(Exception):
    """No dispute or operation has this id (answered 404)."""


class Conflict(Exception):
    """The object is not in a state that allows this (answered 409)."""
