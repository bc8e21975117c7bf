"""Stripe's search query language, parsed into clauses a repository can turn into SQL.

A query is up to ten clauses ``field OP value`` joined by spaces or ``AND`` (all must hold) or
by ``OR`` (one must) — never both, and no parentheses, as Stripe's. ``-`` before a clause
negates it. Operators: ``:`` exact match, ``~`` substring (strings, three characters or more),
``> < >= <=`` (numbers). Values are quoted with ``'`` or ``"`` (a backslash escapes the quote),
numbers may stand bare, and ``null`` matches an absent value. ``metadata['key']`` names one
metadata key.

Which fields exist, and of what type, is the resource's to say (``FieldKind`` per name): the
parser refuses anything else, so a query kassa cannot apply is a 400, never a silently wider
result.

Hand-written rather than a parser library: the grammar is one regular token stream, and
Stripe's error wording for each mistake is what the caller reads.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from kassa.domain.errors import InvalidRequest

MAX_CLAUSES = 10


class FieldKind(enum.Enum):
    TOKEN = "token"  # exact match only (status, currency, ids, metadata values)
    STRING = "string"  # exact or ~ substring
    NUMBER = "number"  # exact or compared (amount, created)


@dataclass(frozen=True, slots=True)
class Clause:
    field: str  # "status", or "metadata" with ``key`` set
    op: str  # ":", "~", ">", "<", ">=", "<="
    value: str | int | None  # None: the clause is ``field:null``
    negated: bool = False
    key: str | None = None  # metadata['key']


@dataclass(frozen=True, slots=True)
class Query:
    clauses: tuple[Clause, ...]
    any_of: bool  # OR; False: AND


_TOKEN = re.compile(r"""
    \s*(?:
      (?P<conj>(?i:AND|OR))(?=\s|$)
    | (?P<neg>-)?
      (?P<field>[A-Za-z_][A-Za-z0-9_.]*)
      (?:\[\s*(?P<kq>['"])(?P<key>(?:\\.|(?!(?P=kq)).)*)(?P=kq)\s*\])?
      (?P<op>>=|<=|:|~|>|<)
      (?:(?P<vq>['"])(?P<qval>(?:\\.|(?!(?P=vq)).)*)(?P=vq)|(?P<bare>[^\s'"]+))
    )""", re.VERBOSE)


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="query")


def parse(query: str, fields: dict[str, FieldKind]) -> Query:
    """The query's clauses, checked against the resource's ``fields`` (``metadata`` is a
    field of kind TOKEN when the resource is searchable by metadata)."""
    if not query or not query.strip():
        raise _invalid("Missing required param: query.")
    clauses: list[Clause] = []
    conjunctions: set[str] = set()
    expect_clause = True
    pos = 0
    text = query.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _invalid(f"Could not parse the query {query!r} near position {pos}: "
                           "expected a clause such as status:'succeeded'.")
        pos = m.end()
        if m.group("conj"):
            if expect_clause:
                raise _invalid(f"Could not parse the query {query!r}: {m.group('conj')} "
                               "must stand between two clauses.")
            conjunctions.add(m.group("conj").upper())
            expect_clause = True
            continue
        if not expect_clause:
            conjunctions.add("AND")  # clauses separated by a space
        clauses.append(_clause(m, fields))
        expect_clause = False
    if expect_clause:
        raise _invalid(f"Could not parse the query {query!r}: it ends with a conjunction.")
    if len(conjunctions) > 1:
        raise _invalid("A search query cannot combine AND and OR; use one of them.")
    if len(clauses) > MAX_CLAUSES:
        raise _invalid(f"A search query may have at most {MAX_CLAUSES} clauses.")
    return Query(tuple(clauses), any_of=conjunctions == {"OR"})


def _clause(m: re.Match[str], fields: dict[str, FieldKind]) -> Clause:
    field, op = m.group("field"), m.group("op")
    key = _unescape(m.group("key")) if m.group("key") is not None else None
    if (field == "metadata") != (key is not None):
        raise _invalid(f"Field {field!r} is not searchable here; metadata is searched as "
                       "metadata['key']:'value'.")
    kind = fields.get(field)
    if kind is None:
        raise _invalid(f"Field {field!r} is an unsupported search field. Searchable fields: "
                       + ", ".join(sorted(fields)) + ".")
    quoted = m.group("vq") is not None
    raw = _unescape(m.group("qval")) if quoted else m.group("bare")
    value: str | int | None
    if not quoted and raw == "null":
        if op != ":":
            raise _invalid(f"Only ':' can compare {field} with null.")
        value = None
    elif kind is FieldKind.NUMBER:
        if not re.fullmatch(r"-?[0-9]{1,18}", raw):
            raise _invalid(f"Field {field!r} takes an integer, not {raw!r}.")
        value = int(raw)
    else:
        if not quoted:
            raise _invalid(f"The value of {field!r} must be quoted, as {field}:'{raw}'.")
        value = raw
    if op in (">", "<", ">=", "<=") and kind is not FieldKind.NUMBER:
        raise _invalid(f"Field {field!r} cannot be compared with {op}; only numeric fields "
                       "can.")
    if op == "~":
        if kind is not FieldKind.STRING:
            raise _invalid(f"Field {field!r} does not support substring matching (~).")
        if not isinstance(value, str) or len(value) < 3:
            raise _invalid("A substring match (~) needs at least three characters.")
    return Clause(field=field, op=op, value=value, negated=m.group("neg") is not None,
                  key=key)
