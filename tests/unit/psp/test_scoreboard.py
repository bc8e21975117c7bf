"""Success-rate windows: bounded by size and age, issuer declines counted apart from PSP
failures, the currency × brand segment used only when every account has enough data."""

from __future__ import annotations

from kassa.psp.scoreboard import Scoreboard


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_counts_outcomes_apart_and_forgets_by_size_and_age():
    clock = Clock()
    board = Scoreboard(size=10, max_age_seconds=60, min_segment_samples=5, clock=clock)
    for outcome in ["approved"] * 6 + ["declined"] * 3 + ["failed"]:
        board.record("a", outcome, currency="usd", brand="visa")
    c = board.counts("a")
    assert (c.approved, c.declined, c.failed) == (6, 3, 1)
    board.record("a", "declined", currency="usd", brand="visa")  # size 10: oldest goes
    c = board.counts("a")
    assert (c.approved, c.declined, c.failed, c.total) == (5, 4, 1, 10)
    clock.now = 61
    assert board.counts("a").total == 0


def test_segment_scores_only_when_every_account_has_enough_data():
    board = Scoreboard(min_segment_samples=5, clock=Clock())
    for _ in range(5):
        board.record("a", "approved", currency="eur", brand="visa")
        board.record("b", "declined", currency="eur", brand="visa")
    for _ in range(20):
        board.record("a", "declined", currency="usd", brand="visa")
        board.record("b", "approved", currency="usd", brand="visa")
    eur = board.scores(["a", "b"], currency="eur", brand="visa")
    assert eur["a"].rate > eur["b"].rate  # like with like
    # mastercard in eur: no segment data, the whole windows decide (b is better overall)
    mc = board.scores(["a", "b"], currency="eur", brand="mastercard")
    assert mc["b"].rate > mc["a"].rate
    assert mc["a"].attempts == 25
