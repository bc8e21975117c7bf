"""The checkout page's static files, read once, each with its Subresource Integrity hash
(``sha384-…``): the page names its scripts and stylesheet with it, so a browser runs only
the exact bytes kassa ships (PCI DSS 6.4.3)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

MEDIA_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
NAMES = ("kassa.js", "checkout.js", "checkout.css")


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    media_type: str
    integrity: str  # sha384-<base64>, for the integrity attribute


@cache
def asset(name: str) -> Asset:
    if name not in NAMES:
        raise KeyError(name)
    body = resources.files("kassa.checkout").joinpath("static", name).read_bytes()
    digest = base64.b64encode(hashlib.sha384(body).digest()).decode()
    return Asset(name, body, MEDIA_TYPES[name.rsplit(".", 1)[1]], f"sha384-{digest}")
