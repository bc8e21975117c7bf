"""Recovery's question to the PSP (saga.ask) when the PSP reads nothing back (Adyen's
``CannotLookUp``): the call is repeated with its key; a refusal (4xx) of the repeat of a
capture, cancel or refund is no outcome of the original, so it stays unresolved (None),
while a PSP that looked and found nothing (``UnknownOperation``) makes a refused repeat
the attempt's recorded failure."""

from __future__ import annotations

from typing import Any, cast

import pytest

from kassa.domain.money import Money
from kassa.domain.payments import Attempt, AttemptStatus, Operation
from kassa.psp.base import (
    AttemptRef,
    CannotLookUp,
    Outcome,
    PSPRefused,
    PSPResult,
    UnknownOperation,
)
from kassa.services import saga
from kassa.services.context import Kassa

RECEIVED = PSPResult(Outcome.CAPTURE_PENDING, "8835511210681145",
                     operation_reference="8815329842815468")


class RepeatingPSP:
    """Looks an attempt up as ``lookup_error`` says, and answers every repeat with
    ``answer`` (a result, or an exception to raise)."""

    name = "adyen"

    def __init__(self, lookup_error: Exception, answer: PSPResult | Exception) -> None:
        self.lookup_error, self.answer = lookup_error, answer
        self.repeats = 0

    async def lookup(self, attempt: AttemptRef) -> PSPResult:
        raise self.lookup_error

    async def _repeat(self, **_: Any) -> PSPResult:
        self.repeats += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    capture = refund = _repeat

    async def void(self, **_: Any) -> PSPResult:
        return await self._repeat()


class World:
    def __init__(self, psp: RepeatingPSP) -> None:
        self._psp = psp

    def psp(self, name: str) -> RepeatingPSP:
        return self._psp


def attempt(operation: Operation) -> Attempt:
    return Attempt(id="att_1", merchant_id="acct_1", payment_intent_id="pi_1",
                   operation=operation, psp="adyen", status=AttemptStatus.UNKNOWN,
                   amount=Money(2500, "eur"), psp_reference="8835511210681145")


@pytest.mark.parametrize("operation", [Operation.CAPTURE, Operation.VOID, Operation.REFUND])
async def test_a_refused_repeat_of_a_modification_that_cannot_be_read_back_is_unresolved(
        operation: Operation) -> None:
    psp = RepeatingPSP(CannotLookUp("reads nothing back"), PSPRefused("HTTP 422 702"))
    assert await saga.ask(cast(Kassa, World(psp)), attempt(operation)) is None
    assert psp.repeats == 1


async def test_the_repeat_of_a_modification_answered_from_the_store_is_its_answer() -> None:
    psp = RepeatingPSP(CannotLookUp("reads nothing back"), RECEIVED)
    assert await saga.ask(cast(Kassa, World(psp)), attempt(Operation.CAPTURE)) is RECEIVED


async def test_a_psp_that_found_nothing_records_a_refused_repeat_as_the_failure() -> None:
    psp = RepeatingPSP(UnknownOperation("no such key"), PSPRefused("HTTP 400"))
    result = await saga.ask(cast(Kassa, World(psp)), attempt(Operation.CAPTURE))
    assert result is not None
    assert (result.outcome, result.decline_code) == (Outcome.FAILED, "psp_refused")
