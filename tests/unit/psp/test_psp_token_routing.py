"""The routing plan of a PSP's own token: the named account alone, before any rule or
strategy, with no failover target even when its breaker is open; other payment methods
route as the configuration says. And the token grammar (domain/psp_tokens.py)."""

from __future__ import annotations

from typing import Any

import pytest

from kassa.domain import psp_tokens
from kassa.domain.errors import InvalidRequest
from kassa.domain.money import Money
from kassa.domain.payments import PaymentIntent, PaymentStatus
from kassa.domain.routing import PINNED, PINNED_RULE, RoutingPolicy, parse_policy
from kassa.psp.breaker import BreakerPolicy, BreakerState
from kassa.psp.monitor import PSPMonitor
from kassa.psp.policy_router import PolicyRouter
from kassa.vault.psp_tokens import TOKEN_CARD, card_of, is_token_card

PSPS: dict[str, Any] = {"simulator": object(), "sim_b": object(), "stripe": object()}
PRIORITY = parse_policy(rules=[], default_route={"strategy": "priority",
                                                 "psps": ["simulator", "sim_b", "stripe"]})


class ConfiguredRouter(PolicyRouter):
    """A router whose merchant has ``configured`` active (no database)."""

    def __init__(self, configured: RoutingPolicy, monitor: PSPMonitor) -> None:
        super().__init__(PSPS, "simulator", pool=None, monitor=monitor)
        self.configured = configured

    async def policy(self, merchant_id: str) -> RoutingPolicy | None:
        return self.configured


def payment(pm: str) -> PaymentIntent:
    return PaymentIntent(id="pi_1", merchant_id="m_1", amount=Money(1000, "usd"),
                         status=PaymentStatus.REQUIRES_CONFIRMATION,
                         capture_method="automatic", created=0, payment_method=pm)


def monitor() -> PSPMonitor:
    return PSPMonitor(breaker=BreakerPolicy(window_seconds=10, bucket_seconds=1, min_volume=2,
                                            failure_ratio=0.5, cooldown_seconds=60, probes=1,
                                            slow_call_seconds=5.0))


async def test_a_token_plans_its_account_alone_whatever_the_configuration() -> None:
    router = ConfiguredRouter(PRIORITY, monitor())
    decision = await router.plan(payment("stripe:pm_1Nxyz"), TOKEN_CARD)
    assert decision.psps == ("stripe",) and decision.pinned
    assert (decision.rule, decision.strategy) == (PINNED_RULE, PINNED)
    assert router.fallback(decision, ["stripe"]) is None
    # without a token, the same merchant's payments follow the priority list
    plain = await router.plan(payment("pm_card_visa"), None)
    assert plain.psps == ("simulator", "sim_b", "stripe") and not plain.pinned
    assert router.fallback(plain, ["simulator"]) == "sim_b"


async def test_an_open_breaker_does_not_move_a_pinned_payment() -> None:
    m = monitor()
    router = ConfiguredRouter(PRIORITY, m)
    for _ in range(2):
        m.breaker("sim_b").record(failed=True)
    assert m.breaker("sim_b").state is BreakerState.OPEN
    decision = await router.plan(payment("sim_b:tok_visa"), TOKEN_CARD)
    assert decision.psps == ("sim_b",)
    assert router.fallback(decision, ["sim_b"]) is None
    # an unpinned payment is steered past the open breaker as before
    for _ in range(2):
        m.breaker("simulator").record(failed=True)
    plain = await router.plan(payment("pm_card_visa"), None)
    assert plain.psps[0] == "stripe"


async def test_a_merchant_without_a_configuration_is_pinned_too() -> None:
    router = PolicyRouter(PSPS, "simulator", pool=None, monitor=monitor())
    decision = await router.plan(payment("sim_b:tok_visa"), TOKEN_CARD)
    assert decision.psps == ("sim_b",) and decision.pinned


@pytest.mark.parametrize(("pm", "account", "token"), [
    ("stripe:pm_1Nxyz", "stripe", "pm_1Nxyz"),
    ("pspacct_abc123:pm_1Nxyz", "pspacct_abc123", "pm_1Nxyz"),
    ("adyen:shopper-42/8315558123456789", "adyen", "shopper-42/8315558123456789"),
    ("sim_b:tok_visa", "sim_b", "tok_visa"),
])
def test_the_token_grammar(pm: str, account: str, token: str) -> None:
    parsed = psp_tokens.parse(pm)
    assert parsed is not None and (parsed.account, parsed.token) == (account, token)
    assert psp_tokens.account_of(pm) == account and psp_tokens.token_of(pm) == token
    assert is_token_card(card_of(pm))


@pytest.mark.parametrize("pm", ["pm_card_visa", "pm_" + "a" * 24, "stripe:", ":pm_1",
                                "1stripe:pm_1", "stripe:pm 1", "stripe:pm_1\n", None])
def test_what_is_not_a_token(pm: str | None) -> None:
    assert psp_tokens.parse(pm) is None and psp_tokens.account_of(pm) is None
    if pm is not None:
        assert card_of(pm) is None


@pytest.mark.parametrize(("token", "psp", "ok"), [
    ("pm_1Nxyz", "stripe", True), ("tok_visa", "stripe", False),
    ("shopper-42/8315558123456789", "adyen", True),
    ("8315558123456789", "adyen", False),  # Adyen needs the shopperReference with it
    ("sh/8315558123456789", "adyen", False),  # a shopperReference is 3+ characters
    ("tok_visa", "simulator", True), ("simtok_ab12", "simulator", True),
    ("pm_1Nxyz", "simulator", False),
])
def test_each_psp_takes_its_own_token_shape(token: str, psp: str, ok: bool) -> None:
    parsed = psp_tokens.PSPToken(account="acct", token=token)
    if ok:
        psp_tokens.check_shape(parsed, psp)
    else:
        with pytest.raises(InvalidRequest) as exc:
            psp_tokens.check_shape(parsed, psp)
        assert exc.value.param == "payment_method" and exc.value.code == "invalid_psp_token"


def test_adyen_tokens_split_into_shopper_and_stored_method() -> None:
    assert psp_tokens.adyen_stored("a/b/c/8315558123456789") == \
        ("a/b/c", "8315558123456789")
    with pytest.raises(ValueError):
        psp_tokens.adyen_stored("8315558123456789")
