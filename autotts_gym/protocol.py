"""The evaluation protocol, defined once: the accuracy-cost objective and the search/held-out
split.

The objective of one episode is ``1{correct} - gamma(beta) * tokens / TOKEN_SCALE``. It is
the return of an AutoTTS-v0 episode with the default reward settings (no invalid actions),
the score the discovery loop ranks candidates by, and the number RL model selection
maximizes: all three call :func:`episode_objective` / :func:`mean_objective`, and the mean
is over episodes (not over cells, so cells of different sizes cannot disagree).

The split says which benchmarks a search may look at (``search``: discovery prompts, RL
training and model selection) and which are kept for the final report (``held_out``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .errors import UsageError

GAMMA_AT_0 = 2.0
GAMMA_AT_1 = 0.05
TOKEN_SCALE = 1e6

DEFAULT_SEARCH = ("aime24",)
DEFAULT_HELD_OUT = ("aime25", "hmmt25")


class ProtocolError(UsageError):
    """A split or objective setting that cannot be used."""


def default_gamma(beta: float) -> float:
    """Cost weight per ``TOKEN_SCALE`` tokens: log-linear from 2.0 at beta = 0 (cost first)
    to 0.05 at beta = 1 (accuracy first); monotone decreasing in beta."""
    b = min(1.0, max(0.0, float(beta)))
    return GAMMA_AT_0 * (GAMMA_AT_1 / GAMMA_AT_0) ** b


def episode_objective(correct: bool | float, tokens: float, beta: float) -> float:
    """``1{correct} - gamma(beta) * tokens / TOKEN_SCALE`` for one episode."""
    return float(correct) - default_gamma(beta) * float(tokens) / TOKEN_SCALE


class ScoredEpisode(Protocol):
    """What the objective needs of an episode record (read-only, so frozen dataclasses
    such as ``harness.EpisodeRecord`` satisfy it)."""

    @property
    def correct(self) -> bool: ...
    @property
    def tokens(self) -> float: ...
    @property
    def beta(self) -> float: ...


def episode_objectives(records: Iterable[ScoredEpisode]) -> list[float]:
    """The objective of every record, in order."""
    return [episode_objective(r.correct, r.tokens, r.beta) for r in records]


def mean_objective(records: Iterable[ScoredEpisode]) -> float:
    """The mean episode objective (the env's mean return on the same episodes)."""
    values = episode_objectives(records)
    if not values:
        raise ProtocolError("the objective of no episodes is undefined")
    return sum(values) / len(values)


@dataclass(frozen=True)
class Split:
    """Benchmarks a search may see (``search``) and those kept for the report
    (``held_out``); disjoint, ``search`` non-empty."""

    search: tuple[str, ...]
    held_out: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.search:
            raise ProtocolError("the search set names no benchmark")
        both = sorted(set(self.search) & set(self.held_out))
        if both:
            raise ProtocolError(f"benchmarks both in the search set and held out: "
                                f"{', '.join(both)}")

    def __str__(self) -> str:
        return f"{','.join(self.search)}|{','.join(self.held_out)}"

    @classmethod
    def parse(cls, text: str) -> Split:
        """``"aime24|aime25,hmmt25"`` -> ``Split(("aime24",), ("aime25", "hmmt25"))``."""
        search, sep, held = text.partition("|")
        if not sep:
            raise ProtocolError(f"split {text!r}: expected SEARCH|HELD_OUT, e.g. "
                                f"aime24|aime25,hmmt25")
        return cls(_names(search), _names(held))

    @classmethod
    def for_benchmarks(cls, available: Sequence[str], search: Sequence[str] | None = None,
                       held_out: Sequence[str] | None = None) -> Split:
        """The split to use on a store holding ``available`` benchmarks.

        Explicit ``search``/``held_out`` must name benchmarks the store has. Defaults:
        search aime24, held out aime25 and hmmt25 (those present); without aime24 the
        caller must say which benchmarks to search (an error names what the store has).
        """
        have = list(dict.fromkeys(available))
        for role, names in (("search", search), ("held-out", held_out)):
            missing = [b for b in names or () if b not in have]
            if missing:
                raise ProtocolError(f"{role} benchmark(s) {', '.join(missing)} not in the "
                                    f"store (it has: {', '.join(have) or 'nothing'})")
        if search is None:
            if not set(DEFAULT_SEARCH) <= set(have):
                raise ProtocolError(
                    f"the store has no {'/'.join(DEFAULT_SEARCH)} for the default search set "
                    f"(it has: {', '.join(have) or 'nothing'}); name one with --search")
            search = DEFAULT_SEARCH
        if held_out is None:
            held_out = tuple(b for b in DEFAULT_HELD_OUT if b in have and b not in search)
            if not held_out:
                held_out = tuple(b for b in have if b not in search)
        return cls(tuple(search), tuple(held_out))

    def require_held_out(self) -> tuple[str, ...]:
        """The held-out benchmarks, or an error when there are none to report on."""
        if not self.held_out:
            raise ProtocolError(f"split {self}: no held-out benchmark to report on; name one "
                                f"with --held-out")
        return self.held_out


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())
