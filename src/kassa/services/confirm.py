"""Create and confirm a PaymentIntent: the authorisation saga and its finisher.

Confirm commits a `started` authorisation attempt with the intent's move to `processing`,
calls the PSP (services/saga.py) and records what it did. 3-D Secure leaves the attempt
`requires_action`; its outcome is recorded by whoever learns it first — the customer's
return from the PSP's page (``record_return``), the PSP's webhook, recovery's poll, or a
second confirm — always through ``finish_authorization``.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from typing import Any

from kassa import representations
from kassa.db import ops, units
from kassa.db import payments as payments_db
from kassa.domain import intent_fields
from kassa.domain.errors import (
    CardError,
    IllegalTransition,
    InvalidRequest,
    KassaError,
    NotFound,
)
from kassa.domain.money import Money
from kassa.domain.payments import (
    Attempt,
    AttemptStatus,
    Operation,
    PaymentIntent,
    PaymentStatus,
    validate_amount,
)
from kassa.ledger import journal
from kassa.psp.base import Outcome, PSPError, PSPResult
from kassa.services import charges, failover, fx, hold_validity, psp_tokens, saga, saved_cards
from kassa.services.capture import post_capture
from kassa.services.client_secret import new_client_secret, verify_client_secret
from kassa.services.context import Kassa
from kassa.services.payment_methods import payment_method_object
from kassa.services.resume import answer, finish_orphan, load, took_over
from kassa.services.uow import IdempotencyHandle, UnitOfWork
from kassa.vault.resolver import Resolved

log = logging.getLogger(__name__)
PI = representations.payment_intent


async def _check_payment_method(kassa: Kassa, merchant_id: str, pm: str,
                                currency: str, customer: str | None = None, *,
                                kept: bool = False) -> Resolved:
    """The payment method as one read finds it (the intent's checks and the authorisation
    reuse it: a payment reads a vault card's row, and the intent's customer, once), refused
    when there is none, or when it is a PSP's token its account cannot charge in
    ``currency``. ``kept``: a card saved to ``customer`` may be the row this process kept
    (unread: only for a confirmation, whose first commit claims it at that row version)."""
    await psp_tokens.check(kassa, merchant_id=merchant_id, payment_method=pm,
                           currency=currency)
    resolved = await kassa.payment_methods.lookup(merchant_id=merchant_id, payment_method=pm,
                                                  customer=customer, kept=kept)
    if resolved.card is None:
        raise InvalidRequest(f"No such PaymentMethod: '{pm}'", param="payment_method",
                             code="resource_missing")
    return resolved


async def create(kassa: Kassa, *, merchant_id: str, amount: int, currency: str,
                 capture_method: str = "automatic", payment_method: str | None = None,
                 description: str | None = None, metadata: dict[str, str] | None = None,
                 confirm: bool = False, return_url: str | None = None,
                 confirmation_method: str = "automatic", customer: str | None = None,
                 off_session: bool = False, fields: Mapping[str, Any] | None = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """``fields``: the optional Stripe fields (receipt_email, shipping, statement
    descriptors, setup_future_usage, automatic_payment_methods, payment_method_options),
    checked by domain/intent_fields.py. ``off_session``: the customer is not present (a
    card saved to ``customer``, charged without a CVC)."""
    validate_amount(amount)
    currency = intent_fields.currency(currency)
    intent_fields.choice(confirmation_method, intent_fields.CONFIRMATION_METHODS,
                         param="confirmation_method")
    if off_session and not confirm:
        raise InvalidRequest("off_session can only be used with confirm=true.",
                             param="off_session")
    resolved = None
    if payment_method is not None:
        resolved = await _check_payment_method(kassa, merchant_id, payment_method, currency,
                                               customer, kept=confirm)
    await saved_cards.check_intent(kassa, merchant_id=merchant_id, customer=customer,
                                   payment_method=payment_method, off_session=off_session,
                                   resolved=resolved)
    payment_id = kassa.ids("payment_intent")
    p = PaymentIntent(
        id=payment_id, merchant_id=merchant_id,
        amount=Money(amount, currency), capture_method="automatic",
        status=(PaymentStatus.REQUIRES_CONFIRMATION if payment_method
                else PaymentStatus.REQUIRES_PAYMENT_METHOD),
        created=kassa.clock(), payment_method=payment_method, description=description,
        metadata=metadata or {}, confirmation_method=confirmation_method,
        client_secret=new_client_secret(payment_id), customer=customer)
    intent_fields.set_fields(p, {**(fields or {}), "capture_method": capture_method})
    if confirm and payment_method is None:
        raise InvalidRequest("You must provide a payment_method to confirm.",
                             param="payment_method", code="parameter_missing")
    if idempotency is not None and idempotency.took_over and idempotency.resource_id:
        # The previous holder of this key created the intent, then died before answering.
        p = await load(kassa, merchant_id=merchant_id, payment_id=idempotency.resource_id)
        if p.status is PaymentStatus.PROCESSING:
            return await finish_orphan(kassa, p, idempotency)
        if not (confirm and p.status is PaymentStatus.REQUIRES_CONFIRMATION):
            return await answer(kassa, p, idempotency)
    elif confirm:
        # create and confirm's first step commit together: one transaction, not two
        return await _authorize(kassa, p, return_url=return_url, idempotency=idempotency,
                                new=True, off_session=off_session, resolved=resolved)
    else:
        async with UnitOfWork(kassa, idempotency) as uow:
            uow.add(ops.InsertPayment.of(p))
            uow.emit(merchant_id=merchant_id, type="payment_intent.created", obj=PI(p))
            await uow.commit(response=PI(p), resource_id=p.id)
        return PI(p)
    return await _authorize(kassa, p, return_url=return_url, idempotency=idempotency,
                            off_session=off_session)


async def confirm(kassa: Kassa, *, merchant_id: str, payment_id: str,
                  payment_method: str | None = None, return_url: str | None = None,
                  client_secret: str | None = None, publishable: bool = False,
                  off_session: bool = False,
                  idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """``publishable``: the caller holds a publishable key, so ``client_secret`` must be
    the intent's, and its confirmation_method automatic (manual: only the server may).
    ``off_session``: as at create."""
    p = await load(kassa, merchant_id=merchant_id, payment_id=payment_id)
    if publishable or client_secret is not None:
        verify_client_secret(p, client_secret)
    if publishable and p.confirmation_method == "manual":
        raise InvalidRequest("This PaymentIntent's confirmation_method is manual, so it can "
                             "only be confirmed with a secret key.", param="client_secret",
                             code="payment_intent_unexpected_state")
    if took_over(idempotency) and p.status not in (PaymentStatus.REQUIRES_PAYMENT_METHOD,
                                                   PaymentStatus.REQUIRES_CONFIRMATION,
                                                   PaymentStatus.REQUIRES_ACTION):
        # The request that held this key died mid-saga: finish its attempt, then answer.
        return await finish_orphan(kassa, p, idempotency)
    if p.status is PaymentStatus.REQUIRES_ACTION and payment_method in (None, p.payment_method):
        return await _continue_after_action(kassa, p, idempotency)
    resolved = None
    if payment_method is not None:
        resolved = await _check_payment_method(kassa, merchant_id, payment_method,
                                               p.amount.currency, p.customer, kept=True)
        if p.status in (PaymentStatus.REQUIRES_PAYMENT_METHOD,
                        PaymentStatus.REQUIRES_CONFIRMATION):
            p.payment_method = payment_method
        else:
            resolved = None  # not the intent's card: the authorisation reads its own
    if p.status in (PaymentStatus.REQUIRES_PAYMENT_METHOD, PaymentStatus.REQUIRES_CONFIRMATION):
        if resolved is None and p.payment_method is not None:
            resolved = await kassa.payment_methods.lookup(merchant_id=merchant_id,
                                                          payment_method=p.payment_method,
                                                          customer=p.customer, kept=True)
        await saved_cards.check_intent(kassa, merchant_id=merchant_id, customer=p.customer,
                                       payment_method=p.payment_method,
                                       off_session=off_session, payment_intent=p.id,
                                       resolved=resolved)
    return await _authorize(kassa, p, return_url=return_url, idempotency=idempotency,
                            off_session=off_session, resolved=resolved)


async def _authorize(kassa: Kassa, p: PaymentIntent, *, return_url: str | None,
                     idempotency: IdempotencyHandle | None, new: bool = False,
                     off_session: bool = False, resolved: Resolved | None = None
                     ) -> dict[str, Any]:
    """``resolved``: the intent's payment method as this request read it already, or as
    this process kept it (a saved card: ``kept_version``). A kept card that changed since
    (its expiry updated, detached, its customer deleted) refuses step 1's commit with
    nothing written: the card is read again, the intent's rules checked on that row, and
    the authorisation starts over from the intent as it was."""
    if resolved is None or resolved.kept_version is None:
        return await _authorize_once(kassa, p, return_url=return_url,
                                     idempotency=idempotency, new=new,
                                     off_session=off_session, resolved=resolved)
    as_given = copy.copy(p)  # step 1 changes only p's own fields (start_authorization, fx)
    try:
        return await _authorize_once(kassa, p, return_url=return_url, idempotency=idempotency,
                                     new=new, off_session=off_session, resolved=resolved)
    except units.CardChanged:
        assert as_given.payment_method is not None
        log.info("saved card %s changed since this process kept it: read again",
                 as_given.payment_method)
    # read, not kept; gone since (no row): refused as the first read refuses it
    resolved = await _check_payment_method(kassa, as_given.merchant_id,
                                           as_given.payment_method, as_given.amount.currency,
                                           as_given.customer)
    await saved_cards.check_intent(kassa, merchant_id=as_given.merchant_id,
                                   customer=as_given.customer,
                                   payment_method=as_given.payment_method,
                                   off_session=off_session,
                                   payment_intent=None if new else as_given.id,
                                   resolved=resolved)
    return await _authorize_once(kassa, as_given, return_url=return_url,
                                 idempotency=idempotency, new=new, off_session=off_session,
                                 resolved=resolved)


async def _authorize_once(kassa: Kassa, p: PaymentIntent, *, return_url: str | None,
                          idempotency: IdempotencyHandle | None, new: bool = False,
                          off_session: bool = False, resolved: Resolved | None = None
                          ) -> dict[str, Any]:
    attempt_id = kassa.ids("charge")
    created = PI(p) if new else None
    p.start_authorization(attempt_id, "")  # refused here before anything is routed
    assert p.payment_method is not None
    # the merchant settles in another currency: the rate is fixed now (at charge time, as
    # Stripe converts), or the payment is refused with nothing written (domain/fx.py)
    await fx.fix_conversion(kassa, p)
    if resolved is None:
        resolved = await kassa.payment_methods.lookup(merchant_id=p.merchant_id,
                                                      payment_method=p.payment_method)
    card = resolved.card
    # a PSP's token: its account as it is now (disabled since the intent was created: 400)
    await psp_tokens.check(kassa, merchant_id=p.merchant_id, payment_method=p.payment_method,
                           currency=p.amount.currency)
    # the routed accounts in order: the first now, the next ones only on failover
    decision = await kassa.router.plan(p, card)
    p.psp = decision.psps[0]
    attempt = Attempt(
        id=attempt_id, merchant_id=p.merchant_id, payment_intent_id=p.id,
        operation=Operation.AUTHORIZE, psp=p.psp, status=AttemptStatus.STARTED,
        amount=p.amount, capture=p.captures_on_authorization, return_url=return_url,
        off_session=off_session)
    facts = charges.card_facts(resolved)
    # step 1: the recovery point — from here on the attempt id is the PSP idempotency key;
    # the charge keeps the card as it is now
    async with UnitOfWork(kassa, idempotency) as uow:
        if created is not None:
            uow.add(ops.InsertPayment.of(p))
            uow.emit(merchant_id=p.merchant_id, type="payment_intent.created", obj=created)
        else:
            uow.add(ops.UpdatePayment.of(p))
        saga.begin(kassa, uow, attempt, idempotency)
        claim = saved_cards.use_op(p, resolved)
        if claim is not None:
            uow.add(claim)  # a card attached to no customer serves this intent only
        attempt.charge = charges.details_for(kassa, attempt, p, facts)
        uow.add(ops.InsertCharge(attempt.charge))
        await uow.commit(resource_id=p.id if created is not None else None)
    if card is None:  # removed between validation and now
        result = PSPResult(Outcome.DECLINED, "", decline_code="invalid_payment_method",
                           message="The payment method is no longer available.")
        return await saga.finish(kassa, attempt, result, payment=p, idempotency=idempotency)
    return await failover.authorize(kassa, attempt, p, card, decision, facts,
                                    idempotency=idempotency)


# Stripe's decline of an off-session charge whose card asks for 3-D Secure: the customer is
# not there to authenticate, so the merchant must bring them back on-session
AUTHENTICATION_REQUIRED = "authentication_required"


def off_session_result(attempt: Attempt, result: PSPResult) -> PSPResult:
    """An off-session authorisation the PSP answered with a 3-D Secure challenge (a PSP that
    does not decline such a charge itself): nobody can take the challenge, so it is the
    decline Stripe gives, and the intent asks for a payment method again."""
    if result.outcome is not Outcome.REQUIRES_ACTION or not attempt.off_session:
        return result
    return PSPResult(Outcome.DECLINED, result.psp_reference,
                     decline_code=AUTHENTICATION_REQUIRED,
                     message="Your card was declined. This transaction requires "
                             "authentication.", raw_status=result.raw_status)


def decline_error(result: PSPResult) -> dict[str, Any]:
    code = "card_declined"
    if result.decline_code in ("expired_card", "incorrect_cvc", "incorrect_number",
                               "processing_error", AUTHENTICATION_REQUIRED):
        code = result.decline_code
    return {
        "type": "card_error",
        "code": code,
        "decline_code": result.decline_code,
        "message": result.message or "Your card was declined.",
    }


def _next_action(result: PSPResult, attempt: Attempt) -> dict[str, Any]:
    return {"type": "redirect_to_url",
            "redirect_to_url": {"url": result.action_url, "return_url": attempt.return_url}}


async def finish_authorization(kassa: Kassa, attempt: Attempt, result: PSPResult, *,
                               payment: PaymentIntent | None = None,
                               idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Step 3 of confirm: record what the PSP did with the authorisation."""
    result = off_session_result(attempt, result)
    was, expected = saga.cas_on(attempt)
    p = payment or await saga.reload(kassa, attempt.payment_intent_id)
    if result.outcome is Outcome.REQUIRES_ACTION and was is AttemptStatus.REQUIRES_ACTION:
        return PI(p)  # nothing new: the customer has not finished yet
    if result.outcome is Outcome.VOIDED and p.pending_attempt_id != attempt.id:
        # kassa's own void (cancel, expiry) is in flight: that void's finisher records it;
        # as a decline it would reopen a canceled payment. (Voided by the PSP on its own,
        # with no void of kassa's pending, it is recorded below as a failed attempt.)
        return PI(p)
    event: str
    check_after: float | None = None
    saves: list[ops.Op] = []
    saved: dict[str, Any] | None = None
    if result.outcome in (Outcome.AUTHORIZED, Outcome.CAPTURED):
        attempt.status = AttemptStatus.SUCCEEDED
        attempt.psp_reference = result.psp_reference
        captured = result.outcome is Outcome.CAPTURED
        received = p.amount.minor
        if captured and result.amount is not None and result.amount != attempt.amount:
            received = _psp_amount(attempt, result, p)
        p.authorization_succeeded(psp_reference=result.psp_reference, captured=captured,
                                  received=received)
        event = ("payment_intent.succeeded" if captured
                 else "payment_intent.amount_capturable_updated")
        if not captured:  # recovery voids the hold when the PSP's validity ends
            created = attempt.created or kassa.clock()
            check_after = max(0.0, created + await hold_validity.seconds(kassa, attempt.psp)
                              - kassa.clock())
        saves, saved = await saved_cards.save_after_success(kassa, p)
    elif result.outcome is Outcome.REQUIRES_ACTION:
        attempt.status = AttemptStatus.REQUIRES_ACTION
        attempt.psp_reference = result.psp_reference
        p.authorization_requires_action(psp_reference=result.psp_reference,
                                        next_action=_next_action(result, attempt))
        event = "payment_intent.requires_action"
        check_after = kassa.watch.action_poll_seconds
    else:
        attempt.status = AttemptStatus.FAILED
        attempt.psp_reference = result.psp_reference or None
        # Stripe's card_error carries the declined charge and the card as its full object
        pm = None if p.payment_method is None else await payment_method_object(
            kassa, merchant_id=p.merchant_id, payment_method=p.payment_method,
            created=attempt.created or p.created)
        err = {**decline_error(result), "charge": attempt.id, "payment_method": pm}
        attempt.error = err
        p.authorization_failed(err)
        event = "payment_intent.payment_failed"
    async with UnitOfWork(kassa, idempotency) as uow:
        uow.add(ops.FinishAttempt.of(attempt, expected=expected, check_after_s=check_after))
        uow.add(ops.UpdatePayment.of(p))
        bt_id = None
        if attempt.status is AttemptStatus.SUCCEEDED:
            if p.status is PaymentStatus.SUCCEEDED:
                bt_id = post_capture(kassa, uow, p, gross=Money(p.amount_received, p.currency),
                                     held=None)
            else:
                uow.add(journal.hold(merchant_id=p.merchant_id, psp=attempt.psp,
                                     amount=p.amount, attempt_id=attempt.id,
                                     conversion=p.fx))
        if attempt.status in (AttemptStatus.SUCCEEDED, AttemptStatus.FAILED):
            # as Stripe: charge.succeeded for an authorisation (captured or not) and
            # charge.failed for a declined one, before the intent's event; 3-D Secure
            # still open is no charge event yet
            uow.emit(merchant_id=p.merchant_id,
                     type="charge.succeeded" if attempt.status is AttemptStatus.SUCCEEDED
                     else "charge.failed",
                     obj=await charges.event_object(kassa, charge_id=attempt.id, payment=p,
                                                    attempt=attempt,
                                                    balance_transaction=bt_id, new=True))
        uow.emit(merchant_id=p.merchant_id, type=event, obj=PI(p))
        if saved is not None and await saved_cards.lock_saveable(await uow.connection(), p):
            # setup_future_usage: the card is the customer's from now on (locked until the
            # commit, so the op attaches it and the event says what happened)
            uow.add(*saves)
            uow.emit(merchant_id=p.merchant_id, type="payment_method.attached", obj=saved)
        outcome: object = PI(p)
        if attempt.status is AttemptStatus.FAILED:
            assert attempt.error is not None
            outcome = CardError.from_error(attempt.error, payment_intent=PI(p))
        await saga.commit_outcome(kassa, uow, attempt, outcome, idempotency)
    if isinstance(outcome, CardError):
        raise outcome
    return PI(p)


def _psp_amount(attempt: Attempt, result: PSPResult, p: PaymentIntent) -> int:
    """The PSP captured another amount than kassa asked: its amount is what moved, so it
    is what is recorded (and flagged on the attempt and in the log)."""
    assert result.amount is not None
    if result.amount.currency != p.currency or not 0 < result.amount.minor <= p.amount.minor:
        raise saga.Unrecordable(f"{attempt.psp} reports {result.amount} captured for "
                             f"{attempt.id}, outside what was authorised ({p.amount})")
    attempt.error = {"code": "psp_amount_mismatch",
                     "message": f"asked {attempt.amount}, the PSP captured {result.amount}"}
    log.warning("attempt %s: %s", attempt.id, attempt.error["message"])
    return result.amount.minor


async def repeat(kassa: Kassa, attempt: Attempt) -> PSPResult:
    return await saga.repeat_authorization(kassa, attempt)



async def _continue_after_action(kassa: Kassa, p: PaymentIntent,
                                 idempotency: IdempotencyHandle | None) -> dict[str, Any]:
    """Re-confirm after customer authentication: ask the PSP how the attempt ended."""
    assert p.pending_attempt_id is not None
    attempt = await payments_db.get_attempt(kassa.pool, p.pending_attempt_id)
    assert attempt is not None
    result = await saga.ask(kassa, attempt)
    if result is None:
        from kassa.domain.errors import ConcurrentModification

        raise ConcurrentModification(
            "The payment processor is unavailable; retry the confirmation.")
    if result.outcome is Outcome.REQUIRES_ACTION:
        raise IllegalTransition(p.status.value, PaymentStatus.PROCESSING.value,
                                action="confirm (authentication is not complete) for")
    return await saga.finish(kassa, attempt, result, payment=p, idempotency=idempotency)


async def record_return(kassa: Kassa, *, psp: str, attempt_id: str,
                        query: Mapping[str, str] | None = None
                        ) -> tuple[PaymentIntent, Attempt]:
    """The customer came back from the PSP's 3-D Secure page: record the outcome now, so
    the merchant's return_url already shows the final status. A PSP that tells the outcome
    only to the one who brings the return's query (Adyen's ``redirectResult``) is asked
    with it; its answer counts only for this very attempt."""
    redirect_result = (query or {}).get("redirectResult")
    if redirect_result is not None and len(redirect_result) > MAX_REDIRECT_RESULT:
        raise InvalidRequest("redirectResult is too long.", param="redirectResult")
    attempt = await payments_db.get_attempt(kassa.pool, attempt_id)
    if attempt is None or attempt.psp != psp or attempt.operation is not Operation.AUTHORIZE:
        raise NotFound(f"No such authentication: '{attempt_id}'", param="attempt")
    if attempt.status is AttemptStatus.REQUIRES_ACTION and query:
        await _record_redirect(kassa, attempt, query)
        attempt = await payments_db.get_attempt(kassa.pool, attempt_id) or attempt
    if attempt.status is AttemptStatus.REQUIRES_ACTION:
        await saga.resolve(kassa, attempt)
        attempt = await payments_db.get_attempt(kassa.pool, attempt_id) or attempt
    return await saga.reload(kassa, attempt.payment_intent_id), attempt


async def _record_redirect(kassa: Kassa, attempt: Attempt, query: Mapping[str, str]) -> None:
    """The PSP's answer for the returned query, recorded when it is about this attempt; a
    refusal or an error (a tampered query) records nothing: recovery and the PSP's
    notification still settle it."""
    complete = getattr(kassa.psp(attempt.psp), "complete_redirect", None)
    redirect_result = query.get("redirectResult")
    if complete is None or not redirect_result:
        return
    if not _may_ask(attempt.id):
        log.info("return of %s: the PSP was asked about it less than %.0f s ago with a "
                 "redirectResult that settled nothing; not asked again", attempt.id,
                 RETURN_RETRY_S)
        return
    try:
        result = await complete(idempotency_key=attempt.id, redirect_result=redirect_result,
                                capture=attempt.capture)
    except PSPError as exc:
        log.warning("%s refused the return of %s: %s", attempt.psp, attempt.id, exc)
        _asked_in_vain(attempt.id)
        return
    if result.psp_reference != attempt.psp_reference or \
            result.outcome is Outcome.REQUIRES_ACTION:
        _asked_in_vain(attempt.id)
        return  # another payment's answer, or not finished: nothing to record from it
    try:
        await saga.finish(kassa, attempt, result)
    except KassaError:
        pass  # a decline is recorded; the customer is sent on to see it


# The return endpoint takes no API key: what an anonymous caller can make kassa send to the
# PSP is bounded. A redirectResult is a few hundred characters (Adyen's); past the cap it is
# a 400. After an ask that settled nothing (refused, another payment's, unfinished) the same
# attempt is not asked again with a redirectResult for RETURN_RETRY_S in this process (the
# notification and recovery settle it meanwhile), so repeated bogus values cannot drive
# /payments/details calls faster than that; a genuine return is never held back by a
# previous genuine one, which records the outcome.
MAX_REDIRECT_RESULT = 10 * 1024
RETURN_RETRY_S = 3.0
_MAX_REMEMBERED = 10_000
_vain_asks: dict[str, float] = {}  # attempt id → monotonic time of its last vain ask


def _may_ask(attempt_id: str) -> bool:
    last = _vain_asks.get(attempt_id)
    return last is None or time.monotonic() - last >= RETURN_RETRY_S


def _asked_in_vain(attempt_id: str) -> None:
    now = time.monotonic()
    if len(_vain_asks) >= _MAX_REMEMBERED:
        for key in [k for k, at in _vain_asks.items() if now - at >= RETURN_RETRY_S]:
            del _vain_asks[key]
        if len(_vain_asks) >= _MAX_REMEMBERED:
            _vain_asks.clear()  # bounded memory; at worst a few extra asks
    _vain_asks[attempt_id] = now
