"""Stripe's search query language: what parses, into what, and what is a clear 400."""

from __future__ import annotations

import pytest

from kassa.domain.errors import InvalidRequest
from kassa.domain.search import Clause, FieldKind, parse

FIELDS = {"status": FieldKind.TOKEN, "currency": FieldKind.TOKEN, "amount": FieldKind.NUMBER,
          "created": FieldKind.NUMBER, "metadata": FieldKind.TOKEN,
          "description": FieldKind.STRING}


def test_a_single_exact_clause() -> None:
    q = parse("status:'succeeded'", FIELDS)
    assert q.clauses == (Clause("status", ":", "succeeded"),)
    assert not q.any_of


def test_space_and_AND_both_mean_all_of_them() -> None:
    spaced = parse('status:"succeeded" amount>=1000', FIELDS)
    worded = parse('status:"succeeded" and amount>=1000', FIELDS)
    assert spaced == worded
    assert spaced.clauses[1] == Clause("amount", ">=", 1000)
    assert not spaced.any_of


def test_OR_means_any_of_them() -> None:
    q = parse("currency:'usd' OR currency:'eur'", FIELDS)
    assert q.any_of and [c.value for c in q.clauses] == ["usd", "eur"]


def test_metadata_negation_null_and_escapes() -> None:
    q = parse(r"""-metadata['order id']:'it\'s' metadata["k"]:null created<1700000000""",
              FIELDS)
    assert q.clauses == (
        Clause("metadata", ":", "it's", negated=True, key="order id"),
        Clause("metadata", ":", None, key="k"),
        Clause("created", "<", 1700000000),
    )


@pytest.mark.parametrize("query, words", [
    ("", "Missing required param"),
    ("nosuch:'x'", "unsupported search field"),
    ("status:'a' AND currency:'b' OR amount:1", "cannot combine AND and OR"),
    ("status:'a' AND", "ends with a conjunction"),
    ("AND status:'a'", "between two clauses"),
    ("amount:'ten'", "takes an integer"),
    ("status:succeeded", "must be quoted"),
    ("status>'a'", "cannot be compared"),
    ("status~'abc'", "substring"),
    ("description~'ab'", "three characters"),
    ("metadata:'x'", "metadata['key']"),
    ("status:'a' status:'b' status:'c' status:'d' status:'e' status:'f' status:'g' "
     "status:'h' status:'i' status:'j' status:'k'", "at most 10"),
    ("status:'unterminated", "Could not parse"),
    ("amount>null", "null"),
])
def test_a_query_kassa_cannot_apply_is_refused(query: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        parse(query, FIELDS)
    assert words in e.value.message
    assert e.value.param == "query"
