"""Voting over revealed answers: the project's one majority rule (see
``docs/replay-semantics.md``, "Voting").

The rule: the answer with the most votes wins; between answers with equal counts, the one
that appears first in the list being voted on wins (what ``collections.Counter``'s
``most_common`` does). It is written once, in :func:`takes_lead`, and every counter here
applies it:

* :class:`Tally`: an incremental count over a growing list of answers (the leader and the
  top two counts kept current as answers arrive). :func:`majority`, :func:`top_two` and
  :func:`vote` are a tally of a whole list.
* :class:`BatchTally`: the same count for many rows of answer ids at once (the vectorized
  baselines); :func:`batch_majority`: the majority of each row of an id array.
* :func:`beta_confidence`: with top count ``a`` and second count ``b``,
  ``1 - I_0.5(a + 1, b + 1)`` (0 when ``a == 0``): the posterior probability that the
  leading answer holds the majority. :func:`confidence_table` tabulates it.

The counters of single lists and the confidence need only the standard library: numpy is
imported by the batch functions when first used, and the confidence is an exact binomial
tail, not scipy's ``betainc``. A controller that only votes therefore loads neither
numpy nor scipy, which in the discovery sandbox's jail would cost about a quarter of a
second per evaluation.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # (imported where used: see the module's docstring)
    import numpy as np

A = TypeVar("A", bound=Hashable)


def takes_lead(count: Any, first: Any, lead_count: Any, lead_first: Any) -> Any:
    """Whether an answer with ``count`` votes, first listed at position ``first``, beats the
    leader (``lead_count`` votes, first listed at ``lead_first``): more votes, or as many
    and listed earlier. Works element-wise on numpy arrays as on numbers."""
    return (count > lead_count) | ((count == lead_count) & (first < lead_first))


class Tally(Generic[A]):
    """Vote counts of a list of answers that grows by :meth:`add`.

    ``leader`` (None while empty), ``top`` and ``second`` (the two largest counts) are
    current after every :meth:`add`; ``counts`` maps answers to votes in first-listed order.
    """

    __slots__ = ("_first", "counts", "leader", "n", "second", "top")

    def __init__(self, answers: Iterable[A] = ()):
        self.counts: dict[A, int] = {}
        self._first: dict[A, int] = {}
        self.leader: A | None = None
        self.top = 0
        self.second = 0
        self.n = 0
        for a in answers:
            self.add(a)

    def add(self, answer: A) -> None:
        """Count one more vote for ``answer`` (listed after every earlier one)."""
        c = self.counts.get(answer, 0) + 1
        self.counts[answer] = c
        if c == 1:
            self._first[answer] = self.n
        self.n += 1
        if self.top and answer == self.leader:
            self.top = c
        elif not self.top or takes_lead(c, self._first[answer], self.top,
                                        self._first[self.leader]):  # type: ignore[index]
            self.leader, self.second, self.top = answer, self.top, c
        elif c > self.second:
            self.second = c

    @property
    def confidence(self) -> float:
        """:func:`beta_confidence` of the top two counts."""
        return beta_confidence(self.top, self.second)


def majority(answers: Iterable[A]) -> A | None:
    """The most common answer, first listed on ties; None for an empty list."""
    return Tally(answers).leader


def top_two(answers: Iterable[A]) -> tuple[A | None, int, int]:
    """``(winner, top count, second count)``; the winner as in :func:`majority`."""
    t = Tally(answers)
    return t.leader, t.top, t.second


@cache
def beta_confidence(a: int, b: int) -> float:
    """``1 - I_0.5(a + 1, b + 1)``; 0 when ``a == 0``.

    For whole counts this is the chance of at most ``a`` heads in ``a + b + 1`` fair coin
    flips (the incomplete beta function's binomial identity), computed exactly and
    rounded once (:func:`_at_most`)."""
    a, b = int(a), int(b)
    if b < 0:
        raise ValueError(f"a vote count below 0: {b}")
    if a <= 0:
        return 0.0
    return _at_most(a + b + 1)[a]


@cache
def _at_most(n: int) -> tuple[float, ...]:
    """For ``k = 0 .. n``: the chance of at most ``k`` heads in ``n`` fair coin flips, each
    the exact fraction ``sum(comb(n, j) for j <= k) / 2**n`` rounded once to a float.
    Each new ``n`` costs ``n`` steps on ``n``-bit integers (about 30 us for ``n = 64``), once."""
    out = []
    total, c, whole = 0, 1, 1 << n
    for k in range(n + 1):
        total += c
        out.append(total / whole)  # (int / int is correctly rounded)
        c = c * (n - k) // (k + 1)
    return tuple(out)


def vote(answers: Sequence[A]) -> tuple[A | None, float]:
    """``(majority answer, beta confidence of the top two counts)``."""
    t = Tally(answers)
    return t.leader, t.confidence


def confidence_table(n: int) -> np.ndarray:
    """``table[a, b] = beta_confidence(a, b)`` for ``0 <= a, b <= n`` (for vectorized code)."""
    import numpy as np

    return np.array([[beta_confidence(a, b) for b in range(n + 1)] for a in range(n + 1)],
                    dtype=np.float64)


class BatchTally:
    """:class:`Tally` for many rows of answer ids at once (ids ``0 <= id < n_ids``).

    ``winner`` (-1 while a row is empty), ``top_count`` and ``second`` are current after
    every :meth:`add`, so reading them costs nothing.
    """

    def __init__(self, n_rows: int, n_ids: int):
        import numpy as np

        self.counts = np.zeros((n_rows, n_ids), dtype=np.int64)
        self.first = np.zeros((n_rows, n_ids), dtype=np.int64)
        self.n = np.zeros(n_rows, dtype=np.int64)
        self.winner = np.full(n_rows, -1, dtype=np.int64)
        self.top_count = np.zeros(n_rows, dtype=np.int64)
        self.second = np.zeros(n_rows, dtype=np.int64)

    def add(self, rows: np.ndarray, ids: np.ndarray) -> None:
        """Append one answer id to each row in ``rows`` (an index array without repeats)."""
        import numpy as np

        if rows.size == 0:
            return
        c = self.counts[rows, ids] + 1
        self.counts[rows, ids] = c
        new = c == 1
        self.first[rows[new], ids[new]] = self.n[rows[new]]
        self.n[rows] += 1
        w, top, sec = self.winner[rows], self.top_count[rows], self.second[rows]
        same = ids == w
        # an empty row has top 0, so any first vote takes the lead
        takes = ~same & takes_lead(c, self.first[rows, ids], top,
                                   self.first[rows, np.maximum(w, 0)])
        self.winner[rows] = np.where(same | takes, ids, w)
        self.top_count[rows] = np.where(same | takes, c, top)
        self.second[rows] = np.where(same, sec, np.where(takes, top, np.maximum(sec, c)))

    def top(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(winner, top count, second count)`` for ``rows`` (all rows when None)."""
        if rows is None:
            return self.winner, self.top_count, self.second
        return self.winner[rows], self.top_count[rows], self.second[rows]


def batch_majority(
    answers: np.ndarray, n_ids: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`top_two` of each row of an (E, K) array of answer ids (-1 = no vote), the
    list in column order.

    Returns ``(winner, top count, second count)``, each (E,); winner is -1 for a row with no
    vote. Of the answers with the top count, the one listed first wins (as
    :func:`takes_lead` rules): the answer of the first column whose count is the top count.
    """
    import numpy as np

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
