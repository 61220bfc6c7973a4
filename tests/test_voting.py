from __future__ import annotations

import numpy as np
import scipy.stats

from autotts_gym.voting import (
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
    for a in range(12):
        for b in range(a + 1):
            want = 0.0 if a == 0 else 1 - scipy.stats.beta.cdf(0.5, a + 1, b + 1)
            assert abs(beta_confidence(a, b) - want) < 1e-12
            assert abs(confidence_table(12)[a, b] - want) < 1e-12
    w, c = vote(["7", "7", "7"])
    assert w == "7" and c > 0.9


def test_batch_majority_equals_counter_semantics():
    rng = np.random.default_rng(1)
    ans = rng.integers(-1, 5, size=(500, 9))
    w, top, second = batch_majority(ans, 5)
    for e in range(500):
        lst = [int(a) for a in ans[e] if a >= 0]
        ww, aa, bb = top_two(lst)
        assert (w[e] if w[e] >= 0 else None) == ww
        assert top[e] == aa and second[e] == bb
