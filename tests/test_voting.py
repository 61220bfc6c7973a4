from __future__ import annotations

from collections import Counter
from fractions import Fraction
from math import comb

import numpy as np
import pytest
import scipy.stats

from autotts_gym.voting import (
    BatchTally,
    Tally,
    batch_majority,
    beta_confidence,
    confidence_table,
    majority,
    top_two,
    vote,
)


def test_majority_first_seen_tie_break():
    assert majority(["b", "a", "a", "b"]) == "b"
    assert majority(["c", "a", "a", "b", "b"]) == "a"
    assert majority([]) is None
    assert top_two(["x", "y", "y", "z"]) == ("y", 2, 1)


def test_beta_confidence_matches_scipy_beta_cdf():
    table = confidence_table(12)
    for a in range(13):
        for b in range(13):
            want = 0.0 if a == 0 else 1 - scipy.stats.beta.cdf(0.5, a + 1, b + 1)
            assert abs(beta_confidence(a, b) - want) < 1e-12
            assert table[a, b] == beta_confidence(a, b)
    w, c = vote(["7", "7", "7"])
    assert w == "7" and c > 0.9


def test_beta_confidence_is_the_exact_binomial_tail_rounded_once():
    """For whole counts, 1 - I_0.5(a + 1, b + 1) is the chance of at most a heads in
    a + b + 1 fair flips; the float is that exact fraction, correctly rounded."""
    for a in range(1, 70):
        for b in range(0, 70, 3):
            n = a + b + 1
            exact = Fraction(sum(comb(n, k) for k in range(a + 1)), 2 ** n)
            assert beta_confidence(a, b) == float(exact)
    assert beta_confidence(np.int64(40), np.int64(30)) == beta_confidence(40, 30)
    assert beta_confidence(1, 0) == 0.75 and beta_confidence(0, 5) == 0.0
    with pytest.raises(ValueError, match="below 0"):
        beta_confidence(3, -1)


def test_batch_majority_equals_counter_semantics():
    rng = np.random.default_rng(1)
    ans = rng.integers(-1, 5, size=(500, 9))
    w, top, second = batch_majority(ans, 5)
    for e in range(500):
        lst = [int(a) for a in ans[e] if a >= 0]
        ww, aa, bb = top_two(lst)
        assert (w[e] if w[e] >= 0 else None) == ww
        assert top[e] == aa and second[e] == bb


def _counter_top_two(lst):
    mc = Counter(lst).most_common(2)
    if not mc:
        return None, 0, 0
    return mc[0][0], mc[0][1], (mc[1][1] if len(mc) > 1 else 0)


def test_tally_follows_counter_most_common_after_every_vote():
    """The incremental count agrees with collections.Counter (ties: first listed wins) on
    every prefix of random lists, ties included."""
    rng = np.random.default_rng(2)
    for _ in range(300):
        lst = [str(x) for x in rng.integers(0, 4, size=rng.integers(0, 15))]
        t = Tally()
        for k, a in enumerate(lst):
            t.add(a)
            assert (t.leader, t.top, t.second) == _counter_top_two(lst[:k + 1])
        assert t.n == len(lst) and list(t.counts) == list(dict.fromkeys(lst))
    # a 2-2 tie goes to the answer listed first, even when the other reached 2 first
    assert majority(["x", "y", "y", "x"]) == "x"
    assert majority(["y", "x", "x", "y"]) == "y"


def test_batch_tally_equals_tally_row_by_row():
    rng = np.random.default_rng(3)
    E, V = 200, 5
    bt = BatchTally(E, V)
    rows_t = [Tally() for _ in range(E)]
    for _ in range(12):
        rows = np.flatnonzero(rng.random(E) < 0.6)
        ids = rng.integers(0, V, size=rows.size)
        bt.add(rows, ids)
        for r, i in zip(rows, ids, strict=True):
            rows_t[r].add(int(i))
        w, top, sec = bt.top()
        for r in range(E):
            t = rows_t[r]
            assert (w[r] if w[r] >= 0 else None, top[r], sec[r]) == (t.leader, t.top, t.second)
