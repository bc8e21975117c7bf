"""Start-up failures the CLI reports as one line of cause and one of remedy (no traceback)."""

from __future__ import annotations


class StartupError(Exception):
    """kassa cannot start: `cause` says what is wrong, `remedy` what to do about it."""

    exit_code = 2

    def __init__(self, cause: str, remedy: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.remedy = remedy
