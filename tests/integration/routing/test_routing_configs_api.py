"""/v1/routing_configs: versions are created inactive, activated explicitly (one active per
merchant, also under racing activations), immutable; malformed configurations and unknown
or disabled PSP accounts are Stripe-shaped 400s; a merchant sees only its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from kassa.psp.router import PSPRegistry
from kassa.services import merchants
from tests.integration.routing.conftest import A, B, World, routed_world
from tests.support.simulator_server import running_simulator

PRIORITY = {"strategy": "priority", "psps": [A, B]}


@pytest.fixture(scope="module")
def two_sims() -> Iterator[tuple[str, str]]:
    with running_simulator() as a, running_simulator() as b:
        yield a, b


@pytest.fixture
async def world(dsn, two_sims) -> AsyncIterator[World]:
    async with routed_world(dsn, *two_sims) as w:
        yield w


async def test_create_is_inactive_versioned_and_activation_switches(world: World):
    first = await world.api.post("/v1/routing_configs", headers=world.auth, json={
        "name": "eu", "default_route": PRIORITY,
        "rules": [{"name": "big_eur", "conditions": {"currency": "EUR", "amount_gte": 5000},
                   "route": {"strategy": "single", "psp": B}}]})
    assert first.status_code == 200, first.text
    one = first.json()
    assert one["object"] == "routing_config" and one["id"].startswith("rcfg_")
    assert (one["version"], one["active"], one["activated_at"]) == (1, False, None)
    # stored normalised: what is shown is what routes
    assert one["rules"] == [{"name": "big_eur", "conditions": {
        "currency": ["eur"], "amount_gte": 5000}, "route": {"strategy": "single", "psp": B}}]
    second = (await world.api.post("/v1/routing_configs", headers=world.auth, json={
        "default_route": {"strategy": "single", "psp": B}})).json()
    assert second["version"] == 2 and not second["active"]

    r = await world.api.post(f"/v1/routing_configs/{one['id']}/activate", headers=world.auth)
    assert r.status_code == 200 and r.json()["active"] and r.json()["activated_at"]
    r = await world.api.post(f"/v1/routing_configs/{second['id']}/activate",
                             headers=world.auth)
    assert r.json()["active"]
    got = (await world.api.get(f"/v1/routing_configs/{one['id']}", headers=world.auth)).json()
    assert got["active"] is False
    listed = (await world.api.get("/v1/routing_configs", headers=world.auth)).json()
    assert listed["object"] == "list" and [c["version"] for c in listed["data"]] == [2, 1]
    page = (await world.api.get("/v1/routing_configs?limit=1", headers=world.auth)).json()
    assert page["has_more"] is True and page["data"][0]["id"] == second["id"]
    nxt = (await world.api.get(f"/v1/routing_configs?limit=1&starting_after={second['id']}",
                               headers=world.auth)).json()
    assert [c["id"] for c in nxt["data"]] == [one["id"]]


async def test_racing_creations_and_activations_leave_one_of_each(world: World):
    made = await asyncio.gather(*(world.api.post(
        "/v1/routing_configs", headers=world.auth,
        json={"default_route": {"strategy": "single", "psp": A if i % 2 else B}})
        for i in range(8)))
    assert all(r.status_code == 200 for r in made), [r.text for r in made]
    assert sorted(r.json()["version"] for r in made) == list(range(1, 9))
    ids = [r.json()["id"] for r in made]
    answers = await asyncio.gather(*(world.api.post(
        f"/v1/routing_configs/{i}/activate", headers=world.auth) for i in ids))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    active = await world.kassa.pool.fetchval(
        "SELECT count(*) FROM routing_configs WHERE merchant_id = $1 AND active",
        world.merchant_id)
    assert active == 1


async def test_configurations_are_immutable_in_the_database(world: World):
    made = (await world.api.post("/v1/routing_configs", headers=world.auth,
                                 json={"default_route": PRIORITY})).json()
    with pytest.raises(Exception, match="immutable"):
        await world.kassa.pool.execute(
            "UPDATE routing_configs SET default_route = '{\"strategy\": \"single\","
            " \"psp\": \"sim_b\"}' WHERE id = $1", made["id"])


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"default_route": {"strategy": "single", "psp": "nope"}}, "default_route[psp]",
     "resource_missing"),
    ({"default_route": {"strategy": "priority", "psps": [A, "stripe"]}},
     "default_route[psps][1]", "resource_missing"),
    ({"default_route": {"strategy": "volume_split", "split": [
        {"psp": A, "percent": 50}, {"psp": B, "percent": 40}]}}, "default_route[split]",
     "parameter_invalid"),
    ({"rules": [{"conditions": {"card_brand": "visa"},
                 "route": {"strategy": "single", "psp": "ghost"}}],
      "default_route": {"strategy": "single", "psp": A}}, "rules[0][route][psp]",
     "resource_missing"),
    ({}, "default_route", "parameter_missing"),
    ({"default_route": {"strategy": "single", "psp": A}, "colour": "red"}, "colour", None),
])
async def test_bad_configurations_are_400s(world: World, body, param, code):
    r = await world.api.post("/v1/routing_configs", headers=world.auth, json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    assert await world.kassa.pool.fetchval(
        "SELECT count(*) FROM routing_configs WHERE merchant_id = $1", world.merchant_id) == 0


async def test_a_disabled_account_is_refused(world: World):
    registry = world.kassa.psps
    assert isinstance(registry, PSPRegistry)
    import dataclasses

    accounts = [registry.account(n) for n in registry]
    world.kassa.psps = PSPRegistry(dataclasses.replace(a, enabled=a.name != B)
                                   for a in accounts)
    try:
        r = await world.api.post("/v1/routing_configs", headers=world.auth,
                                 json={"default_route": PRIORITY})
        assert r.status_code == 400 and r.json()["error"]["code"] == "psp_account_disabled"
        assert r.json()["error"]["param"] == "default_route[psps][1]"
    finally:
        world.kassa.psps = registry


async def test_form_encoded_create_and_unknown_ids(world: World):
    r = await world.api.post("/v1/routing_configs", headers=world.auth, data={
        "default_route[strategy]": "volume_split",
        "default_route[split][0][psp]": A, "default_route[split][0][percent]": "30",
        "default_route[split][1][psp]": B, "default_route[split][1][percent]": "70"})
    assert r.status_code == 200, r.text
    assert r.json()["default_route"]["split"] == [{"psp": A, "percent": 30},
                                                  {"psp": B, "percent": 70}]
    for url in ("/v1/routing_configs/rcfg_nope", "/v1/routing_configs/rcfg_nope/activate"):
        r = await (world.api.get(url, headers=world.auth) if "activate" not in url
                   else world.api.post(url, headers=world.auth))
        assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"
    r = await world.api.get("/v1/routing_configs?starting_after=rcfg_nope", headers=world.auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "starting_after"


async def test_another_merchant_sees_nothing(world: World):
    made = (await world.api.post("/v1/routing_configs", headers=world.auth,
                                 json={"default_route": PRIORITY})).json()
    other = await merchants.create_merchant(world.kassa, name="Other")
    auth = {"Authorization": f"Bearer {other['secret_key']}"}
    assert (await world.api.get(f"/v1/routing_configs/{made['id']}", headers=auth)
            ).status_code == 404
    assert (await world.api.post(f"/v1/routing_configs/{made['id']}/activate", headers=auth)
            ).status_code == 404
    assert (await world.api.get("/v1/routing_configs", headers=auth)).json()["data"] == []
    assert (await world.api.get("/v1/routing_configs")).status_code == 401
