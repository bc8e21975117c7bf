"""What a web page may ask of kassa (the API and the vault): CORS headers and preflight
answers only on the routes a page calls with a publishable key (or a client_secret, or a
checkout token), and no secret or restricted key from a page at all.

A secret key (``sk_``) or restricted key (``rk_``) sent with another site's ``Origin`` is a
key published in a web page: it is refused (403, ``secret_key_from_browser``) before any
handler runs, so nothing happens, and the answer says why. A request without ``Origin``
(servers, SDKs, curl) or from kassa's own pages (the API docs) is not a page of another
site's. Starlette's CORSMiddleware answers the allowed routes; the others get no CORS
header, so a browser refuses to send (or to show) them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from kassa.api import errors
from kassa.api.deps import api_key_of

SECRET_PREFIXES = ("sk_", "rk_")
MESSAGE = ("Secret and restricted API keys (sk_…, rk_…) must not be used in a browser: "
           "anyone who opens the page can read them. Use your publishable key (pk_…) with "
           "kassa.js or the hosted checkout page, and call kassa with secret keys from your "
           "server only. If this key was on a web page, roll it.")
# the API's browser routes: retrieve and confirm with a publishable key and client_secret
# (as Stripe.js), the hosted checkout page, its confirm and assets, kassa.js
API_ROUTES = (("GET", r"/v1/payment_intents/(?!search$)[^/]+"),
              ("POST", r"/v1/payment_intents/[^/]+/confirm"),
              ("GET", r"/checkout/[^/]+"), ("POST", r"/checkout/[^/]+/confirm"),
              ("GET", r"/checkout/assets/[^/]+"), ("GET", r"/kassa\.js"))
VAULT_ROUTES = (("POST", r"/v1/payment_methods"),)  # a card, from kassa.js or the page


class SecretKeyFromBrowser(errors.PermissionDenied):
    code = "secret_key_from_browser"


def secret_key_from_another_site(headers: Headers) -> bool:
    """A secret or restricted key, sent with the ``Origin`` of a site other than this
    server (compared by host: a TLS-terminating proxy changes the scheme, not the host)."""
    origin = headers.get("origin")
    if origin is None or not api_key_of(headers.get("authorization", "")).startswith(
            SECRET_PREFIXES):
        return False
    try:
        host = urlsplit(origin).netloc
    except ValueError:
        return True
    return not host or host.lower() != headers.get("host", "").lower()


class BrowserDoor:
    def __init__(self, app: ASGIApp, *, routes: Iterable[tuple[str, str]],
                 allow_headers: Sequence[str], expose_headers: Sequence[str] = ()) -> None:
        self.app = app
        self.routes = [(method, re.compile(pattern)) for method, pattern in routes]
        # keys travel in a header, never a cookie (no credentials are allowed), so allowing
        # every origin lends no ambient authority to another site
        options = dict(allow_origins=["*"],
                       allow_methods=sorted({method for method, _ in self.routes}),
                       allow_headers=list(allow_headers), expose_headers=list(expose_headers))
        self.cors = CORSMiddleware(app, **options)  # type: ignore[arg-type]
        self.refuse_with_cors = CORSMiddleware(_refuse, **options)  # type: ignore[arg-type]

    def browser_route(self, scope: Scope, headers: Headers) -> bool:
        method = scope["method"]
        if method == "OPTIONS":  # a preflight: the method the page is about to send
            method = headers.get("access-control-request-method", "")
        path = scope["path"]
        return any(m == method and p.fullmatch(path) for m, p in self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        allowed = self.browser_route(scope, headers)
        if secret_key_from_another_site(headers):
            # on a browser route the page may read why (the message is for its developer)
            await (self.refuse_with_cors if allowed else _refuse)(scope, receive, send)
            return
        await (self.cors if allowed else self.app)(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    status, body = errors.render(SecretKeyFromBrowser(MESSAGE))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
