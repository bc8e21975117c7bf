"""/docs in a real browser with the network cut off (issue 8, item 8): Debian's chromium,
driven by Playwright, may reach 127.0.0.1 only; Swagger UI must load from kassa itself and
render every operation of /openapi.json; /redoc, which cannot
help fetching ReDoc's logo from its CDN, is not served."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import httpx
import pytest

from kassa.api.app import create_app
from tests.support.api_server import serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason="Debian's chromium is not installed (apt-get install -y chromium)")


async def test_docs_render_every_operation_offline(kassa):
    from playwright.async_api import async_playwright

    app = create_app(kassa=kassa, key_cache_seconds=0.0)
    operations = {(method.upper(), path) for path, item in app.openapi()["paths"].items()
                  for method in item}
    assert len(operations) >= 25
    blocked: list[str] = []
    async with serving(app) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()

            async def only_loopback(route) -> None:
                if urlsplit(route.request.url).hostname == "127.0.0.1":
                    await route.continue_()
                else:
                    blocked.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_loopback)
            await page.goto(f"{url}/docs")
            await page.wait_for_selector(".opblock", timeout=20_000)
            try:
                await page.wait_for_function(
                    f"document.querySelectorAll('.opblock').length >= {len(operations)}",
                    timeout=10_000)
            except Exception:
                pass  # compared below, where the missing ones are named
            rendered = await page.eval_on_selector_all(
                ".opblock",
                "els => els.map(e => [e.querySelector('.opblock-summary-method').textContent,"
                " e.querySelector('.opblock-summary-path').getAttribute('data-path')])")
            errors = await page.eval_on_selector_all(".errors-wrapper, .loading-container .error",
                                                     "els => els.map(e => e.textContent)")
            # settle: anything the page would still fetch is caught (and blocked) by now
            await page.wait_for_load_state("networkidle")
        finally:
            await browser.close()
    assert blocked == [], f"/docs reached outside 127.0.0.1: {blocked}"
    assert errors == []
    assert {(m.upper(), p) for m, p in rendered} == operations
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kassa.test") as c:
        assert (await c.get("/redoc")).status_code == 404
