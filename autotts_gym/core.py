"""The replay core: one problem under one branch order, exactly as
``docs/replay-semantics.md`` describes it. Everything else (the Gymnasium env, the
controller session, the harness, the vectorized baselines) goes through this module.

The rules live in one place, :class:`ProblemTables`, as lookup tables built once per
problem:

* ``answers[b, d - 1]``: the answer revealed by branch ``b`` at depth ``d`` (interval
  ``d``); for ``d <= L`` the probe answer ``d``, from ``d = L + 1`` on the final answer.
* ``step_cost[b, d]``: tokens charged to go from depth ``d`` to ``d + 1``: ``probe_freq``
  while ``d < L``; ``max(0, tokens - probe_freq * L)`` for ``d = L`` (this interval
  finishes the branch); 0 after that (a finished branch re-reveals its final answer free).
* ``finish_depth[b] = L + 1``; ``read_cost[b] = tokens`` (reading a whole branch at once).

Two views of one episode use these tables: :class:`Episode` (one episode, plain Python
scalars, fast enough for an RL env step) and :class:`EpisodeBatch` (many episodes as
numpy arrays, for evaluating vectorized controllers across seeds). Both expose the paper's
atomic actions (BRANCH, CONTINUE, PROBE with cost ``kappa_probe``, PRUNE) and the reference
calls (open, advance = atomic action then probe; read a whole branch). Slots are opened
branches in opening order: slot ``i`` is stored branch ``order[i]``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import AutoTTSError
from .store import Problem

NO_ANSWER_ID = -1
"""An answer id meaning "nothing revealed / no answer" (the id form of
:data:`autotts_gym.contracts.NO_ANSWER`)."""


class ReplayError(AutoTTSError, RuntimeError):
    """An operation the replay rules do not allow (the env masks these; sessions report them)."""


def branch_order(seed: int, n_branches: int = 128) -> list[int]:
    """The branch order of a seed: ``random.Random(seed).shuffle(list(range(n)))``."""
    return list(_branch_order(int(seed), int(n_branches)))


@lru_cache(maxsize=4096)
def _branch_order(seed: int, n_branches: int) -> tuple[int, ...]:
    order = list(range(n_branches))
    random.Random(seed).shuffle(order)
    return tuple(order)


@dataclass(frozen=True, eq=False)
class ProblemTables:
    """Lookup tables of one problem that encode every replay rule (see module doc)."""

    problem: Problem
    answers: np.ndarray  # int32 (B, D), D = max(L) + 1
    step_cost: np.ndarray  # int64 (B, D + 1)
    finish_depth: np.ndarray  # int32 (B,)
    read_cost: np.ndarray  # int64 (B,)
    # the same tables as Python lists, for scalar stepping
    answers_list: list[list[int]]
    step_cost_list: list[list[int]]
    finish_depth_list: list[int]
    read_cost_list: list[int]

    @property
    def n_branches(self) -> int:
        return int(self.finish_depth.shape[0])

    @property
    def max_depth(self) -> int:
        return int(self.answers.shape[1])

    @property
    def gold_id(self) -> int:
        return self.problem.gold_id

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.problem.vocab

    @classmethod
    def from_problem(cls, problem: Problem) -> ProblemTables:
        L = problem.n_probes.astype(np.int64)
        B = L.shape[0]
        D = int(L.max()) + 1
        freq = int(problem.probe_freq)
        answers = np.repeat(problem.final[:, None], D, axis=1).astype(np.int32)
        depth_idx = np.arange(D)[None, :]
        is_probe = depth_idx < L[:, None]
        rows = np.repeat(np.arange(B), L)
        cols = np.arange(int(L.sum())) - np.repeat(problem.probe_offsets[:-1], L)
        answers[rows, cols] = problem.probe_answers
        assert np.array_equal(is_probe.sum(1), L)
        d_idx = np.arange(D + 1)[None, :]
        last = np.maximum(0, problem.tokens - freq * L)
        step_cost = np.where(d_idx < L[:, None], freq, 0).astype(np.int64)
        step_cost[np.arange(B), L] = last
        return cls(
            problem=problem,
            answers=answers,
            step_cost=step_cost,
            finish_depth=(L + 1).astype(np.int32),
            read_cost=problem.tokens.astype(np.int64),
            answers_list=answers.tolist(),
            step_cost_list=step_cost.tolist(),
            finish_depth_list=(L + 1).tolist(),
            read_cost_list=problem.tokens.tolist(),
        )


def tables_for(problem: Problem | ProblemTables) -> ProblemTables:
    """The tables of a problem: built anew (cheap, under a millisecond on the real data).
    :meth:`ReplaySet.tables <autotts_gym.store.ReplaySet.tables>` caches them per set."""
    if isinstance(problem, ProblemTables):
        return problem
    return ProblemTables.from_problem(problem)


class Episode:
    """One problem under one branch order, stepped one action at a time.

    State per slot (opened branch, in opening order): ``depth`` (intervals generated),
    ``finished``, ``pruned``, ``revealed`` (the latest revealed answer id, -1 if none),
    ``spent`` (tokens charged to that branch so far). ``tokens`` is the cost charged so far
    (the sum of ``spent``). Operations the rules forbid raise
    :class:`ReplayError`; callers that must never raise check ``can_*`` first.
    """

    __slots__ = (
        "_ans",
        "_cost",
        "_fin",
        "_read",
        "depth",
        "finished",
        "kappa_probe",
        "n_open",
        "order",
        "pruned",
        "revealed",
        "spent",
        "tables",
        "tokens",
    )

    def __init__(self, tables: ProblemTables, order: Sequence[int], kappa_probe: float = 0.0):
        if sorted(order) != list(range(tables.n_branches)):
            raise ValueError(
                f"order must be a permutation of 0..{tables.n_branches - 1}"
            )
        self.tables = tables
        self.order = list(order)
        self.kappa_probe = float(kappa_probe)
        self.tokens = 0.0
        self.n_open = 0
        self.depth: list[int] = []
        self.finished: list[bool] = []
        self.pruned: list[bool] = []
        self.revealed: list[int] = []
        self.spent: list[float] = []
        self._ans = tables.answers_list
        self._cost = tables.step_cost_list
        self._fin = tables.finish_depth_list
        self._read = tables.read_cost_list

    @classmethod
    def from_seed(cls, problem: Problem | ProblemTables, seed: int, kappa_probe: float = 0.0
                  ) -> Episode:
        """The episode of a problem (or its tables) under the branch order of ``seed``."""
        t = tables_for(problem)
        return cls(t, branch_order(seed, t.n_branches), kappa_probe)

    # -- queries
    @property
    def n_branches(self) -> int:
        return len(self.order)

    def can_branch(self) -> bool:
        return self.n_open < len(self.order)

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self.n_open:
            raise ReplayError(f"slot {slot} is not an opened branch (opened: {self.n_open})")

    # -- atomic actions (the paper's section 2)
    def branch(self) -> int:
        """BRANCH: open the next branch in the order, generate one interval; reveal nothing."""
        if self.n_open >= len(self.order):
            raise ReplayError(f"all {len(self.order)} branches are already open")
        slot = self.n_open
        b = self.order[slot]
        self.n_open += 1
        self.depth.append(1)
        self.finished.append(self._fin[b] <= 1)
        self.pruned.append(False)
        self.revealed.append(NO_ANSWER_ID)
        cost = self._cost[b][0]
        self.spent.append(cost)
        self.tokens += cost
        return slot

    def advance(self, slot: int) -> int:
        """CONTINUE(slot): generate one more interval; a finished branch costs nothing.

        Returns the tokens charged.
        """
        self._check_slot(slot)
        if self.finished[slot]:
            return 0
        b = self.order[slot]
        d = self.depth[slot]
        cost = self._cost[b][d]
        self.depth[slot] = d + 1
        if d + 1 >= self._fin[b]:
            self.finished[slot] = True
        self.spent[slot] += cost
        self.tokens += cost
        return cost

    def probe(self, slot: int) -> int:
        """PROBE(slot): reveal the answer at the current depth, charging ``kappa_probe``."""
        self._check_slot(slot)
        a = self._ans[self.order[slot]][self.depth[slot] - 1]
        self.revealed[slot] = a
        self.spent[slot] += self.kappa_probe
        self.tokens += self.kappa_probe
        return a

    def prune(self, slot: int) -> None:
        """PRUNE(slot): deactivate the branch; its depth and revealed answer stay."""
        self._check_slot(slot)
        self.pruned[slot] = True

    # -- reference calls (compositions of the atomic actions)
    def open(self) -> tuple[int, int, bool] | None:
        """BRANCH then PROBE: ``(answer, slot, finished)``, or None when none is left."""
        if self.n_open >= len(self.order):
            return None
        slot = self.branch()
        return self.probe(slot), slot, self.finished[slot]

    def advance_and_probe(self, slot: int) -> tuple[int, bool]:
        """CONTINUE then PROBE: ``(answer, finished)``."""
        self.advance(slot)
        return self.probe(slot), self.finished[slot]

    def read(self) -> tuple[int, int] | None:
        """Read a whole fresh branch: charge its full token count, reveal its final answer.

        The branch takes the next slot, finished at its full depth. Returns
        ``(answer, slot)``, or None when no branch is left.
        """
        if self.n_open >= len(self.order):
            return None
        slot = self.n_open
        b = self.order[slot]
        self.n_open += 1
        self.depth.append(self._fin[b])
        self.finished.append(True)
        self.pruned.append(False)
        a = self._ans[b][self._fin[b] - 1]
        self.revealed.append(a)
        self.spent.append(self._read[b])
        self.tokens += self._read[b]
        return a, slot


class EpisodeBatch:
    """Many episodes stepped together as numpy arrays (rows = episodes, columns = slots).

    Episodes may come from different problems of one replay set. Every operation takes a
    boolean row mask (or a row x slot mask) and acts only where it is set and the rules
    allow; the results equal :class:`Episode` run row by row (the tests check this). A
    row x slot mask may cover only the first W slots (shape (E, W), W <= S), so a
    controller that never opens more than W branches works on narrow arrays.
    """

    def __init__(
        self,
        tables: Sequence[ProblemTables],
        problem_of_row: np.ndarray,
        orders: np.ndarray,
        kappa_probe: float = 0.0,
    ):
        self.tables = list(tables)
        P = len(self.tables)
        S = max(t.n_branches for t in self.tables)
        D = max(t.max_depth for t in self.tables)
        answers = np.full((P, S, D), NO_ANSWER_ID, dtype=np.int32)
        step_cost = np.zeros((P, S, D + 1), dtype=np.int64)
        finish = np.zeros((P, S), dtype=np.int32)
        read_cost = np.zeros((P, S), dtype=np.int64)
        for i, t in enumerate(self.tables):
            nb, d = t.answers.shape
            answers[i, :nb, :d] = t.answers
            answers[i, :nb, d:] = t.answers[:, -1:]
            step_cost[i, :nb, : d + 1] = t.step_cost
            finish[i, :nb] = t.finish_depth
            read_cost[i, :nb] = t.read_cost
        self.problem_of_row = np.asarray(problem_of_row, dtype=np.int64)
        E = self.problem_of_row.shape[0]
        orders = np.asarray(orders, dtype=np.int64)
        if orders.shape != (E, S):
            raise ValueError(f"orders must have shape {(E, S)}, got {orders.shape}")
        self.n_rows, self.n_slots, self.max_depth = E, S, D
        self.kappa_probe = float(kappa_probe)
        self.orders = orders
        pr = self.problem_of_row
        # flat tables, indexed through each slot's (problem, stored branch) number
        self._answers = answers.reshape(-1)  # [branch * D + depth - 1]
        self._step_cost = step_cost.reshape(-1)  # [branch * (D + 1) + depth]
        self._read = read_cost.reshape(-1)  # [branch]
        self._branch = pr[:, None] * S + orders  # (E, S) (problem, branch) number per slot
        self._finish = finish[pr[:, None], orders]  # (E, S) finish depth per slot
        self.n_branches = np.array([t.n_branches for t in self.tables], dtype=np.int64)[pr]
        self.gold_id = np.array([t.gold_id for t in self.tables], dtype=np.int64)[pr]
        self.tokens = np.zeros(E, dtype=np.float64)
        self.steps = np.zeros(E, dtype=np.int64)  # calls made, counted as Session counts them
        self.n_open = np.zeros(E, dtype=np.int64)
        self.depth = np.zeros((E, S), dtype=np.int32)
        self.finished = np.zeros((E, S), dtype=bool)
        self.pruned = np.zeros((E, S), dtype=bool)
        self.revealed = np.full((E, S), NO_ANSWER_ID, dtype=np.int32)
        self._rows = np.arange(E)

    @classmethod
    def from_seeds(
        cls,
        problems: Sequence[Problem | ProblemTables],
        seeds: Sequence[int],
        kappa_probe: float = 0.0,
    ) -> EpisodeBatch:
        """Every problem (or its tables) under every seed; row ``p * len(seeds) + s``."""
        tables = [tables_for(p) for p in problems]
        S = max(t.n_branches for t in tables)
        rows, orders = [], []
        for i, t in enumerate(tables):
            for s in seeds:
                o = branch_order(int(s), t.n_branches)
                orders.append(o + list(range(t.n_branches, S)))
                rows.append(i)
        return cls(tables, np.array(rows), np.array(orders), kappa_probe)

    def _answer(self, r: np.ndarray, s: np.ndarray, depth: np.ndarray | int) -> np.ndarray:
        """The answer revealed at ``depth`` by slot ``s`` of row ``r``."""
        return self._answers[self._branch[r, s] * self.max_depth + depth - 1]

    def _cost(self, r: np.ndarray, s: np.ndarray, depth: np.ndarray | int) -> np.ndarray:
        """Tokens charged to go from ``depth`` to ``depth + 1`` on slot ``s`` of row ``r``."""
        return self._step_cost[self._branch[r, s] * (self.max_depth + 1) + depth]

    # -- queries
    @property
    def opened(self) -> np.ndarray:
        """(E, S) bool: slot has been opened."""
        return np.arange(self.n_slots)[None, :] < self.n_open[:, None]

    def can_branch(self) -> np.ndarray:
        return self.n_open < self.n_branches

    def correct(self, answer_ids: np.ndarray) -> np.ndarray:
        """(E,) bool: each row's answer id is its problem's gold answer."""
        return (self.gold_id != NO_ANSWER_ID) & (np.asarray(answer_ids) == self.gold_id)

    # -- operations
    def open(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Reference open (BRANCH then PROBE) in the masked rows.

        Returns ``(ok, slot, answer, finished)``, each (E,); ``ok`` is False where the row
        was not masked or had no branch left.
        """
        rows = np.asarray(rows, dtype=bool)
        self.steps += rows
        ok = rows & self.can_branch()
        r = self._rows[ok]
        slot = self.n_open.copy()
        s = slot[r]
        self.n_open[r] += 1
        self.depth[r, s] = 1
        self.finished[r, s] = self._finish[r, s] <= 1
        self.tokens[r] += self._cost(r, s, 0) + self.kappa_probe
        ans = np.full(self.n_rows, NO_ANSWER_ID, dtype=np.int32)
        ans[r] = self.revealed[r, s] = self._answer(r, s, 1)
        fin = np.zeros(self.n_rows, dtype=bool)
        fin[r] = self.finished[r, s]
        return ok, slot, ans, fin

    def _masked(self, mask: np.ndarray, rows: np.ndarray | None):
        """(local rows, batch rows, slots) of the opened slots set in ``mask``.

        ``mask`` covers every row, or only ``rows`` (an index array) when given.
        """
        rl, s = np.nonzero(mask)
        r = rl if rows is None else np.asarray(rows)[rl]
        keep = s < self.n_open[r]
        return rl[keep], r[keep], s[keep]

    def advance(self, mask: np.ndarray, probe: bool = True,
                rows: np.ndarray | None = None) -> np.ndarray:
        """CONTINUE every masked opened slot (then PROBE it if ``probe``).

        Finished slots stay as they are at no cost (and re-reveal their final answer).
        ``mask`` is (E, W), or (len(rows), W) for the rows listed in ``rows``. Returns the
        revealed answers, shaped like ``mask`` (-1 where not masked).
        """
        mask = np.asarray(mask, dtype=bool)
        rl, r, s = self._masked(mask, rows)
        self.steps += np.bincount(r, minlength=self.n_rows)
        go = ~self.finished[r, s]
        rg, sg = r[go], s[go]
        d = self.depth[rg, sg]
        self.tokens += np.bincount(rg, weights=self._cost(rg, sg, d), minlength=self.n_rows)
        self.depth[rg, sg] = d + 1
        self.finished[rg, sg] = d + 1 >= self._finish[rg, sg]
        out = np.full(mask.shape, NO_ANSWER_ID, dtype=np.int32)
        if probe:
            a = self._answer(r, s, self.depth[r, s])
            self.revealed[r, s] = a
            out[rl, s] = a
            if self.kappa_probe:
                self.tokens += self.kappa_probe * np.bincount(r, minlength=self.n_rows)
        return out

    def probe(self, mask: np.ndarray) -> np.ndarray:
        """PROBE every masked opened slot; returns answers shaped like ``mask`` (-1 elsewhere)."""
        mask = np.asarray(mask, dtype=bool)
        r, s = np.nonzero(mask)
        keep = s < self.n_open[r]
        r, s = r[keep], s[keep]
        self.steps += np.bincount(r, minlength=self.n_rows)
        a = self._answer(r, s, self.depth[r, s])
        self.revealed[r, s] = a
        if self.kappa_probe:
            self.tokens += self.kappa_probe * np.bincount(r, minlength=self.n_rows)
        out = np.full(mask.shape, NO_ANSWER_ID, dtype=np.int32)
        out[r, s] = a
        return out

    def prune(self, mask: np.ndarray, rows: np.ndarray | None = None) -> None:
        """PRUNE every masked opened slot (``mask`` over all rows, or over ``rows``)."""
        _, r, s = self._masked(np.asarray(mask, dtype=bool), rows)
        self.steps += np.bincount(r, minlength=self.n_rows)
        self.pruned[r, s] = True

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read a whole fresh branch in the masked rows: ``(ok, answer)``, each (E,)."""
        rows = np.asarray(rows, dtype=bool)
        self.steps += rows
        ok = rows & self.can_branch()
        r = self._rows[ok]
        s = self.n_open[r]
        self.n_open[r] += 1
        fd = self._finish[r, s]
        self.depth[r, s] = fd
        self.finished[r, s] = True
        self.tokens[r] += self._read[self._branch[r, s]]
        ans = np.full(self.n_rows, NO_ANSWER_ID, dtype=np.int32)
        ans[r] = self.revealed[r, s] = self._answer(r, s, fd)
        return ok, ans
