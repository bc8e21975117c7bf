"""Routing policy: which PSP accounts a payment may go to, in which order (pure; no I/O).

A merchant's routing configuration is a list of rules and a default route. A rule's
conditions are ANDed; the first rule whose conditions all hold picks the route, the default
route otherwise. A route is one strategy:

- ``single``: one PSP account.
- ``priority``: an ordered list; the first is tried first, the next ones are where a
  payment fails over when an earlier account provably did not process it.
- ``volume_split``: integer percentages summing to 100; the pick is a hash of the payment
  id, so a retry of the same payment routes the same way.
- ``success_rate``: most traffic to the account with the best recent authorisation rate,
  an exploration share to the others (the scores are measured elsewhere and passed in).

Failover order (what comes after the first choice) is part of every strategy except
``single``. Which accounts may be named (configured, enabled) is checked by the service.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kassa.domain.errors import InvalidRequest
from kassa.domain.money import Money

STRATEGIES = ("single", "priority", "volume_split", "success_rate")
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
MAX_RULES = 50
MAX_PSPS = 10
MAX_LIST = 50  # values in one condition
DEFAULT_RULE = "default"  # the name routing decisions carry when no rule matched
# a payment method only one account can charge (a PSP's own token, domain/psp_tokens.py):
# the decision names that account alone, whatever the configuration says
PINNED_RULE = "psp_token"
PINNED = "pinned"


@dataclass(frozen=True, slots=True)
class Route:
    """One strategy and the accounts it spreads over (``split`` for volume_split, in the
    order given; ``exploration_percent`` for success_rate, None: the setting's)."""

    strategy: str
    psps: tuple[str, ...]
    split: tuple[int, ...] = ()
    exploration_percent: float | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.strategy == "single":
            return {"strategy": "single", "psp": self.psps[0]}
        if self.strategy == "volume_split":
            return {"strategy": "volume_split",
                    "split": [{"psp": p, "percent": s} for p, s in zip(self.psps, self.split,
                                                                        strict=True)]}
        out: dict[str, Any] = {"strategy": self.strategy, "psps": list(self.psps)}
        if self.strategy == "success_rate":
            out["exploration_percent"] = self.exploration_percent
        return out


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a payment must be for a rule to apply; an unset condition always holds.
    Amounts are minor units of the rule's currency (so ``currency`` is required with
    them: 10000 is €100 or ¥10000)."""

    currency: frozenset[str] = frozenset()
    amount_gte: int | None = None
    amount_lte: int | None = None
    card_brand: frozenset[str] = frozenset()
    card_country: frozenset[str] = frozenset()
    metadata: Mapping[str, str] = field(default_factory=dict)
    capture_method: frozenset[str] = frozenset()

    def holds(self, payment: PaymentFacts) -> bool:
        if self.currency and payment.amount.currency not in self.currency:
            return False
        if self.amount_gte is not None and payment.amount.minor < self.amount_gte:
            return False
        if self.amount_lte is not None and payment.amount.minor > self.amount_lte:
            return False
        if self.card_brand and (payment.card_brand or "") not in self.card_brand:
            return False
        if self.card_country and (payment.card_country or "") not in self.card_country:
            return False
        if self.capture_method and payment.capture_method not in self.capture_method:
            return False
        return all(payment.metadata.get(k) == v for k, v in self.metadata.items())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("currency", "card_brand", "card_country", "capture_method"):
            values = getattr(self, name)
            if values:
                out[name] = sorted(values)
        if self.amount_gte is not None:
            out["amount_gte"] = self.amount_gte
        if self.amount_lte is not None:
            out["amount_lte"] = self.amount_lte
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    conditions: Conditions
    route: Route


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    rules: tuple[Rule, ...]
    default_route: Route

    def psps(self) -> list[str]:
        """Every account the policy names, once each, in order of appearance."""
        seen: dict[str, None] = {}
        for route in (*(r.route for r in self.rules), self.default_route):
            for psp in route.psps:
                seen.setdefault(psp, None)
        return list(seen)

    def as_dict(self) -> dict[str, Any]:
        return {"rules": [{"name": r.name, "conditions": r.conditions.as_dict(),
                           "route": r.route.as_dict()} for r in self.rules],
                "default_route": self.default_route.as_dict()}


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """What routing may look at: the payment and its card."""

    payment_id: str
    amount: Money
    capture_method: str
    metadata: Mapping[str, str]
    card_brand: str | None = None
    card_country: str | None = None


@dataclass(frozen=True, slots=True)
class Score:
    """One account's recent authorisations: successes among decided ones."""

    approved: int
    attempts: int

    @property
    def rate(self) -> float:
        # Laplace's rule: an account with no data scores 0.5, not 0 or 1
        return (self.approved + 1) / (self.attempts + 2)


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a payment goes: ``psps`` in the order to try them (the first is the choice,
    the rest its failover order), and which rule chose (``default`` when none matched)."""

    rule: str
    strategy: str
    psps: tuple[str, ...]
    explored: bool = False  # success_rate sent it to an account that is not the best

    @property
    def pinned(self) -> bool:
        """Only ``psps[0]`` can charge this payment method: there is no failover."""
        return self.strategy == PINNED


def pinned(account: str) -> Decision:
    """The decision for a PSP token of ``account``: that account, nothing after it (an
    unavailable answer or an open breaker leaves the attempt to recovery there, never
    sends it to an account that cannot charge the token)."""
    return Decision(rule=PINNED_RULE, strategy=PINNED, psps=(account,))


# ---------------------------------------------------------------------- deciding


def bucket(payment_id: str, salt: str, buckets: int) -> int:
    """A stable number in [0, buckets) for this payment: retries land in the same one."""
    digest = hashlib.sha256(f"{salt}:{payment_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def match(policy: RoutingPolicy, payment: PaymentFacts) -> tuple[str, Route]:
    for rule in policy.rules:
        if rule.conditions.holds(payment):
            return rule.name, rule.route
    return DEFAULT_RULE, policy.default_route


def order(route: Route, payment_id: str, *,
          scores: Mapping[str, Score] | None = None,
          exploration_percent: float = 5.0) -> tuple[tuple[str, ...], bool]:
    """The accounts of ``route`` in the order to try them; True when success_rate chose an
    account other than the best (exploration)."""
    if route.strategy in ("single", "priority"):
        return route.psps, False
    if route.strategy == "volume_split":
        point = bucket(payment_id, "volume_split", 100)
        upto = 0
        chosen = route.psps[-1]
        for psp, percent in zip(route.psps, route.split, strict=True):
            upto += percent
            if point < upto:
                chosen = psp
                break
        return (chosen, *(p for p in route.psps if p != chosen)), False
    # success_rate: best first, unless this payment is in the exploration share
    known = scores or {}
    ranked = sorted(route.psps, key=lambda p: (-known.get(p, Score(0, 0)).rate,
                                               route.psps.index(p)))
    share = route.exploration_percent if route.exploration_percent is not None \
        else exploration_percent
    if len(ranked) > 1 and bucket(payment_id, "explore", 10_000) < share * 100:
        others = ranked[1:]
        chosen = others[bucket(payment_id, "explore-pick", len(others))]
        return (chosen, *(p for p in ranked if p != chosen)), True
    return tuple(ranked), False


def decide(policy: RoutingPolicy, payment: PaymentFacts, *,
           scores: Mapping[str, Score] | None = None,
           exploration_percent: float = 5.0) -> Decision:
    rule, route = match(policy, payment)
    psps, explored = order(route, payment.payment_id, scores=scores,
                           exploration_percent=exploration_percent)
    return Decision(rule=rule, strategy=route.strategy, psps=psps, explored=explored)


# ---------------------------------------------------------------------- parsing


def _bad(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _object(value: Any, param: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(f"Invalid {param}: must be an object.", param)
    return value


def _name(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 100:
        raise _bad(f"Invalid {param}: must be a string of 1 to 100 characters.", param)
    return value


def _indexed(value: Any, param: str) -> list[Any]:
    """A JSON list, or a form-encoded one (``x[0]=a&x[1]=b`` arrives as {"0": a, …})."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping) and all(isinstance(k, str) and k.isdigit() for k in value):
        return [value[k] for k in sorted(value, key=int)]
    raise _bad(f"Invalid {param}: must be a list.", param)


def _integer(value: Any, param: str, *, low: int, high: int) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"Invalid {param}: must be an integer from {low} to {high}.", param)
    return value


def _number(value: Any, param: str, *, low: float, high: float) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            low <= value <= high):
        raise _bad(f"Invalid {param}: must be a number from {low:g} to {high:g}.", param)
    return float(value)


def _psps(value: Any, param: str) -> tuple[str, ...]:
    items = _indexed(value, param)
    if not 1 <= len(items) <= MAX_PSPS:
        raise _bad(f"Invalid {param}: name 1 to {MAX_PSPS} PSP accounts.", param)
    names = tuple(_name(v, f"{param}[{i}]") for i, v in enumerate(items))
    if len(set(names)) != len(names):
        raise _bad(f"Invalid {param}: a PSP account is named twice.", param)
    return names


def _only(obj: Mapping[str, Any], allowed: Sequence[str], param: str) -> None:
    for key in obj:
        if key not in allowed:
            raise _bad(f"Received unknown parameter: {param}[{key}]", f"{param}[{key}]")


def parse_route(value: Any, param: str) -> Route:
    obj = _object(value, param)
    strategy = obj.get("strategy")
    if strategy not in STRATEGIES:
        raise _bad(f"Invalid {param}[strategy]: must be one of {', '.join(STRATEGIES)}.",
                   f"{param}[strategy]")
    if strategy == "single":
        _only(obj, ("strategy", "psp"), param)
        return Route("single", (_name(obj.get("psp"), f"{param}[psp]"),))
    if strategy == "priority":
        _only(obj, ("strategy", "psps"), param)
        return Route("priority", _psps(obj.get("psps"), f"{param}[psps]"))
    if strategy == "success_rate":
        _only(obj, ("strategy", "psps", "exploration_percent"), param)
        ranked = _psps(obj.get("psps"), f"{param}[psps]")
        if len(ranked) < 2:
            raise _bad(f"Invalid {param}[psps]: success_rate needs at least 2 PSP accounts.",
                       f"{param}[psps]")
        explore = obj.get("exploration_percent")
        return Route("success_rate", ranked, exploration_percent=None if explore is None else
                     _number(explore, f"{param}[exploration_percent]", low=0, high=50))
    _only(obj, ("strategy", "split"), param)
    entries = _indexed(obj.get("split"), f"{param}[split]")
    if not 2 <= len(entries) <= MAX_PSPS:
        raise _bad(f"Invalid {param}[split]: name 2 to {MAX_PSPS} PSP accounts.",
                   f"{param}[split]")
    psps: list[str] = []
    shares: list[int] = []
    for i, entry in enumerate(entries):
        where = f"{param}[split][{i}]"
        e = _object(entry, where)
        _only(e, ("psp", "percent"), where)
        psps.append(_name(e.get("psp"), f"{where}[psp]"))
        shares.append(_integer(e.get("percent"), f"{where}[percent]", low=1, high=100))
    if len(set(psps)) != len(psps):
        raise _bad(f"Invalid {param}[split]: a PSP account is named twice.", f"{param}[split]")
    if sum(shares) != 100:
        raise _bad(f"Invalid {param}[split]: the percentages sum to {sum(shares)}, "
                   "not 100.", f"{param}[split]")
    return Route("volume_split", tuple(psps), split=tuple(shares))


def _codes(value: Any, param: str, *, upper: bool, length: int | None = None
           ) -> frozenset[str]:
    items = [value] if isinstance(value, str) else _indexed(value, param)
    if not 1 <= len(items) <= MAX_LIST:
        raise _bad(f"Invalid {param}: give 1 to {MAX_LIST} values.", param)
    out = set()
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip() or len(item) > 40 or (
                length is not None and (len(item) != length or not item.isalpha())):
            shape = f"{length} letters" if length else "a non-empty string"
            raise _bad(f"Invalid {param}[{i}]: must be {shape}.", f"{param}[{i}]")
        out.add(item.upper() if upper else item.lower())
    return frozenset(out)


def parse_conditions(value: Any, param: str) -> Conditions:
    obj = _object(value, param)
    _only(obj, ("currency", "amount_gte", "amount_lte", "card_brand", "card_country",
                "metadata", "capture_method"), param)
    currency = frozenset() if obj.get("currency") is None else _codes(
        obj["currency"], f"{param}[currency]", upper=False, length=3)
    low = None if obj.get("amount_gte") is None else _integer(
        obj["amount_gte"], f"{param}[amount_gte]", low=0, high=99_999_999_999)
    high = None if obj.get("amount_lte") is None else _integer(
        obj["amount_lte"], f"{param}[amount_lte]", low=0, high=99_999_999_999)
    if (low is not None or high is not None) and not currency:
        raise _bad(f"Invalid {param}: an amount range needs a currency condition (amounts "
                   "are in the currency's minor units).", f"{param}[currency]")
    if low is not None and high is not None and low > high:
        raise _bad(f"Invalid {param}[amount_lte]: below amount_gte.", f"{param}[amount_lte]")
    capture = frozenset() if obj.get("capture_method") is None else _codes(
        obj["capture_method"], f"{param}[capture_method]", upper=False)
    for i, c in enumerate(sorted(capture)):
        if c not in CAPTURE_METHODS:
            raise _bad(f"Invalid {param}[capture_method]: must be among "
                       f"{', '.join(CAPTURE_METHODS)}.", f"{param}[capture_method][{i}]")
    metadata: dict[str, str] = {}
    if obj.get("metadata") is not None:
        meta = _object(obj["metadata"], f"{param}[metadata]")
        if not 1 <= len(meta) <= 20:
            raise _bad(f"Invalid {param}[metadata]: give 1 to 20 keys.", f"{param}[metadata]")
        for k, v in meta.items():
            if not isinstance(k, str) or not k or len(k) > 40 or not isinstance(v, str) \
                    or len(v) > 500:
                raise _bad(f"Invalid {param}[metadata][{k}]: keys of 1 to 40 and values of "
                           "up to 500 characters.", f"{param}[metadata][{k}]")
            metadata[k] = v
    conditions = Conditions(
        currency=currency, amount_gte=low, amount_lte=high,
        card_brand=frozenset() if obj.get("card_brand") is None else _codes(
            obj["card_brand"], f"{param}[card_brand]", upper=False),
        card_country=frozenset() if obj.get("card_country") is None else _codes(
            obj["card_country"], f"{param}[card_country]", upper=True, length=2),
        metadata=metadata, capture_method=capture)
    if conditions == Conditions():
        raise _bad(f"Invalid {param}: a rule needs at least one condition (the default "
                   "route is for everything else).", param)
    return conditions


def parse_policy(*, rules: Any, default_route: Any) -> RoutingPolicy:
    """A routing configuration from its API/CLI shape; InvalidRequest (with ``param``)
    for anything malformed."""
    if default_route is None:
        raise InvalidRequest("Missing required param: default_route.", param="default_route",
                             code="parameter_missing")
    items = [] if rules is None or rules == "" else _indexed(rules, "rules")
    if len(items) > MAX_RULES:
        raise _bad(f"Invalid rules: at most {MAX_RULES} rules.", "rules")
    parsed: list[Rule] = []
    for i, item in enumerate(items):
        param = f"rules[{i}]"
        obj = _object(item, param)
        _only(obj, ("name", "conditions", "route"), param)
        name = _name(obj.get("name", f"rule_{i}"), f"{param}[name]")
        if name == DEFAULT_RULE or any(r.name == name for r in parsed):
            raise _bad(f"Invalid {param}[name]: {name!r} is taken.", f"{param}[name]")
        if obj.get("conditions") is None:
            raise InvalidRequest(f"Missing required param: {param}[conditions].",
                                 param=f"{param}[conditions]", code="parameter_missing")
        if obj.get("route") is None:
            raise InvalidRequest(f"Missing required param: {param}[route].",
                                 param=f"{param}[route]", code="parameter_missing")
        parsed.append(Rule(name, parse_conditions(obj["conditions"], f"{param}[conditions]"),
                           parse_route(obj["route"], f"{param}[route]")))
    return RoutingPolicy(tuple(parsed), parse_route(default_route, "default_route"))


def psp_params(policy: RoutingPolicy) -> list[tuple[str, str]]:
    """(account, the param that names it) for every account reference, so the service
    can point its 400 for an unknown or disabled account at the right place."""
    out: list[tuple[str, str]] = []

    def of(route: Route, param: str) -> None:
        if route.strategy == "single":
            out.append((route.psps[0], f"{param}[psp]"))
        elif route.strategy == "volume_split":
            out.extend((p, f"{param}[split][{i}][psp]") for i, p in enumerate(route.psps))
        else:
            out.extend((p, f"{param}[psps][{i}]") for i, p in enumerate(route.psps))

    for i, rule in enumerate(policy.rules):
        of(rule.route, f"rules[{i}][route]")
    of(policy.default_route, "default_route")
    return out
