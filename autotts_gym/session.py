"""The controller session: what a controller may know and do during one episode.

:class:`Session` implements :class:`~autotts_gym.contracts.SessionAPI`, the interface a
controller's ``solve(session)`` receives (the contract is typed in
:mod:`autotts_gym.contracts`). It is a thin view over one
:class:`~autotts_gym.core.Episode`: it translates answer ids to strings,
counts calls against a step cap, and records an execution trace. It never exposes the gold
answer, the branch order, or anything not yet revealed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .contracts import NO_ANSWER
from .core import NO_ANSWER_ID, Episode, ReplayError


class StepLimitExceeded(RuntimeError):
    """A controller made more session calls than the per-episode step cap allows."""


@dataclass(frozen=True)
class TraceEvent:
    """One session call: what it did, on which branch, what it revealed, tokens so far."""

    step: int
    call: str
    branch: int
    depth: int
    answer: str | None
    tokens: float

    def to_dict(self) -> dict:
        return asdict(self)


class Session:
    """One episode as a controller sees it (a :class:`~autotts_gym.contracts.SessionAPI`).
    Branch ids count opened branches from 0."""

    def __init__(
        self,
        episode: Episode,
        beta: float,
        max_steps: int = 100_000,
        record_trace: bool = True,
    ):
        self._ep = episode
        self._vocab = episode.tables.vocab
        self._beta = float(beta)
        self._max_steps = int(max_steps)
        self._record = record_trace
        self.steps = 0
        self.trace: list[TraceEvent] = []

    # -- what a controller may read
    @property
    def beta(self) -> float:
        """The accuracy-cost knob in [0, 1] this episode is run at."""
        return self._beta

    @property
    def tokens(self) -> float:
        """Tokens charged so far in this episode."""
        return self._ep.tokens

    @property
    def n_opened(self) -> int:
        """Branches opened (or read) so far; branch ids run 0..n_opened-1."""
        return self._ep.n_open

    @property
    def branches_left(self) -> int:
        """How many branches can still be opened or read."""
        return self._ep.n_branches - self._ep.n_open

    def depth(self, branch: int) -> int:
        """Intervals generated so far on a branch."""
        self._ep._check_slot(branch)
        return self._ep.depth[branch]

    def is_finished(self, branch: int) -> bool:
        self._ep._check_slot(branch)
        return self._ep.finished[branch]

    def is_pruned(self, branch: int) -> bool:
        self._ep._check_slot(branch)
        return self._ep.pruned[branch]

    def latest_answer(self, branch: int) -> str | None:
        """The latest answer revealed on a branch (None if nothing was revealed yet)."""
        self._ep._check_slot(branch)
        return self._str(self._ep.revealed[branch])

    def branch_tokens(self, branch: int) -> float:
        """Tokens charged to a branch so far (the per-branch part of ``tokens``)."""
        self._ep._check_slot(branch)
        return self._ep.spent[branch]

    # -- what a controller may do
    def open(self) -> tuple[str, int, bool] | None:
        """Open the next branch, generate one interval, reveal its answer there.

        Returns ``(answer, branch_id, finished)``, or None when every branch is open.
        """
        self._tick()
        r = self._ep.open()
        if r is None:
            return None
        a, slot, fin = r
        self._log("open", slot, a)
        return self._vocab[a], slot, fin

    def advance(self, branch: int) -> tuple[str, bool]:
        """Generate one more interval on a branch and reveal its answer: ``(answer, finished)``.

        On a finished branch this re-reveals the final answer at no cost.
        """
        self._tick()
        self._ep._check_slot(branch)
        a, fin = self._ep.advance_and_probe(branch)
        self._log("advance", branch, a)
        return self._vocab[a], fin

    def read(self) -> str | None:
        """Read a whole fresh branch at its full token cost; returns its final answer."""
        self._tick()
        r = self._ep.read()
        if r is None:
            return None
        a, slot = r
        self._log("read", slot, a)
        return self._vocab[a]

    def probe(self, branch: int) -> str:
        """Reveal the answer at a branch's current depth (costs ``kappa_probe``, 0 by default)."""
        self._tick()
        a = self._ep.probe(branch)
        self._log("probe", branch, a)
        return self._vocab[a]

    def prune(self, branch: int) -> None:
        """Stop a branch for good; it keeps its depth and revealed answers."""
        self._tick()
        self._ep.prune(branch)
        self._log("prune", branch, -1)

    # -- internals
    def _str(self, a: int) -> str | None:
        return self._vocab[a] if a != NO_ANSWER_ID else NO_ANSWER

    def _tick(self) -> None:
        self.steps += 1
        if self.steps > self._max_steps:
            raise StepLimitExceeded(
                f"more than {self._max_steps} session calls in one episode"
            )

    def _log(self, call: str, slot: int, a: int) -> None:
        if self._record:
            self.trace.append(
                TraceEvent(self.steps, call, slot, self._ep.depth[slot], self._str(a),
                           self._ep.tokens)
            )


__all__ = ["ReplayError", "Session", "StepLimitExceeded", "TraceEvent"]
