"""Load generator for the payments benchmark, run as its own process (``python -m bench.load``).

It reads a JSON spec on stdin and prints one JSON result on stdout. Keeping it out of the
orchestrating process means it never shares a GIL with anything else, and its CPU can be
measured on its own. aiohttp is used when installed (several times cheaper per request than
httpx, which is the fallback).

A *payment* is one card payment captured automatically:

- ``confirm`` flow: ``POST /v1/payment_intents`` with ``confirm=true`` (one call);
- ``two_call`` flow: ``POST /v1/payment_intents`` then ``POST …/{id}/confirm``.

With ``cards="vault"`` each payment is what a checkout does with a real card number: the
card is tokenised at the vault with the merchant's publishable key (``POST
/v1/payment_methods``), then paid with the ``pm_…`` it got, the API forwarding the card
data through the vault to the PSP. Otherwise the payment uses Stripe's test id
``pm_card_visa`` (no vault involved). With ``cards="saved"`` it pays with the merchant's
saved card (a vault card attached to a customer): the forwarding path alone, no tokenising.

Every call carries a fresh ``Idempotency-Key``. Modes: ``closed`` (``concurrency`` workers
issue back to back) and ``open`` (payments start on a fixed schedule at ``rate``/s; latency
counts from the scheduled start, so a stalled server is not hidden by coordinated
omission). Afterwards ``replay`` completed confirm-flow requests can be re-sent with their
original keys to time idempotent replays.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from bench.stats import summarize_ms

PATH = "/v1/payment_intents"


@dataclass(frozen=True)
class Spec:
    base_url: str
    keys: list[str]
    publishable: list[str] = field(default_factory=list)  # the same merchants' keys
    cards: str = "test"  # test | vault | saved
    saved: list[str] = field(default_factory=list)  # "customer=…&payment_method=…" each
    vault_url: str = ""
    flow: str = "confirm"  # confirm | two_call
    mode: str = "closed"  # closed | open
    duration: float = 20.0
    warmup: float = 2.0
    concurrency: int = 64
    rate: float = 0.0  # payments per second (open loop)
    max_in_flight: int = 4096  # open loop: beyond this, scheduled payments queue
    replay: int = 0
    replay_concurrency: int = 16


# ------------------------------------------------------------------------ HTTP clients


class Client(Protocol):
    name: str

    async def post(self, url: str, body: bytes, headers: dict[str, str]
                   ) -> tuple[int, bool, bytes]:
        """(status, Idempotent-Replayed header set, body)."""
        ...

    async def close(self) -> None: ...


class AiohttpClient:
    name = "aiohttp"

    def __init__(self, limit: int) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=120))

    async def post(self, url: str, body: bytes, headers: dict[str, str]
                   ) -> tuple[int, bool, bytes]:
        async with self._session.post(url, data=body, headers=headers) as r:
            data = await r.read()
            return r.status, r.headers.get("Idempotent-Replayed") == "true", data

    async def close(self) -> None:
        await self._session.close()


class HttpxClient:
    name = "httpx"

    def __init__(self, limit: int) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            timeout=120)

    async def post(self, url: str, body: bytes, headers: dict[str, str]
                   ) -> tuple[int, bool, bytes]:
        r = await self._client.post(url, content=body, headers=headers)
        return r.status_code, r.headers.get("Idempotent-Replayed") == "true", r.content

    async def close(self) -> None:
        await self._client.aclose()


def client_name() -> str:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return "httpx"
    return "aiohttp"


def make_client(limit: int) -> Client:
    return AiohttpClient(limit) if client_name() == "aiohttp" else HttpxClient(limit)


# ------------------------------------------------------------------------ one payment


@dataclass(frozen=True, slots=True)
class Sent:
    """A completed confirm-flow request, kept so it can be replayed with the same key."""

    key: str
    idempotency_key: str
    body: bytes
    payment_id: str


@dataclass(slots=True)
class Result:
    outcome: str  # "succeeded", "200 <status>", "<http status> <error code>", "exc <name>"
    confirm_latency: float | None = None  # two_call flow: the confirm call alone
    sent: Sent | None = None


def headers(key: str, idempotency_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key,
            "Content-Type": "application/x-www-form-urlencoded"}


def classify(status: int, data: bytes) -> tuple[str, dict[str, Any] | None]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return f"{status} non-json", None
    if status == 200:
        state = obj.get("status")
        return ("succeeded" if state == "succeeded" else f"200 {state}"), obj
    err = obj.get("error", {}) if isinstance(obj, dict) else {}
    return f"{status} {err.get('code') or err.get('type') or '?'}", None


def payment_body(confirm: bool, card: str = "payment_method=pm_card_visa") -> bytes:
    body = f"amount={random.randint(100, 99_999)}&currency=usd&{card}"
    return (body + "&confirm=true" if confirm else body).encode()


CARD = (b"type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2034"
        b"&card[cvc]=123")


async def tokenise(client: Client, vault_url: str, publishable: str) -> str | Result:
    """The card's ``pm_…`` from the vault, or the failed outcome."""
    status, _, data = await client.post(vault_url + "/v1/payment_methods", CARD,
                                        headers(publishable, str(uuid.uuid4())))
    if status != 200:
        return Result(f"tokenise: {classify(status, data)[0]}")
    return str(orjson.loads(data)["id"])


async def pay_confirm(client: Client, base: str, key: str,
                      card: str = "payment_method=pm_card_visa") -> Result:
    idem, body = str(uuid.uuid4()), payment_body(confirm=True, card=card)
    status, _, data = await client.post(base + PATH, body, headers(key, idem))
    outcome, obj = classify(status, data)
    sent = Sent(key, idem, body, obj["id"]) if outcome == "succeeded" and obj else None
    return Result(outcome, sent=sent)


async def pay_two_calls(client: Client, base: str, key: str) -> Result:
    status, _, data = await client.post(base + PATH, payment_body(confirm=False),
                                        headers(key, str(uuid.uuid4())))
    outcome, obj = classify(status, data)
    if obj is None or outcome != "200 requires_confirmation":
        return Result(f"create: {outcome}")
    started = time.perf_counter()
    status, _, data = await client.post(f"{base}{PATH}/{obj['id']}/confirm", b"",
                                        headers(key, str(uuid.uuid4())))
    return Result(classify(status, data)[0], confirm_latency=time.perf_counter() - started)


async def attempt(spec: Spec, client: Client, i: int | None = None) -> Result:
    """One payment of merchant ``i`` (default: a random one) as the spec says."""
    i = random.randrange(len(spec.keys)) if i is None else i
    try:
        if spec.cards == "saved":
            return await pay_confirm(client, spec.base_url, spec.keys[i], spec.saved[i])
        if spec.cards == "vault":
            pm = await tokenise(client, spec.vault_url, spec.publishable[i])
            return pm if isinstance(pm, Result) else await pay_confirm(
                client, spec.base_url, spec.keys[i], f"payment_method={pm}")
        pay = pay_confirm if spec.flow == "confirm" else pay_two_calls
        return await pay(client, spec.base_url, spec.keys[i])
    except Exception as exc:  # transport errors are outcomes to count, not crashes
        return Result(f"exc {type(exc).__name__}")


# ------------------------------------------------------------------------ recording


@dataclass
class Recorder:
    """Keeps what completed; the measured window excludes the warm-up."""

    window_start: float
    window_end: float
    keep: int = 0  # how many Sent to keep for the replay phase
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    confirm_latencies: list[float] = field(default_factory=list)
    completed_in_window: int = 0
    sent: list[Sent] = field(default_factory=list)

    def add(self, started: float, ended: float, result: Result) -> None:
        self.outcomes[result.outcome] += 1
        ok = result.outcome == "succeeded"
        if ok and self.window_start <= ended <= self.window_end:
            self.completed_in_window += 1
        if ok and self.window_start <= started < self.window_end:
            self.latencies.append(ended - started)
            if result.confirm_latency is not None:
                self.confirm_latencies.append(result.confirm_latency)
        if result.sent is not None and len(self.sent) < self.keep:
            self.sent.append(result.sent)

    def summary(self) -> dict[str, Any]:
        window = self.window_end - self.window_start
        return {
            "window_s": round(window, 2),
            "payments_per_s": round(self.completed_in_window / window, 1),
            "outcomes": dict(self.outcomes.most_common()),
            "latency": summarize_ms(self.latencies),
            "confirm_latency": (summarize_ms(self.confirm_latencies)
                                if self.confirm_latencies else None),
        }


# ------------------------------------------------------------------------ load modes


async def closed_loop(spec: Spec, client: Client, rec: Recorder) -> None:
    async def worker() -> None:
        while time.perf_counter() < rec.window_end:
            started = time.perf_counter()
            result = await attempt(spec, client)
            rec.add(started, time.perf_counter(), result)

    await asyncio.gather(*(worker() for _ in range(spec.concurrency)))


async def open_loop(spec: Spec, client: Client, rec: Recorder) -> int:
    """Start payments on schedule regardless of how the previous ones fare; returns count."""
    interval = 1.0 / spec.rate
    gate = asyncio.Semaphore(spec.max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    first = time.perf_counter()

    async def one(scheduled: float) -> None:
        async with gate:
            result = await attempt(spec, client)
        rec.add(scheduled, time.perf_counter(), result)

    n = 0
    while (scheduled := first + n * interval) < rec.window_end:
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    await asyncio.gather(*tasks)
    return n


async def replay(spec: Spec, client: Client, sent: list[Sent]) -> dict[str, Any]:
    """Re-send completed requests with their original keys; the stored answer must return."""
    queue = list(reversed(sent))
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()

    async def worker() -> None:
        while queue:
            s = queue.pop()
            started = time.perf_counter()
            try:
                status, replayed, data = await client.post(
                    spec.base_url + PATH, s.body, headers(s.key, s.idempotency_key))
            except Exception as exc:
                outcomes[f"exc {type(exc).__name__}"] += 1
                continue
            latencies.append(time.perf_counter() - started)
            same = status == 200 and orjson.loads(data).get("id") == s.payment_id
            outcomes["replayed" if replayed and same else f"{status} not replayed"] += 1

    await asyncio.gather(*(worker() for _ in range(spec.replay_concurrency)))
    return {"outcomes": dict(outcomes), "latency": summarize_ms(latencies),
            "concurrency": spec.replay_concurrency}


async def run(spec: Spec) -> dict[str, Any]:
    limit = spec.concurrency if spec.mode == "closed" else spec.max_in_flight
    client = make_client(max(limit, spec.replay_concurrency))
    start = time.perf_counter()
    rec = Recorder(start + spec.warmup, start + spec.warmup + spec.duration, keep=spec.replay)
    print("started", flush=True)  # the orchestrator times its CPU window from here
    try:
        result: dict[str, Any] = {"client": client.name}
        if spec.mode == "closed":
            await closed_loop(spec, client, rec)
        else:
            issued = await open_loop(spec, client, rec)
            result["offered_rate"] = spec.rate
            result["issued"] = issued
        result |= rec.summary()
        if spec.replay and rec.sent:
            result["replay"] = await replay(spec, client, rec.sent)
        return result
    finally:
        await client.close()


def _event_loop_runner() -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main() -> None:
    spec = Spec(**json.load(sys.stdin))
    # the measuring instrument must not pause: full collections here would show up as
    # server latency (same tuning as kassa.bootstrap.tune_gc)
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    result = _event_loop_runner()(run(spec))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
