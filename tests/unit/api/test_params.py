"""Request bodies: Stripe's form encoding with bracket notation, or JSON, into one dict."""

from __future__ import annotations

import pytest

from kassa.api.params import parse_body, parse_form
from kassa.domain.errors import InvalidRequest

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@pytest.mark.parametrize(("body", "expected"), [
    (b"amount=2000&currency=usd", {"amount": "2000", "currency": "usd"}),
    (b"metadata[order]=7", {"metadata": {"order": "7"}}),
    (b"metadata[order]=7&metadata[customer]=c_1",
     {"metadata": {"order": "7", "customer": "c_1"}}),
    (b"expand[]=a&expand[]=b", {"expand": ["a", "b"]}),
    (b"items[0][price]=x&items[0][quantity]=2",
     {"items": [{"price": "x", "quantity": "2"}]}),
    (b"items[0][price]=x&items[1][price]=y&items[1][quantity]=3",
     {"items": [{"price": "x"}, {"price": "y", "quantity": "3"}]}),
    (b"items[0]=a&items[1]=b", {"items": ["a", "b"]}),
    (b"a[b][c][d]=deep", {"a": {"b": {"c": {"d": "deep"}}}}),
    (b"x[0][]=1&x[0][]=2", {"x": [["1", "2"]]}),
    (b"metadata[note]=a%20b%26c&description=caf%C3%A9+au+lait",
     {"metadata": {"note": "a b&c"}, "description": "café au lait"}),
    (b"metadata=", {"metadata": ""}),  # Stripe: empty value unsets (schemas turn it into {})
    (b"description=&amount=1", {"description": "", "amount": "1"}),
])
def test_parse_form(body, expected):
    assert parse_form(body) == expected


@pytest.mark.parametrize("body", [
    b"metadata[order=7",  # unclosed bracket
    b"metadata[order]x=7",  # text after a bracket
    b"metadata[a][=7",
    b"metadata[[a]]=7",
    b"items[0]=2&items[x]=1",  # not an array index
    b"expand[]=1&expand[b]=2",
    b"amount=1&amount[x]=2",  # scalar, then used as an object
    b"metadata[a]=1&metadata[a][b]=2",
    b"items[0]=a&items[0][price]=x",
])
def test_malformed_or_conflicting_keys_are_refused(body):
    with pytest.raises(InvalidRequest) as exc:
        parse_form(body)
    assert exc.value.param  # names the offending key


def test_a_dangling_bracket_is_not_read_as_the_bare_name():
    # "amount[" is kept verbatim, so the schema later refuses it as an unknown parameter
    assert parse_form(b"amount[=5") == {"amount[": "5"}


def test_invalid_utf8_form_body():
    with pytest.raises(InvalidRequest, match="UTF-8"):
        parse_form(b"description=\xff\xfe")


@pytest.mark.parametrize("body", [
    b"items[1000000][price]=x",  # would pad a list to a client-chosen size (memory DoS)
    b"items[999999999999]=x",
    b"items[1]=x",  # indices start at 0
    b"items[0]=a&items[2]=c",  # and increase by one
])
def test_sparse_array_indices_are_refused(body):
    with pytest.raises(InvalidRequest):
        parse_form(body)


@pytest.mark.parametrize("body", [
    b"metadata[a][b]=2&metadata[a]=1",  # an object, then a scalar under the same name
    b"metadata[a]=1&metadata[a][b]=2",  # and the other way round
    b"expand[]=a&expand=b",
    b"items[0][price]=x&items[0]=y",
    b"items[0]=a&items[0]=b",
])
def test_conflicts_are_refused_in_either_order(body):
    with pytest.raises(InvalidRequest, match="Conflicting"):
        parse_form(body)


# --------------------------------------------------------------------- parse_body


@pytest.mark.parametrize(("content_type", "body", "expected"), [
    (JSON, b'{"amount": 100, "metadata": {"order": "7"}}',
     {"amount": 100, "metadata": {"order": "7"}}),
    ("application/json; charset=utf-8", b'{"expand": ["a", "b"]}', {"expand": ["a", "b"]}),
    ("Application/JSON", b'{"a": true}', {"a": True}),
    (FORM, b"amount=100&metadata[order]=7", {"amount": "100", "metadata": {"order": "7"}}),
    (FORM + "; charset=utf-8", b"expand[]=a", {"expand": ["a"]}),
    (None, b'  {"a": 1}', {"a": 1}),  # no content type: JSON when it looks like an object
    (None, b"a=1", {"a": "1"}),  # ... else form
    ("", b"a=1", {"a": "1"}),
    (JSON, b"", {}),
    (FORM, b"  \n", {}),
    ("text/plain", b"", {}),  # an empty body needs no content type
])
def test_parse_body(content_type, body, expected):
    assert parse_body(content_type, body) == expected


def test_form_body_is_not_read_as_json():
    # a form body whose value looks like JSON stays a string
    assert parse_body(FORM, b'description={"a":1}') == {"description": '{"a":1}'}


@pytest.mark.parametrize("body", [b"{bad", b'{"a": 1} trailing', b'{"a": }', b"\xff"])
def test_bad_json(body):
    with pytest.raises(InvalidRequest, match="Invalid JSON"):
        parse_body(JSON, body)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"null", b"42", b"true"])
def test_json_body_must_be_an_object(body):
    with pytest.raises(InvalidRequest, match="must be an object"):
        parse_body(JSON, body)


@pytest.mark.parametrize("content_type", [
    "text/plain", "multipart/form-data; boundary=x", "application/xml", "application/jsonx",
])
def test_unsupported_content_type(content_type):
    with pytest.raises(InvalidRequest, match="Unsupported Content-Type"):
        parse_body(content_type, b"a=1")


# --------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(("content_type", "body", "param"), [
    (FORM, b"amount=100&amount=200", "amount"),  # else a payment of 200 would be created
    (FORM, b"metadata[a]=1&metadata[a]=2", "metadata[a]"),
    (JSON, b'{"amount": 100, "amount": 200}', "amount"),
    (JSON, b'{"metadata": {"a": "1", "a": "2"}}', "a"),
])
def test_a_repeated_key_is_refused(content_type, body, param):
    with pytest.raises(InvalidRequest, match="more than once") as exc:
        parse_body(content_type, body)
    assert exc.value.param == param


@pytest.mark.parametrize(("content_type", "body", "param"), [
    (JSON, b'{"amount": 100, "currency": "usd", "description": "\\u0000"}', "description"),
    (JSON, b'{"metadata": {"k": "a\\u0000b"}}', "metadata[k]"),
    (JSON, b'{"metadata": {"k\\u0000": "v"}}', "metadata[k]"),
    (JSON, b'{"expand": ["a", "\\u0000"]}', "expand[1]"),
    (FORM, b"description=%00", "description"),
    (FORM, b"metadata[k]=x%00y", "metadata[k]"),
    (FORM, b"expand[]=%00", "expand[0]"),
])
def test_nul_characters_are_refused_naming_the_parameter(content_type, body, param):
    with pytest.raises(InvalidRequest, match="NUL") as exc:
        parse_body(content_type, body)
    assert (exc.value.code, exc.value.param) == ("parameter_invalid", param)


@pytest.mark.parametrize("body", [b"description=%FF", b"description=caf%C3", b"%FF=1",
                                  b"description=%ED%A0%80"])  # a UTF-8-encoded surrogate
def test_percent_escaped_invalid_utf8_is_refused_not_replaced(body):
    with pytest.raises(InvalidRequest, match="UTF-8"):
        parse_form(body)


@pytest.mark.parametrize("body", [b'{"a": "\\ud800"}', b'{"a": "\xed\xa0\x80"}',
                                  b'{"a": "caf\xc3"}', b'{"a": NaN}'])
def test_json_that_is_not_strict_utf8_or_json_is_refused(body):
    with pytest.raises(InvalidRequest, match="Invalid JSON"):
        parse_body(JSON, body)


@pytest.mark.parametrize("body", [b'{"a":' * 500 + b"1" + b"}" * 500,
                                  b'{"a": ' + b"[" * 500 + b"]" * 500 + b"}",
                                  b"a" + b"[x]" * 500 + b"=1"])
def test_deep_nesting_is_refused(body):
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        parse_body(None, body)


@pytest.mark.parametrize("body", ["items[²]=a", "items[٣]=a", "items[0][²]=a",
                                  "items[%C2%B2]=a", "a[0]=x&a[1²]=y"])
def test_non_ascii_digits_are_no_array_index(body):
    # str.isdigit accepts them and int() does not: a 400, never a 500
    with pytest.raises(InvalidRequest):
        parse_form(body.encode())
