"""The controller contract, typed once.

A controller module defines ``make_controller(beta) -> Controller``; the harness calls
``solve(session)`` once per episode with an object that satisfies :class:`SessionAPI`
(:class:`autotts_gym.session.Session` in-process, a proxy in the sandbox). The sandbox
derives the calls it forwards from :data:`SESSION_METHODS` and
:data:`SESSION_PROPERTIES`, so the contract cannot drift between the two.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from .core import EpisodeBatch

NO_ANSWER = None
"""What a controller returns (and a record holds) when it gives no answer."""


@runtime_checkable
class SessionAPI(Protocol):
    """One episode as a controller sees it. Branch ids count opened branches from 0."""

    @property
    def beta(self) -> float:
        """The accuracy-cost knob in [0, 1] this episode is run at."""

    @property
    def tokens(self) -> float:
        """Tokens charged so far in this episode."""

    @property
    def n_opened(self) -> int:
        """Branches opened (or read) so far."""

    @property
    def branches_left(self) -> int:
        """How many branches can still be opened or read."""

    def depth(self, branch: int) -> int:
        """Intervals generated so far on a branch."""

    def is_finished(self, branch: int) -> bool:
        """Whether a branch reached its end."""

    def is_pruned(self, branch: int) -> bool:
        """Whether a branch was pruned."""

    def latest_answer(self, branch: int) -> str | None:
        """The latest answer revealed on a branch (None if none yet)."""

    def branch_tokens(self, branch: int) -> float:
        """Tokens charged to a branch so far; summed over branches, ``tokens``."""

    def open(self) -> tuple[str, int, bool] | None:
        """Open the next branch and reveal its first interval's answer:
        ``(answer, branch_id, finished)``, or None when every branch is open."""

    def advance(self, branch: int) -> tuple[str, bool]:
        """One more interval on a branch: ``(answer, finished)``."""

    def read(self) -> str | None:
        """Read a whole fresh branch at full cost; its final answer (None when none left)."""

    def probe(self, branch: int) -> str:
        """The answer at a branch's current depth."""

    def prune(self, branch: int) -> None:
        """Stop a branch for good."""


@runtime_checkable
class Controller(Protocol):
    """What ``make_controller(beta)`` returns."""

    def solve(self, session: SessionAPI) -> str | None:
        """Play one episode; return the answer (or None for no answer)."""


@runtime_checkable
class BatchController(Controller, Protocol):
    """A controller with the optional vectorized fast path: ``solve_batch(batch)`` plays
    every row of an :class:`~autotts_gym.core.EpisodeBatch` and returns one answer id per
    row (-1 for none), leaving the same answers, tokens and step counts as ``solve`` would.
    The harness uses it when present (``fast=True``); the built-in baselines have one."""

    def solve_batch(self, batch: EpisodeBatch) -> np.ndarray:
        """Answer ids per row of ``batch``."""


ControllerFactory = Callable[[float], Controller]
"""``make_controller``: beta in [0, 1] -> a :class:`Controller`."""


def _members() -> tuple[tuple[str, ...], tuple[str, ...]]:
    methods, props = [], []
    for name, value in vars(SessionAPI).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            props.append(name)
        elif inspect.isfunction(value):
            methods.append(name)
    return tuple(methods), tuple(props)


SESSION_METHODS, SESSION_PROPERTIES = _members()
"""The session's callable methods and its read-only properties, from :class:`SessionAPI`."""


def session_arity() -> dict[str, int]:
    """How many arguments each of :data:`SESSION_METHODS` takes (0 or 1: a branch id)."""
    return {m: len(inspect.signature(getattr(SessionAPI, m)).parameters) - 1
            for m in SESSION_METHODS}


@functools.lru_cache(maxsize=1)
def result_widths() -> dict[str, int]:
    """For each method returning a tuple (or None), the tuple's length, from the
    annotations: how a reply lays out its fields on the sandbox's wire."""
    out = {}
    for m in SESSION_METHODS:
        hint = str(inspect.signature(getattr(SessionAPI, m)).return_annotation)
        if hint.startswith("tuple["):
            out[m] = len(hint[len("tuple["):hint.index("]")].split(","))
    return out


def reply_width() -> int:
    """Fields per call in a sandbox reply: ``ok, tokens, n_opened`` and room for the
    widest result (a scalar takes one field; unused fields are null)."""
    return 3 + max(1, *result_widths().values())
