"""Dispute answers under an Idempotency-Key (issue 7 item 8, ARCHITECTURE §4): the key is
claimed before the PSP hears of the answer, so a reused key with other parameters, or a
request racing its twin, is refused without a PSP call; a holder that died after claiming
leaves a stale lock that a retry takes over to finish the answer.

"No PSP call" is proven at the simulator: a one-shot ``error`` fault is queued as a
tripwire before the request, and any mutating request reaching the simulator consumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from kassa.api.errors import render
from kassa.api.params import parse_body
from kassa.services import disputes, idempotency
from tests.integration.psp.conftest import World
from tests.integration.psp.test_disputes_api import disputed, sim_dispute


@contextlib.asynccontextmanager
async def no_psp_call(world: World) -> AsyncIterator[None]:
    """Assert that nothing inside reaches the simulator's mutating endpoints."""
    r = await world.sim.post("/_sim/faults", json={"faults": ["error"]})
    assert r.json()["faults_pending"] == ["error"], r.text
    yield
    stats = (await world.sim.get("/_sim/stats")).json()
    assert stats["faults_pending"] == ["error"], "a request reached the PSP"
    # disarm the tripwire with a request of our own (it answers the queued 503)
    r = await world.sim.post("/v1/disputes/sdp_tripwire/accept", json={})
    assert r.status_code == 503, r.text


async def sim_events(world: World, pi: dict) -> list[str]:
    """The dispute events the simulator emitted for a payment's dispute."""
    sim_id = (await sim_dispute(world, pi))["id"]
    return [e["type"] for e in (await world.sim.get("/_sim/webhooks")).json()
            if e["data"]["object"].get("id") == sim_id]


async def test_a_key_reused_for_another_concession_never_reaches_the_psp(world: World):
    pi_a, a = await disputed(world, amount=3000)
    pi_b, b = await disputed(world, amount=4000)
    key = {**world.auth, "Idempotency-Key": "answer-1"}
    r = await world.api.post(f"/v1/disputes/{a['id']}/close", headers=key)
    assert r.status_code == 200 and r.json()["status"] == "lost", r.text
    events_b = await sim_events(world, pi_b)
    assert events_b == ["dispute.created"]
    async with no_psp_call(world):
        r = await world.api.post(f"/v1/disputes/{b['id']}/close", headers=key)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "idempotency_error"
        r = await world.api.post(f"/v1/disputes/{b['id']}", headers=key, data={
            "evidence[uncategorized_text]": "winning_evidence", "submit": "true"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "idempotency_error"
    sim_b = await sim_dispute(world, pi_b)
    assert (sim_b["status"], sim_b["evidence"]) == ("needs_response", {})
    assert await sim_events(world, pi_b) == events_b
    got = (await world.api.get(f"/v1/disputes/{b['id']}", headers=world.auth)).json()
    assert got["status"] == "needs_response" and got["evidence_details"]["has_evidence"] is False
    # the key still replays its first answer
    r = await world.api.post(f"/v1/disputes/{a['id']}/close", headers=key)
    assert r.headers.get("Idempotent-Replayed") == "true" and r.json()["status"] == "lost"


async def test_a_key_reused_after_submitted_evidence_never_concedes(world: World):
    pi_a, a = await disputed(world, amount=3000)
    pi_b, b = await disputed(world, amount=4000)
    key = {**world.auth, "Idempotency-Key": "answer-2"}
    form = {"evidence[uncategorized_text]": "Tracking number 1Z999", "submit": "true"}
    first = await world.api.post(f"/v1/disputes/{a['id']}", headers=key, data=form)
    assert first.status_code == 200 and first.json()["status"] == "under_review", first.text
    events_a = await sim_events(world, pi_a)
    assert events_a == ["dispute.created", "dispute.updated"]  # → under_review, once
    async with no_psp_call(world):
        # same key, same request: the stored answer, no second submission
        again = await world.api.post(f"/v1/disputes/{a['id']}", headers=key, data=form)
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json() == first.json()
        r = await world.api.post(f"/v1/disputes/{b['id']}/close", headers=key)
        assert r.status_code == 400 and r.json()["error"]["type"] == "idempotency_error"
    assert (await sim_dispute(world, pi_b))["status"] == "needs_response"
    assert await sim_events(world, pi_a) == events_a


async def test_while_the_first_answer_runs_its_twin_gets_409_without_a_psp_call(
        world: World):
    pi, d = await disputed(world, amount=2500)
    path = f"/v1/disputes/{d['id']}/close"
    # the first request has claimed the key and not yet heard back from the PSP
    holder = idempotency.prepare(merchant_id=world.merchant_id, key="answer-3",
                                 method="POST", path=path, params={}, render=render)
    await disputes._claim_key(world.kassa, holder)
    async with no_psp_call(world):
        r = await world.api.post(path, headers={**world.auth, "Idempotency-Key": "answer-3"})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["type"] == "idempotency_error"
    assert (await sim_dispute(world, pi))["status"] == "needs_response"


async def test_two_concessions_racing_with_one_key_reach_the_psp_once(world: World):
    """Two real requests with the same key, the PSP slow: the first claims the key and
    concedes; its twin, arriving while the PSP is still answering, gets 409 and never
    reaches the PSP; a retry afterwards replays the first answer."""
    pi, d = await disputed(world, amount=2500)
    path = f"/v1/disputes/{d['id']}/close"
    headers = {**world.auth, "Idempotency-Key": "answer-race"}
    await world.configure(latency_ms=600)
    try:
        first = asyncio.create_task(world.api.post(path, headers=headers))
        await asyncio.sleep(0.3)  # the first is waiting on the PSP now
        twin = await world.api.post(path, headers=headers)
        first_answer = await first
    finally:
        await world.configure(latency_ms=0)
    assert twin.status_code == 409, twin.text
    assert first_answer.status_code == 200 and first_answer.json()["status"] == "lost"
    assert await sim_events(world, pi) == ["dispute.created", "dispute.closed"]
    again = await world.api.post(path, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first_answer.json()


async def age_lock(world: World, key: str) -> None:
    """Let the key's lock pass the takeover timeout, as if its holder died long ago."""
    await world.kassa.pool.execute(
        "UPDATE idempotency_keys SET locked_at = locked_at - make_interval(secs => $3)"
        " WHERE merchant_id = $1 AND key = $2", world.merchant_id, key,
        world.kassa.idempotency_lock_timeout_seconds + 1)


async def test_a_concession_whose_process_died_after_claiming_is_finished_by_a_retry(
        world: World):
    """The process died between the claim and the PSP call: nothing left kassa, the key
    stays locked. A retry within the lock timeout gets 409; after it, the retry takes the
    key over, concedes at the PSP once and stores the answer."""
    pi, d = await disputed(world, amount=2500)
    path = f"/v1/disputes/{d['id']}/close"
    headers = {**world.auth, "Idempotency-Key": "answer-4"}
    dead = idempotency.prepare(merchant_id=world.merchant_id, key="answer-4", method="POST",
                               path=path, params={}, render=render)
    await disputes._claim_key(world.kassa, dead)  # ... and the process dies here
    r = await world.api.post(path, headers=headers)
    assert r.status_code == 409, r.text
    await age_lock(world, "answer-4")
    r = await world.api.post(path, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "lost", r.text
    assert (await sim_dispute(world, pi))["status"] == "lost"
    again = await world.api.post(path, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == r.json()
    assert await world.events(d["id"]) == [
        "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.closed"]


async def test_a_submission_whose_process_died_after_the_psp_call_is_answered_by_a_retry(
        world: World):
    """The process died after the PSP accepted the evidence; the PSP's webhook recorded
    the submission. The retry takes the key over, resends the same evidence (a no-op at
    the PSP) and answers 200 with the evidence recorded."""
    pi, d = await disputed(world, amount=2500)
    path = f"/v1/disputes/{d['id']}"
    body = b"evidence[customer_name]=Ada&submit=true"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    headers = {**world.auth, **form, "Idempotency-Key": "answer-5"}
    dead = idempotency.prepare(merchant_id=world.merchant_id, key="answer-5", method="POST",
                               path=path, params=parse_body(form["Content-Type"], body),
                               render=render)
    await disputes._claim_key(world.kassa, dead)
    sim_id = (await sim_dispute(world, pi))["id"]
    r = await world.sim.post(f"/v1/disputes/{sim_id}/evidence",
                             json={"evidence": {"customer_name": "Ada"}, "submit": True})
    assert r.status_code == 200, r.text  # ... and the process dies here
    await world.flush()
    await world.apply()  # the PSP's dispute.updated: under_review
    assert (await world.api.get(path, headers=world.auth)).json()["status"] == "under_review"
    await age_lock(world, "answer-5")
    r = await world.api.post(path, headers=headers, content=body)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "under_review"
    assert r.json()["evidence"]["customer_name"] == "Ada"
    sim = await sim_dispute(world, pi)
    assert (sim["status"], sim["evidence"]) == ("under_review", {"customer_name": "Ada"})
    again = await world.api.post(path, headers=headers, content=body)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == r.json()


async def test_a_psp_refusal_after_the_claim_releases_the_key(world: World):
    """The issuer decided at the PSP before kassa heard of it: the concession passes
    kassa's own checks, claims the key, and the PSP refuses it. Nothing was recorded, so
    the key is released: the same key may be used again at once (no 409, no replay)."""
    pi, d = await disputed(world, amount=2500)
    auth_id = await world.authorization(pi)
    r = await world.sim.post(f"/_sim/disputes/{auth_id}/close", json={"outcome": "won"})
    assert r.status_code == 200, r.text  # the PSP's dispute.closed is held
    headers = {**world.auth, "Idempotency-Key": "answer-6"}
    r = await world.api.post(f"/v1/disputes/{d['id']}/close", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "dispute_not_updatable", r.text
    row = await world.kassa.pool.fetchrow(
        "SELECT 1 FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
        world.merchant_id, "answer-6")
    assert row is None
    await world.flush()
    await world.apply()
    r = await world.api.post(f"/v1/disputes/{d['id']}/close", headers=headers)
    assert r.status_code == 400 and r.headers.get("Idempotent-Replayed") is None, r.text
    assert (await world.api.get(f"/v1/disputes/{d['id']}", headers=world.auth)
            ).json()["status"] == "won"
