"""Which Stripe account a key belongs to (psp/stripe/account.py), against Stripe's recorded
``GET /v1/account`` answers (the shapes of Stripe's API reference: the Account object, the
401 of an unknown key, the 403 of a restricted key without account access). localstripe
has no /v1/account, so this contract is covered here; the network is an
httpx.MockTransport standing in for api.stripe.com."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kassa.psp.base import PSPError, PSPOutcomeUnknown, PSPUnavailable
from kassa.psp.stripe.account import StripeKeyRefused, account_of

# Stripe's Account object as GET /v1/account answers it (abridged to what kassa reads and
# a few neighbours, as recorded from the API reference's example)
ACCOUNT: dict[str, Any] = {
    "id": "acct_1Nv0FGQ9RKHgCVdK", "object": "account", "business_type": None,
    "charges_enabled": True, "country": "US", "default_currency": "usd",
    "details_submitted": True, "payouts_enabled": True, "type": "standard",
    "settings": {"dashboard": {"display_name": "Kassa test", "timezone": "Etc/UTC"}},
}
UNKNOWN_KEY = {"error": {"message": "Invalid API Key provided: sk_test_*********here",
                         "type": "invalid_request_error"}}
RESTRICTED = {"error": {"message": "The provided key 'rk_test_***' does not have the "
                                   "required permissions for this endpoint on account "
                                   "'acct_1Nv0FGQ9RKHgCVdK'.", "type": "invalid_request_error"}}


def stripe_answering(status: int, body: Any, seen: list[httpx.Request]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body, headers={"request-id": "req_recorded"})
    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_the_key_s_account_id_is_read_from_v1_account() -> None:
    seen: list[httpx.Request] = []
    async with stripe_answering(200, ACCOUNT, seen) as client:
        found = await account_of(client, api_key="sk_test_one",
                                 api_base="https://api.stripe.com")
    assert found == "acct_1Nv0FGQ9RKHgCVdK"
    (request,) = seen
    assert (request.method, request.url.path) == ("GET", "/v1/account")
    assert request.headers["authorization"] == "Bearer sk_test_one"


@pytest.mark.parametrize(("status", "body"), [(401, UNKNOWN_KEY), (403, RESTRICTED)])
async def test_a_key_stripe_refuses(status: int, body: Any) -> None:
    async with stripe_answering(status, body, []) as client:
        with pytest.raises(StripeKeyRefused) as exc:
            await account_of(client, api_key="sk_test_bad", api_base="https://api.stripe.com")
    assert "sk_test_bad" not in str(exc.value)


async def test_stripe_failing_or_unreachable_is_the_psp_error_class() -> None:
    async with stripe_answering(500, {"error": {"type": "api_error", "message": "x"}},
                                []) as client:
        with pytest.raises(PSPOutcomeUnknown):
            await account_of(client, api_key="sk_test_1", api_base="https://api.stripe.com")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(PSPUnavailable):
            await account_of(client, api_key="sk_test_1", api_base="https://api.stripe.com")


async def test_an_answer_without_an_account_id_is_no_binding() -> None:
    async with stripe_answering(200, {"object": "account", "id": ""}, []) as client:
        with pytest.raises(PSPError, match="without an account id"):
            await account_of(client, api_key="sk_test_1", api_base="https://api.stripe.com")
