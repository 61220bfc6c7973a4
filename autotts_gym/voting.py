"""Voting over revealed answers, as ``spec/replay-semantics.md`` defines it.

* :func:`majority`: the most frequent answer; ties go to the answer that appeared first in
  the list (``collections.Counter.most_common`` semantics).
* :func:`beta_confidence`: with top count ``a`` and second count ``b``,
  ``1 - I_0.5(a + 1, b + 1)`` (0 when ``a == 0``): the posterior probability that the
  leading answer holds the majority. Values are cached per ``(a, b)``.
* :func:`batch_majority`: the same majority for many rows of answer ids at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from functools import cache
from typing import TypeVar

import numpy as np
from scipy.special import betainc

A = TypeVar("A", bound=Hashable)


def majority(answers: Sequence[A]) -> A | None:
    """The most common answer, first-seen on ties; None for an empty list."""
    if not answers:
        return None
    return Counter(answers).most_common(1)[0][0]


def top_two(answers: Sequence[A]) -> tuple[A | None, int, int]:
    """``(winner, top count, second count)`` with first-seen tie-break."""
    if not answers:
        return None, 0, 0
    mc = Counter(answers).most_common(2)
    return mc[0][0], mc[0][1], (mc[1][1] if len(mc) > 1 else 0)


@cache
def beta_confidence(a: int, b: int) -> float:
    """``1 - I_0.5(a + 1, b + 1)``; 0 when ``a == 0``."""
    if a <= 0:
        return 0.0
    return float(1.0 - betainc(a + 1, b + 1, 0.5))


def vote(answers: Sequence[A]) -> tuple[A | None, float]:
    """``(majority answer, beta confidence of the top two counts)``."""
    w, a, b = top_two(answers)
    return w, beta_confidence(a, b)


def confidence_table(n: int) -> np.ndarray:
    """``table[a, b] = beta_confidence(a, b)`` for ``0 <= a, b <= n`` (for vectorized code)."""
    a = np.arange(n + 1, dtype=np.float64)[:, None]
    b = np.arange(n + 1, dtype=np.float64)[None, :]
    t = 1.0 - betainc(a + 1, b + 1, 0.5)
    t[0, :] = 0.0
    return t


def batch_majority(
    answers: np.ndarray, n_ids: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Majority per row of an (E, K) array of answer ids (-1 = no vote), columns in list order.

    Returns ``(winner, top count, second count)``, each (E,); winner is -1 for a row with no
    vote. Ties go to the id whose first occurrence has the lowest column index: the first
    column whose answer reaches the top count.
    """
    answers = np.asarray(answers, dtype=np.int64)
    E, K = answers.shape
    rows = np.arange(E)
    ids = np.where(answers >= 0, answers, n_ids)
    flat = (rows[:, None] * (n_ids + 1) + ids).ravel()
    counts = np.bincount(flat, minlength=E * (n_ids + 1)).reshape(E, n_ids + 1)
    counts[:, n_ids] = 0
    at = counts[rows[:, None], ids]  # each column's answer count (0 for no vote)
    top = at.max(axis=1) if K else np.zeros(E, dtype=np.int64)
    col = (at == top[:, None]).argmax(axis=1) if K else np.zeros(E, dtype=np.int64)
    winner = np.where(top > 0, answers[rows, col] if K else -1, -1)
    counts[rows, np.where(top > 0, winner, n_ids)] = 0
    second = counts.max(axis=1)
    return winner, top, second
