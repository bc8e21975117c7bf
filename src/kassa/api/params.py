"""Request parameters: JSON bodies, or Stripe's form encoding with bracket notation
(``metadata[order]=7``, ``expand[]=x``, ``items[0][price]=p``), both into one dict."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

import orjson

from kassa.domain.errors import InvalidRequest

_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def _split(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    if not rest:
        return [key]
    segments = _SEGMENT.findall("[" + rest)
    if "[" + rest != "".join(f"[{s}]" for s in segments):
        raise InvalidRequest(f"Invalid parameter name: {key}", param=key)
    return [head, *segments]


def _insert(target: dict[str, Any], path: list[str], value: str, key: str) -> None:
    node: Any = target
    for i, segment in enumerate(path):
        last = i == len(path) - 1
        nxt = None if last else path[i + 1]
        if isinstance(node, list):
            if segment == "":
                if last:
                    node.append(value)
                    return
                node.append({} if nxt not in ("",) and not _index(nxt or "") else [])
                node = node[-1]
                continue
            if not _index(segment):
                raise InvalidRequest(f"Invalid array index in {key}", param=key)
            idx = int(segment)
            if idx > len(node):  # indices must be dense: items[5] needs items[0..4] first
                raise InvalidRequest(f"Invalid array index in {key}: indices must start at 0 "
                                     "and increase by one", param=key)
            if idx == len(node):
                node.append(None)
            if last:
                if node[idx] is not None:
                    raise InvalidRequest(f"Conflicting parameter: {key}", param=key)
                node[idx] = value
                return
            if node[idx] is None:
                node[idx] = [] if nxt == "" or (nxt or "").isdigit() else {}
            node = node[idx]
            continue
        if not isinstance(node, dict):
            raise InvalidRequest(f"Conflicting parameter: {key}", param=key)
        if last:
            if isinstance(node.get(segment), dict | list):
                raise InvalidRequest(f"Conflicting parameter: {key}", param=key)
            if segment in node:  # amount=100&amount=200: no value may silently win
                raise InvalidRequest(f"Parameter {key} was given more than once.", param=key)
            node[segment] = value
            return
        if segment not in node:
            node[segment] = [] if nxt == "" or (nxt or "").isdigit() else {}
        node = node[segment]


def parse_form(body: bytes) -> dict[str, Any]:
    try:
        # errors="strict": a percent-escaped byte that is not UTF-8 (%FF) is refused, not
        # turned into U+FFFD
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest("Request body is not valid UTF-8.") from None
    out: dict[str, Any] = {}
    for key, value in pairs:
        _insert(out, _split(key), value, key)
    return out


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidRequest(f"Parameter {key} was given more than once.", param=key)
        out[key] = value
    return out


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)  # strict: UTF-8 only, no lone surrogates, no NaN
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Invalid JSON in request body: {exc.msg}.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The JSON request body must be an object.")
    refuse_nul(data)  # first: it also bounds the nesting that json.loads recurses into
    # orjson keeps the last of repeated keys; {"amount":100,"amount":200} must not pass
    json.loads(body, object_pairs_hook=_unique_keys)
    return data


MAX_DEPTH = 20  # Stripe's deepest parameters are a handful of levels


def refuse_nul(value: Any, param: str = "", depth: int = 0) -> None:
    """PostgreSQL's text cannot hold NUL: refuse it here, naming the parameter, rather than
    let the database fail the request (and, inside a group commit, its neighbours' batch)."""
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"Parameters are nested too deeply (more than {MAX_DEPTH} "
                             "levels).", param=param or None)
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidRequest(f"Invalid {param or 'parameter'}: NUL characters are not "
                                 "allowed.", param=param or None)
    elif isinstance(value, dict):
        for k, v in value.items():
            name = f"{param}[{k}]" if param else str(k)
            if "\x00" in str(k):
                raise InvalidRequest("Invalid parameter name: NUL characters are not allowed.",
                                     param=name.replace("\x00", ""))
            refuse_nul(v, name, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            refuse_nul(v, f"{param}[{i}]", depth + 1)


def parse_body(content_type: str | None, body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "application/json" or (not ctype and body.lstrip()[:1] == b"{"):
        return parse_json(body)
    if ctype in ("application/x-www-form-urlencoded", ""):
        data = parse_form(body)
        refuse_nul(data)
        return data
    raise InvalidRequest(f"Unsupported Content-Type: {ctype}. Use "
                         "application/x-www-form-urlencoded or application/json.")


def _index(segment: str) -> bool:
    """An array index is ASCII digits only: str.isdigit also accepts '²' or '٣', which int()
    refuses (a 500 before: schemathesis found it)."""
    return segment.isascii() and segment.isdigit()
