"""The routing policy: parsing refuses malformed configurations with the param at fault,
the first matching rule wins (conditions ANDed), volume splits are deterministic per payment
and hold their percentages, success_rate sends most to the best and the exploration share
to the others."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain.errors import InvalidRequest
from kassa.domain.money import Money
from kassa.domain.routing import (
    DEFAULT_RULE,
    PaymentFacts,
    Score,
    decide,
    parse_policy,
    psp_params,
)


def facts(pid: str = "pi_1", *, amount: int = 1000, currency: str = "usd",
          brand: str | None = "visa", country: str | None = "US",
          capture: str = "automatic", metadata: dict[str, str] | None = None) -> PaymentFacts:
    return PaymentFacts(payment_id=pid, amount=Money(amount, currency), capture_method=capture,
                        metadata=metadata or {}, card_brand=brand, card_country=country)


POLICY = parse_policy(rules=[
    {"name": "eur_big", "conditions": {"currency": ["eur"], "amount_gte": 10_000},
     "route": {"strategy": "single", "psp": "b"}},
    {"name": "de_visa", "conditions": {"card_country": ["de"], "card_brand": ["visa"]},
     "route": {"strategy": "priority", "psps": ["c", "a"]}},
    {"name": "web_manual", "conditions": {"metadata": {"channel": "web"},
                                          "capture_method": ["manual"]},
     "route": {"strategy": "single", "psp": "c"}},
], default_route={"strategy": "priority", "psps": ["a", "b"]})


def test_first_matching_rule_wins_and_conditions_are_anded():
    assert decide(POLICY, facts(amount=20_000, currency="eur")).rule == "eur_big"
    assert decide(POLICY, facts(amount=20_000, currency="eur")).psps == ("b",)
    # both eur_big and de_visa hold: the first listed wins
    d = decide(POLICY, facts(amount=20_000, currency="eur", country="DE"))
    assert d.rule == "eur_big"
    # under the amount: the next rule
    d = decide(POLICY, facts(amount=9_999, currency="eur", country="DE"))
    assert (d.rule, d.psps) == ("de_visa", ("c", "a"))
    # AND: a DE mastercard does not match de_visa
    assert decide(POLICY, facts(country="DE", brand="mastercard")).rule == DEFAULT_RULE
    # metadata AND capture method
    assert decide(POLICY, facts(capture="manual", metadata={"channel": "web"})).rule == \
        "web_manual"
    assert decide(POLICY, facts(capture="automatic", metadata={"channel": "web"})).rule == \
        DEFAULT_RULE
    assert decide(POLICY, facts(capture="manual", metadata={"channel": "app"})).rule == \
        DEFAULT_RULE
    d = decide(POLICY, facts())
    assert (d.rule, d.strategy, d.psps) == (DEFAULT_RULE, "priority", ("a", "b"))


def test_amount_bounds_are_inclusive():
    policy = parse_policy(rules=[{"name": "mid", "conditions": {
        "currency": "usd", "amount_gte": 100, "amount_lte": 200},
        "route": {"strategy": "single", "psp": "b"}}],
        default_route={"strategy": "single", "psp": "a"})
    rules = [decide(policy, facts(amount=a)).rule for a in (99, 100, 200, 201)]
    assert rules == [DEFAULT_RULE, "mid", "mid", DEFAULT_RULE]
    assert decide(policy, facts(amount=150, currency="eur")).rule == DEFAULT_RULE


SPLIT = parse_policy(rules=[], default_route={"strategy": "volume_split", "split": [
    {"psp": "a", "percent": 70}, {"psp": "b", "percent": 20}, {"psp": "c", "percent": 10}]})


def test_volume_split_holds_its_percentages_and_a_retry_routes_the_same():
    firsts = Counter(decide(SPLIT, facts(f"pi_{i}")).psps[0] for i in range(20_000))
    assert abs(firsts["a"] / 20_000 - 0.70) < 0.015
    assert abs(firsts["b"] / 20_000 - 0.20) < 0.015
    assert abs(firsts["c"] / 20_000 - 0.10) < 0.015
    for i in range(200):
        assert decide(SPLIT, facts(f"pi_{i}")) == decide(SPLIT, facts(f"pi_{i}"))


@given(st.text(min_size=1, max_size=40))
def test_volume_split_lists_every_account_once_chosen_first(pid):
    d = decide(SPLIT, facts(pid))
    assert sorted(d.psps) == ["a", "b", "c"]


def test_success_rate_sends_most_to_the_best_and_explores_the_others():
    policy = parse_policy(rules=[], default_route={
        "strategy": "success_rate", "psps": ["a", "b"], "exploration_percent": 10})
    scores = {"a": Score(approved=80, attempts=100), "b": Score(approved=98, attempts=100)}
    decisions = [decide(policy, facts(f"pi_{i}"), scores=scores) for i in range(10_000)]
    firsts = Counter(d.psps[0] for d in decisions)
    assert abs(firsts["a"] / 10_000 - 0.10) < 0.015  # exploration only
    assert all(d.explored == (d.psps[0] == "a") for d in decisions)
    assert all(sorted(d.psps) == ["a", "b"] for d in decisions)  # failover order kept
    # without a per-route share, the setting's
    policy = parse_policy(rules=[], default_route={"strategy": "success_rate",
                                                   "psps": ["a", "b"]})
    firsts = Counter(decide(policy, facts(f"pi_{i}"), scores=scores,
                            exploration_percent=5).psps[0] for i in range(10_000))
    assert abs(firsts["a"] / 10_000 - 0.05) < 0.01
    # no data: listed order, both score 0.5
    assert decide(policy, facts("x"), scores={}, exploration_percent=0).psps == ("a", "b")


def test_score_is_smoothed():
    assert Score(0, 0).rate == 0.5
    assert Score(10, 10).rate < 1
    assert Score(98, 100).rate > Score(80, 100).rate


def test_psp_params_name_every_reference():
    assert psp_params(POLICY) == [
        ("b", "rules[0][route][psp]"), ("c", "rules[1][route][psps][0]"),
        ("a", "rules[1][route][psps][1]"), ("c", "rules[2][route][psp]"),
        ("a", "default_route[psps][0]"), ("b", "default_route[psps][1]")]
    assert POLICY.psps() == ["b", "c", "a"]


def test_normalised_shape_round_trips():
    again = parse_policy(**POLICY.as_dict())
    assert again == POLICY
    assert parse_policy(**SPLIT.as_dict()) == SPLIT


def test_form_encoded_lists_are_read_like_json_ones():
    form = parse_policy(
        rules={"0": {"name": "r", "conditions": {"currency": {"0": "eur"}},
                     "route": {"strategy": "priority", "psps": {"0": "b", "1": "a"}}}},
        default_route={"strategy": "volume_split", "split": {
            "0": {"psp": "a", "percent": "60"}, "1": {"psp": "b", "percent": "40"}}})
    assert form.rules[0].route.psps == ("b", "a")
    assert form.default_route.split == (60, 40)


BAD = [
    (dict(rules=[], default_route=None), "default_route"),
    (dict(rules=[], default_route={"strategy": "random", "psp": "a"}),
     "default_route[strategy]"),
    (dict(rules=[], default_route={"strategy": "single"}), "default_route[psp]"),
    (dict(rules=[], default_route={"strategy": "single", "psp": "a", "psps": ["b"]}),
     "default_route[psps]"),
    (dict(rules=[], default_route={"strategy": "priority", "psps": []}),
     "default_route[psps]"),
    (dict(rules=[], default_route={"strategy": "priority", "psps": ["a", "a"]}),
     "default_route[psps]"),
    (dict(rules=[], default_route={"strategy": "volume_split", "split": [
        {"psp": "a", "percent": 60}, {"psp": "b", "percent": 30}]}), "default_route[split]"),
    (dict(rules=[], default_route={"strategy": "volume_split", "split": [
        {"psp": "a", "percent": 100}, {"psp": "b", "percent": 0}]}),
     "default_route[split][1][percent]"),
    (dict(rules=[], default_route={"strategy": "volume_split", "split": [
        {"psp": "a", "percent": 50.5}, {"psp": "b", "percent": 49.5}]}),
     "default_route[split][0][percent]"),
    (dict(rules=[], default_route={"strategy": "volume_split", "split": [
        {"psp": "a", "percent": 100}]}), "default_route[split]"),
    (dict(rules=[], default_route={"strategy": "success_rate", "psps": ["a"]}),
     "default_route[psps]"),
    (dict(rules=[], default_route={"strategy": "success_rate", "psps": ["a", "b"],
                                   "exploration_percent": 80}),
     "default_route[exploration_percent]"),
    (dict(rules=[{"conditions": {}, "route": {"strategy": "single", "psp": "a"}}],
          default_route={"strategy": "single", "psp": "a"}), "rules[0][conditions]"),
    (dict(rules=[{"conditions": {"amount_gte": 100},
                  "route": {"strategy": "single", "psp": "a"}}],
          default_route={"strategy": "single", "psp": "a"}), "rules[0][conditions][currency]"),
    (dict(rules=[{"conditions": {"currency": "usd", "amount_gte": 200, "amount_lte": 100},
                  "route": {"strategy": "single", "psp": "a"}}],
          default_route={"strategy": "single", "psp": "a"}),
     "rules[0][conditions][amount_lte]"),
    (dict(rules=[{"conditions": {"currency": ["euro"]},
                  "route": {"strategy": "single", "psp": "a"}}],
          default_route={"strategy": "single", "psp": "a"}), "rules[0][conditions][currency][0]"),
    (dict(rules=[{"conditions": {"card_country": ["DEU"]},
                  "route": {"strategy": "single", "psp": "a"}}],
          default_route={"strategy": "single", "psp": "a"}),
     "rules[0][conditions][card_country][0]"),
    (dict(rules=[{"conditions": {"capture_method": ["later"]},
                  "route": {"strategy": "single", "psp": "a"}}],
          default_route={"strategy": "single", "psp": "a"}),
     "rules[0][conditions][capture_method][0]"),
    (dict(rules=[{"conditions": {"metadata": {"k": 1}},
                  "route": {"strategy": "single", "psp": "a"}}],
          default_route={"strategy": "single", "psp": "a"}),
     "rules[0][conditions][metadata][k]"),
    (dict(rules=[{"conditions": {"currency": "usd", "colour": "red"},
                  "route": {"strategy": "single", "psp": "a"}}],
          default_route={"strategy": "single", "psp": "a"}), "rules[0][conditions][colour]"),
    (dict(rules=[{"conditions": {"currency": "usd"}}],
          default_route={"strategy": "single", "psp": "a"}), "rules[0][route]"),
    (dict(rules=[{"name": "x", "conditions": {"currency": "usd"},
                  "route": {"strategy": "single", "psp": "a"}},
                 {"name": "x", "conditions": {"currency": "eur"},
                  "route": {"strategy": "single", "psp": "a"}}],
          default_route={"strategy": "single", "psp": "a"}), "rules[1][name]"),
    (dict(rules=[{"name": "default", "conditions": {"currency": "usd"},
                  "route": {"strategy": "single", "psp": "a"}}],
          default_route={"strategy": "single", "psp": "a"}), "rules[0][name]"),
    (dict(rules="everything", default_route={"strategy": "single", "psp": "a"}), "rules"),
    (dict(rules=[], default_route=["a"]), "default_route"),
]


@pytest.mark.parametrize(("config", "param"), BAD, ids=[p for _, p in BAD])
def test_malformed_configurations_name_the_param(config, param):
    with pytest.raises(InvalidRequest) as err:
        parse_policy(**config)
    assert err.value.param == param, err.value
