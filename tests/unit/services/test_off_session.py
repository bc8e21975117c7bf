"""An off-session authorisation a PSP answered with a 3-D Secure challenge is Stripe's
``authentication_required`` decline (nobody is there to take the challenge); every other
answer, and every on-session one, is kept as the PSP gave it."""

from __future__ import annotations

import pytest

from kassa.domain.money import Money
from kassa.domain.payments import Attempt, AttemptStatus, Operation
from kassa.psp.base import Outcome, PSPResult
from kassa.services.confirm import decline_error, off_session_result


def _attempt(off_session: bool) -> Attempt:
    return Attempt(id="ch_1", merchant_id="acct_1", payment_intent_id="pi_1",
                   operation=Operation.AUTHORIZE, psp="stripe", status=AttemptStatus.STARTED,
                   amount=Money(1000, "usd"), off_session=off_session)


CHALLENGE = PSPResult(Outcome.REQUIRES_ACTION, "pi_psp", action_url="https://psp/3ds",
                      raw_status="requires_action")


def test_a_challenge_off_session_is_the_authentication_required_decline() -> None:
    result = off_session_result(_attempt(True), CHALLENGE)

    assert result.outcome is Outcome.DECLINED
    assert result.psp_reference == "pi_psp"
    assert result.decline_code == "authentication_required"
    assert result.action_url is None
    error = decline_error(result)
    assert error["code"] == "authentication_required"
    assert error["decline_code"] == "authentication_required"
    assert error["type"] == "card_error"


def test_a_challenge_on_session_is_kept() -> None:
    assert off_session_result(_attempt(False), CHALLENGE) is CHALLENGE


@pytest.mark.parametrize("outcome", [o for o in Outcome if o is not Outcome.REQUIRES_ACTION])
def test_other_answers_off_session_are_kept(outcome: Outcome) -> None:
    result = PSPResult(outcome, "ref")
    assert off_session_result(_attempt(True), result) is result
