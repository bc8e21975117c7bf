"""The hosted checkout page in a real browser (Debian's chromium, driven by Playwright) that
may reach 127.0.0.1 only: pay, a decline shown inline, 3-D Secure passed and failed in the
same flow, a double click on Pay, the back button. Each test counts the money at the
simulator's own books and in kassa's ledger; the card number goes to the vault only."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.async_api import expect

from kassa.api.app import create_app
from kassa.ledger.verify import verify
from kassa.services import merchants
from tests.support.api_server import serving
from tests.support.vault import kassa_through, running_vault

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# README's picture of the page: refreshed by a run with KASSA_UPDATE_SCREENSHOTS=1
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "checkout.png"
RETURN = "http://127.0.0.1:9/shop/done"  # the merchant's page: nothing listens there

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason="Debian's chromium is not installed (apt-get install -y chromium)")


class Shop:
    def __init__(self, k, api_url, vault_url, sim_url, merchant, page, seen):
        self.k, self.api_url, self.vault_url, self.sim_url = k, api_url, vault_url, sim_url
        self.merchant, self.page, self.seen = merchant, page, seen
        self.merchant_pages: dict[str, str] = {}  # path on merchant_site -> HTML

    async def intent(self, amount=2500, **extra):
        from kassa.services import payments

        return await payments.create(self.k, merchant_id=self.merchant["merchant_id"],
                                     amount=amount, currency="eur",
                                     description="Order 1001", **extra)

    def url(self, pi, return_url=RETURN):
        query = {"client_secret": pi["client_secret"]}
        if return_url:
            query["return_url"] = return_url
        return f"{self.api_url}/checkout/{pi['id']}?{urlencode(query)}"

    async def fill(self, number, expiry="12 / 34", cvc="123"):
        await self.page.fill("#cardholder-name", "Jenny Rosen")
        await self.page.fill("input[autocomplete=cc-number]", number)
        await self.page.fill("input[autocomplete=cc-exp]", expiry)
        await self.page.fill("input[autocomplete=cc-csc]", cvc)

    async def fill_card_only(self, number, expiry="12 / 34", cvc="123"):
        await self.page.fill("input[autocomplete=cc-number]", number)
        await self.page.fill("input[autocomplete=cc-exp]", expiry)
        await self.page.fill("input[autocomplete=cc-csc]", cvc)

    async def books(self):
        """The simulator's own record of this merchant's authorisations."""
        import httpx

        async with httpx.AsyncClient() as c:
            rows = (await c.get(f"{self.sim_url}/_sim/authorizations")).json()
        return [r for r in rows if r["merchant_id"] == self.merchant["merchant_id"]]

    async def ledger_captured(self):
        return await self.k.pool.fetchval(
            "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN ledger_transactions"
            " t ON t.id = e.transaction_id WHERE t.kind = 'capture' AND t.merchant_id = $1"
            " AND e.account LIKE 'psp:%:receivable'", self.merchant["merchant_id"])


@pytest.fixture
async def shop(settings, dsn, simulator_url):
    from playwright.async_api import async_playwright

    async with running_vault(settings, dsn) as vault, kassa_through(vault, dsn) as k, \
            serving(create_app(kassa=k, key_cache_seconds=0.0)) as api_url, \
            async_playwright() as pw:
        k.public_url = api_url  # where the simulator sends the customer after 3-D Secure
        merchant = await merchants.create_merchant(k, name="Browser shop")
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            seen: dict[str, list[str]] = {"blocked": [], "requests": [], "bodies": []}

            async def only_loopback(route) -> None:
                url = route.request.url
                host = urlsplit(url).hostname
                if host == "127.0.0.1" and urlsplit(url).port != 9:
                    seen["requests"].append(url)
                    if route.request.post_data:
                        seen["bodies"].append(f"{url} {route.request.post_data}")
                    await route.continue_()
                elif host == "127.0.0.1":  # the merchant's return page: answered here
                    seen["requests"].append(url)
                    await route.fulfill(status=200, content_type="text/html",
                                        body="<!doctype html><title>Shop</title><h1>Thanks</h1>")
                else:
                    seen["blocked"].append(url)
                    await route.abort()

            await context.route("**/*", only_loopback)
            yield Shop(k, api_url, vault.url, simulator_url, merchant, page, seen)
            assert seen["blocked"] == []  # the page needed nothing but kassa and its vault
            assert (await verify(k.pool)).ok
        finally:
            with contextlib.suppress(Exception):
                await browser.close()


def _final(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_a_payment_succeeds_and_returns_to_the_shop(shop, tmp_path):
    pi = await shop.intent()
    page = shop.page
    await page.goto(shop.url(pi))
    await page.wait_for_selector("input[autocomplete=cc-number]")
    assert await page.text_content("#amount") == "25.00 EUR"
    await shop.fill("4242424242424242")
    shot = SCREENSHOT if os.environ.get("KASSA_UPDATE_SCREENSHOTS") else tmp_path / "page.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    await page.click("#pay")
    await page.wait_for_url(RETURN + "*")
    assert _final(page.url) == {"payment_intent": pi["id"], "redirect_status": "succeeded"}
    books = await shop.books()
    assert [(b["amount"], b["amount_captured"]) for b in books] == [(2500, 2500)]
    assert await shop.ledger_captured() == 2500
    # the number went to the vault, never to the API
    posted = shop.seen["bodies"]
    assert any(b.startswith(shop.vault_url) and "4242424242424242" in b for b in posted)
    assert not any(b.startswith(shop.api_url) and "4242" in b for b in posted)


async def test_a_decline_is_shown_and_another_card_pays(shop):
    pi = await shop.intent(amount=1800)
    page = shop.page
    await page.goto(shop.url(pi))
    await page.wait_for_selector("input[autocomplete=cc-number]")
    await shop.fill("4000000000009995")
    await page.click("#pay")
    await page.wait_for_selector("#card-errors:not([hidden])")
    assert "insufficient funds" in (await page.text_content("#card-errors")).lower()
    assert await page.is_enabled("#pay")
    assert page.url.startswith(shop.api_url)  # still on the page, nothing redirected
    await shop.fill("4000000000000002")
    await page.click("#pay")
    await expect(page.locator("#card-errors")).to_contain_text("declined")
    await shop.fill("5555555555554444")
    await page.click("#pay")
    await page.wait_for_url(RETURN + "*")
    assert _final(page.url)["redirect_status"] == "succeeded"
    books = await shop.books()
    assert sorted(b["status"] for b in books).count("captured") == 1
    assert sum(b["amount_captured"] for b in books) == 1800
    assert await shop.ledger_captured() == 1800


async def test_an_invalid_number_is_refused_by_the_vault_inline(shop):
    pi = await shop.intent()
    page = shop.page
    await page.goto(shop.url(pi))
    await page.wait_for_selector("input[autocomplete=cc-number]")
    await shop.fill("4242424242424241")
    await page.click("#pay")
    await page.wait_for_selector("#card-errors:not([hidden])")
    assert "number" in (await page.text_content("#card-errors")).lower()
    assert await shop.books() == []


async def test_3ds_challenge_passed_in_the_same_flow(shop):
    pi = await shop.intent(amount=3100)
    page = shop.page
    await page.goto(shop.url(pi))
    await page.wait_for_selector("input[autocomplete=cc-number]")
    await shop.fill("4000002500003155")
    await page.click("#pay")
    await page.wait_for_selector("#succeed")  # the bank's (simulator's) challenge page
    await page.click("#succeed")
    await page.wait_for_url(RETURN + "*")
    assert _final(page.url) == {"payment_intent": pi["id"], "redirect_status": "succeeded"}
    assert [b["amount_captured"] for b in await shop.books()] == [3100]
    assert await shop.ledger_captured() == 3100


async def test_3ds_challenge_failed_is_shown_on_the_page(shop):
    pi = await shop.intent(amount=3200)
    page = shop.page
    await page.goto(shop.url(pi))
    await page.wait_for_selector("input[autocomplete=cc-number]")
    await shop.fill("4000002760003184")
    await page.click("#pay")
    await page.wait_for_selector("#fail")
    await page.click("#fail")
    await page.wait_for_selector("#card-errors:not([hidden])")
    assert page.url.startswith(f"{shop.api_url}/checkout/{pi['id']}")
    assert "authenticat" in (await page.text_content("#card-errors")).lower()
    assert await page.is_enabled("#pay")
    assert [b["amount_captured"] for b in await shop.books()] == [0]
    assert await shop.ledger_captured() == 0


async def test_a_double_click_on_pay_charges_once(shop):
    pi = await shop.intent(amount=4400)
    page = shop.page
    await page.goto(shop.url(pi))
    await page.wait_for_selector("input[autocomplete=cc-number]")
    await shop.fill("4242424242424242")
    await page.dblclick("#pay")
    await page.wait_for_url(RETURN + "*")
    books = await shop.books()
    assert [(b["amount"], b["amount_captured"]) for b in books] == [(4400, 4400)]
    assert await shop.ledger_captured() == 4400
    confirms = [u for u in shop.seen["requests"] if u.endswith(f"/checkout/{pi['id']}/confirm")]
    assert len(confirms) == 1


async def test_the_back_button_after_paying_shows_it_paid_and_charges_nothing_more(shop):
    pi = await shop.intent(amount=1500)
    page = shop.page
    await page.goto(shop.url(pi))
    await page.wait_for_selector("input[autocomplete=cc-number]")
    await shop.fill("4242424242424242")
    await page.click("#pay")
    await page.wait_for_url(RETURN + "*")
    await page.go_back()
    await page.wait_for_selector("#outcome")
    assert "Payment complete" in await page.text_content("#outcome")
    assert await page.query_selector("#pay") is None
    assert [b["amount_captured"] for b in await shop.books()] == [1500]
    assert await shop.ledger_captured() == 1500


async def test_without_a_return_url_the_page_shows_the_outcome(shop):
    pi = await shop.intent(amount=900)
    page = shop.page
    await page.goto(shop.url(pi, return_url=None))
    await page.wait_for_selector("input[autocomplete=cc-number]")
    await shop.fill("4000002500003155")
    await page.click("#pay")
    await page.wait_for_selector("#succeed")
    await page.click("#succeed")
    await page.wait_for_selector("#outcome")
    assert "Payment complete" in await page.text_content("#outcome")
    assert [b["amount_captured"] for b in await shop.books()] == [900]


def _readme_example(shop, pi, shop_url) -> str:
    from tests.support.readme import README, fenced_blocks

    [block] = [b for b in fenced_blocks(README.read_text()) if b.tags == ("kassa-example",)]
    html = block.text
    for given, actual in (("http://localhost:8000", shop.api_url),
                          ("http://localhost:8002", shop.vault_url),
                          ("http://localhost:3000", shop_url),
                          ("pk_test_…", shop.merchant["publishable_key"]),
                          ("pi_…_secret_…", pi["client_secret"])):
        assert given in html, given
        html = html.replace(given, actual)
    return "<!doctype html><html><head><meta charset=\"utf-8\"><title>Shop</title></head>" \
        f"<body>{html}</body></html>"


@contextlib.asynccontextmanager
async def merchant_site(pages: dict[str, str]):
    """The merchant's own web server on loopback (another origin than kassa's)."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def serve(request):
        return HTMLResponse(pages.get(request.url.path,
                                      "<!doctype html><title>Shop</title><h1>Thanks</h1>"))

    async with serving(Starlette(routes=[Route("/{path:path}", serve)])) as url:
        yield url


async def test_the_readme_kassa_js_example_pays_from_the_merchants_own_page(shop):
    async with merchant_site(shop.merchant_pages) as shop_url:
        await _pay_with_the_readme_example(shop, shop_url)


async def _pay_with_the_readme_example(shop, shop_url):
    import httpx

    from kassa.checkout.assets import asset

    async with httpx.AsyncClient() as c:
        served = await c.get(f"{shop.api_url}/kassa.js")
    assert served.headers["x-kassa-integrity"] == asset("kassa.js").integrity
    pi = await shop.intent(amount=2700)
    shop.merchant_pages["/shop/pay"] = _readme_example(shop, pi, shop_url)
    assert asset("kassa.js").integrity in shop.merchant_pages["/shop/pay"]  # README is current
    page = shop.page
    await page.goto(f"{shop_url}/shop/pay")  # another origin than kassa's: CORS
    await page.wait_for_selector("input[autocomplete=cc-number]")
    await shop.fill_card_only("4000002500003155")
    await page.click("#pay")
    await page.wait_for_selector("#succeed")
    await page.click("#succeed")
    await page.wait_for_url(f"{shop_url}/checkout/done*")
    assert _final(page.url) == {"payment_intent": pi["id"], "redirect_status": "succeeded"}

    second = await shop.intent(amount=1100)
    shop.merchant_pages["/shop/pay"] = _readme_example(shop, second, shop_url)
    await page.goto(f"{shop_url}/shop/pay")
    await page.wait_for_selector("input[autocomplete=cc-number]")
    await shop.fill_card_only("4000000000000002")
    await page.click("#pay")
    await page.wait_for_selector("#payment-error:not([hidden])")
    assert "declined" in (await page.text_content("#payment-error")).lower()
    await shop.fill_card_only("4242424242424242")
    await page.click("#pay")
    await page.wait_for_url(f"{shop_url}/checkout/done*")
    assert _final(page.url)["redirect_status"] == "succeeded"
    assert sorted(b["amount_captured"] for b in await shop.books()) == [0, 1100, 2700]
    assert await shop.ledger_captured() == 3800


async def test_a_native_submit_sends_no_card_data_anywhere(shop):
    """The card fields have no name attribute: a form submitted natively (the page's script
    not running, Enter before kassa.js loaded) carries neither the number nor the CVC to
    the page's URL; autofill still finds the fields by `autocomplete`."""
    pi = await shop.intent()
    page = shop.page
    await page.goto(shop.url(pi))
    await page.wait_for_selector("input[autocomplete=cc-number]")
    names = await page.eval_on_selector_all(
        "#payment-form input", "els => els.map(e => e.getAttribute('name'))")
    assert names and all(n is None for n in names), names
    await shop.fill("4242424242424242", cvc="737")
    async with page.expect_navigation():
        # what a browser does without the page's submit handler: a GET of the form's fields
        await page.evaluate("HTMLFormElement.prototype.submit.call("
                            "document.getElementById('payment-form'))")
    sent = " ".join([page.url, *shop.seen["requests"], *shop.seen["bodies"]])
    assert "4242424242424242" not in sent and "4242+4242" not in sent
    assert "cvc=" not in sent and "737&" not in sent and not sent.endswith("737")
    assert "Jenny" not in page.url
    assert await shop.books() == []  # nothing was charged


async def test_kassa_js_refuses_a_secret_or_restricted_key(shop):
    pi = await shop.intent()
    page = shop.page
    await page.goto(shop.url(pi))
    await page.wait_for_selector("input[autocomplete=cc-number]")
    for key in ("sk_test_abc", "rk_live_abc", "sk_live_abc"):
        message = await page.evaluate("""key => {
            try { window.Kassa(key, {vaultUrl: "http://127.0.0.1:1"}); return null; }
            catch (e) { return e.message; } }""", key)
        assert message is not None and "secret key" in message, (key, message)
    made = await page.evaluate("""() => typeof window.Kassa("pk_test_abc", {}).mountCard""")
    assert made == "function"  # a publishable key (or a checkout token) is fine


async def test_a_merchants_page_cannot_use_a_secret_key(shop):
    """From another origin, in chromium: a secret-key route's preflight fails (the request
    is never sent), a browser route answers 403 secret_key_from_browser (the page may read
    why), the vault takes no card with a secret key; the publishable key works."""
    pi = await shop.intent()
    sk, pk = shop.merchant["secret_key"], shop.merchant["publishable_key"]
    before = await shop.k.pool.fetchval("SELECT count(*) FROM payment_intents WHERE "
                                        "merchant_id = $1", shop.merchant["merchant_id"])
    async with merchant_site(shop.merchant_pages) as shop_url:
        await shop.page.goto(f"{shop_url}/shop/keys")
        answers = await shop.page.evaluate("""async ([api, vault, pi, secret, sk, pk]) => {
            async function call(url, key, init) {
              try {
                const r = await fetch(url, {...init, headers: {
                    "Authorization": "Bearer " + key,
                    "Content-Type": "application/x-www-form-urlencoded"}});
                const body = await r.json();
                return {status: r.status, code: body.error ? body.error.code : null};
              } catch (e) { return {blocked: true}; }
            }
            return {
              create: await call(api + "/v1/payment_intents", sk,
                                 {method: "POST", body: "amount=500&currency=eur"}),
              confirm: await call(api + "/v1/payment_intents/" + pi + "/confirm", sk,
                                  {method: "POST", body: "payment_method=pm_card_visa"}),
              card: await call(vault + "/v1/payment_methods", sk, {method: "POST",
                  body: "type=card&card[number]=4242424242424242&card[exp_month]=12" +
                        "&card[exp_year]=2034"}),
              retrieve: await call(api + "/v1/payment_intents/" + pi + "?client_secret=" +
                                   encodeURIComponent(secret), pk, {method: "GET"}),
            };
        }""", [shop.api_url, shop.vault_url, pi["id"], pi["client_secret"], sk, pk])
    assert answers["create"] == {"blocked": True}
    assert answers["confirm"] == {"status": 403, "code": "secret_key_from_browser"}
    assert answers["card"] == {"status": 403, "code": "secret_key_from_browser"}
    assert answers["retrieve"] == {"status": 200, "code": None}
    after = await shop.k.pool.fetchval("SELECT count(*) FROM payment_intents WHERE "
                                       "merchant_id = $1", shop.merchant["merchant_id"])
    assert after == before and await shop.books() == []  # nothing created, nothing charged
    assert await shop.k.pool.fetchval("SELECT count(*) FROM kassa_vault.payment_methods "
                                      "WHERE merchant_id = $1",
                                      shop.merchant["merchant_id"]) == 0
