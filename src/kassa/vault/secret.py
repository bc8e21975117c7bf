"""Values that must never be shown: a card number or CVC whose repr, str, format, logging
and pickling reveal nothing; only ``reveal()`` hands out the value, inside the vault."""

from __future__ import annotations

import hmac
from typing import Any, NoReturn


class Secret:
    """A string kept out of logs, tracebacks, f-strings and pickles."""

    __slots__ = ("_value",)
    _label = "Secret"

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The value itself: only for encrypting it or for the PSP request that needs it."""
        value: str = object.__getattribute__(self, "_value")
        return value

    def _shown(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return f"{self._label}({self._shown()})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __len__(self) -> int:
        return len(self.reveal())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:  # equal secrets hash alike without exposing the value
        return hash((type(self), len(self)))

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{self._label} is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"a {self._label} is not pickled")  # nothing reaches disk or a queue


class CardNumber(Secret):
    """A PAN: shown as its brand-neutral last four digits only (PCI DSS 3.4.1 allows
    showing the last four)."""

    __slots__ = ()
    _label = "CardNumber"

    @property
    def last4(self) -> str:
        return self.reveal()[-4:]

    @property
    def bin(self) -> str:
        """The first six digits (the issuer identification number)."""
        return self.reveal()[:6]

    def _shown(self) -> str:
        return f"…{self.last4}"
