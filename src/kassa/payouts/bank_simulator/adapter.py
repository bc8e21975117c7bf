"""The payout adapter for the bank simulator over HTTP (an injected ``httpx.AsyncClient``);
the bank's statuses and errors are mapped to kassa's here and nowhere else."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from kassa.domain.money import Money
from kassa.domain.payouts import FailureCode, PayoutStatus, failure_code
from kassa.payouts.base import (
    PayoutInstruction,
    PayoutOutcomeUnknown,
    PayoutRailUnavailable,
    PayoutRefused,
    PayoutTimeout,
    RailTransfer,
    UnknownTransfer,
)

_STATUSES = {"in_transit": PayoutStatus.IN_TRANSIT, "paid": PayoutStatus.PAID,
             "failed": PayoutStatus.FAILED}


class BankSimulatorAdapter:
    """``send`` POSTs the transfer under the payout id; ``get`` looks it up by that id."""

    name = "bank_simulator"

    def __init__(self, client: httpx.AsyncClient, base_url: str):
        self._client = client
        self._base = base_url.rstrip("/")

    async def send(self, instruction: PayoutInstruction) -> RailTransfer:
        account = instruction.destination
        destination: dict[str, str] = {
            "account_holder_name": account.account_holder_name, "country": account.country,
            "currency": account.currency}
        if account.iban:
            destination["iban"] = account.iban
        else:
            destination["routing_number"] = account.routing_number or ""
            destination["account_number"] = account.account_number or ""
            if account.account_type:
                destination["account_type"] = account.account_type
        body: dict[str, Any] = {
            "reference": instruction.payout_id, "amount": instruction.amount.minor,
            "currency": instruction.amount.currency, "destination": destination}
        if instruction.description is not None:
            body["description"] = instruction.description
        response = await self._call("POST", "/v1/transfers", json=body)
        if response.status_code in (200, 201):
            return self._transfer(response, instruction.payout_id)
        if response.status_code == 409:
            # the bank has a transfer under this payout id: whatever it says, something may
            # have moved, so never "refused" (which would give the money back): follow it
            raise PayoutOutcomeUnknown(f"the bank holds a different transfer under payout id "
                                       f"{instruction.payout_id}")
        raise self._refusal_or_unknown(response)

    async def get(self, *, payout_id: str) -> RailTransfer:
        response = await self._call("GET", "/v1/transfers", params={"reference": payout_id})
        if response.status_code == 200:
            return self._transfer(response, payout_id)
        if response.status_code == 404:
            raise UnknownTransfer(payout_id)
        raise self._refusal_or_unknown(response)

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, f"{self._base}{path}", **kwargs)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):  # never connected: nothing sent
                raise PayoutRailUnavailable(str(exc) or "connect timeout") from exc
            raise PayoutTimeout(str(exc) or "timeout") from exc
        except httpx.ConnectError as exc:
            raise PayoutRailUnavailable(str(exc) or "connection refused") from exc
        except httpx.TransportError as exc:  # reset or closed after sending
            raise PayoutOutcomeUnknown(str(exc) or type(exc).__name__) from exc

    @staticmethod
    def _refusal_or_unknown(response: httpx.Response) -> Exception:
        # only a judgement on the transfer itself is a refusal (it fails the payout and gives
        # the money back); a key, permission or rate-limit answer refused the caller, not the
        # transfer, and nothing was accepted: retry later
        if response.status_code in (400, 422):
            message, param = _error(response)
            return PayoutRefused(f"the bank refused the transfer: {message}",
                                 failure_code=_REFUSED_PARAMS.get(param or ""))
        if response.status_code in (401, 403, 429):
            return PayoutRailUnavailable(f"the bank answered {response.status_code}")
        return PayoutOutcomeUnknown(f"the bank answered {response.status_code}")

    @staticmethod
    def _transfer(response: httpx.Response, payout_id: str) -> RailTransfer:
        try:
            body = response.json()
            status = _STATUSES[body["status"]]
            code: FailureCode | None = (failure_code(str(body.get("failure_code") or ""))
                                        if status is PayoutStatus.FAILED else None)
            transfer = RailTransfer(
                payout_id=str(body["reference"]), rail_reference=str(body["id"]),
                status=status, amount=Money(int(body["amount"]), str(body["currency"])),
                arrival_date=(date.fromisoformat(body["arrival_date"])
                              if body.get("arrival_date") else None),
                failure_code=code, failure_message=body.get("failure_message"),
                returned=bool(body.get("returned")))
        except (ValueError, KeyError, TypeError) as exc:
            raise PayoutOutcomeUnknown(f"unreadable answer from the bank: {exc}") from exc
        if transfer.payout_id != payout_id:
            raise PayoutOutcomeUnknown(f"the bank answered about {transfer.payout_id}, "
                                       f"not {payout_id}")
        return transfer


# a refused destination in Stripe's failure codes, by the parameter the bank names
_REFUSED_PARAMS = {"iban": FailureCode.INVALID_ACCOUNT_NUMBER,
                   "account_number": FailureCode.INVALID_ACCOUNT_NUMBER,
                   "routing_number": FailureCode.INVALID_ACCOUNT_NUMBER,
                   "account_holder_name": FailureCode.INCORRECT_ACCOUNT_HOLDER_NAME,
                   "currency": FailureCode.INVALID_CURRENCY}


def _error(response: httpx.Response) -> tuple[str, str | None]:
    try:
        error = response.json()["error"]
        return str(error["message"]), error.get("param")
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"HTTP {response.status_code}", None
