"""Routing configurations: create (a new inactive version), retrieve, list, activate.

The policy itself is parsed and checked by domain/routing.py; here the accounts it names
are checked against the platform's PSP accounts and the merchant's own (unknown, another
merchant's, or disabled: 400), and the
stored form is the parsed one (normalised), so what is shown is what routes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kassa.db import psp_accounts as psp_accounts_db
from kassa.db import routing_configs as routing_configs_db
from kassa.db.pool import Conn
from kassa.domain.errors import InvalidRequest, NotFound
from kassa.domain.lists import Bounds
from kassa.domain.routing import RoutingPolicy, parse_policy, psp_params
from kassa.representations.routing_configs import routing_config
from kassa.services.context import Kassa
from kassa.services.uow import IdempotencyHandle, UnitOfWork

ID_PREFIX = "rcfg"
ACCOUNT_PREFIX = "pspacct_"  # a merchant's own account (services/psp_accounts.py)


async def account_enabled(kassa: Kassa, conn: Conn, *, merchant_id: str,
                          name: str) -> bool | None:
    """True/False for an account the merchant may name (enabled or not), None for an
    unknown one. A merchant's own account is read from its row, not a process's snapshot:
    one disabled a moment ago is refused. Another merchant's account is unknown (its
    existence is not told)."""
    if name in kassa.psps:
        enabled = getattr(kassa.psps, "enabled", None)
        return True if enabled is None else bool(enabled(name))
    if not name.startswith(ACCOUNT_PREFIX):
        return None
    row = await psp_accounts_db.get_account(conn, merchant_id=merchant_id, account_id=name)
    return None if row is None else bool(row["enabled"])


async def check_accounts(kassa: Kassa, conn: Conn, *, merchant_id: str,
                         policy: RoutingPolicy) -> None:
    for name, param in psp_params(policy):
        state = await account_enabled(kassa, conn, merchant_id=merchant_id, name=name)
        if state is None:
            raise InvalidRequest(f"No such PSP account: '{name}' (configured: "
                                 f"{', '.join(sorted(kassa.psps))}, or one of your "
                                 "psp_accounts).", param=param, code="resource_missing")
        if not state:
            raise InvalidRequest(f"The PSP account '{name}' is disabled.", param=param,
                                 code="psp_account_disabled")


def stored_policy(row: Mapping[str, Any]) -> RoutingPolicy:
    """A stored configuration as policy (it was valid when created and is immutable)."""
    return parse_policy(rules=row["rules"], default_route=row["default_route"])


def _not_found(config_id: str) -> NotFound:
    return NotFound(f"No such routing_config: '{config_id[:100]}'", param="id")


async def create(kassa: Kassa, *, merchant_id: str, rules: Any, default_route: Any,
                 name: str | None = None,
                 idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    policy = parse_policy(rules=rules, default_route=default_route)
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise InvalidRequest("Invalid name: a string of up to 200 characters.", param="name")
    shape = policy.as_dict()
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        await check_accounts(kassa, conn, merchant_id=merchant_id, policy=policy)
        row = await routing_configs_db.insert_config(conn, config_id=kassa.ids(ID_PREFIX),
                                       merchant_id=merchant_id, name=name,
                                       rules=shape["rules"],
                                       default_route=shape["default_route"],
                                       created=kassa.clock())
        result = routing_config(row)
        await uow.commit(response=result)
    return result


async def retrieve(kassa: Kassa, *, merchant_id: str, config_id: str) -> dict[str, Any]:
    row = await routing_configs_db.get_config(kassa.pool, merchant_id=merchant_id,
                                              config_id=config_id)
    if row is None:
        raise _not_found(config_id)
    return routing_config(row)


async def activate(kassa: Kassa, *, merchant_id: str, config_id: str,
                   idempotency: IdempotencyHandle | None = None) -> dict[str, Any]:
    """Route the merchant's new payments by this version. Its accounts are checked again:
    one disabled since the version was created refuses the activation."""
    async with UnitOfWork(kassa, idempotency) as uow:
        conn = await uow.connection()
        # the merchant's lock first: a psp_account deleted meanwhile is seen (its delete
        # takes the same lock before it looks at the active configuration)
        await psp_accounts_db.lock_merchant(conn, merchant_id)
        row = await routing_configs_db.get_config(conn, merchant_id=merchant_id,
                                                  config_id=config_id)
        if row is None:
            raise _not_found(config_id)
        await check_accounts(kassa, conn, merchant_id=merchant_id, policy=stored_policy(row))
        row = await routing_configs_db.activate(conn, merchant_id=merchant_id, config_id=config_id,
                                  now=kassa.clock())
        assert row is not None
        result = routing_config(row)
        await uow.commit(response=result)
    return result


async def list_configs(kassa: Kassa, *, merchant_id: str, limit: int,
                       starting_after: str | None, ending_before: str | None,
                       created: Bounds | None = None) -> tuple[list[dict[str, Any]], bool]:
    rows, more = await routing_configs_db.list_configs(kassa.pool, merchant_id=merchant_id,
                                                       limit=limit,
                                         starting_after=starting_after,
                                         ending_before=ending_before, created=created)
    return [routing_config(r) for r in rows], more

