"""Typed discovery history: what a round produced and which round is best."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from autotts_gym.harness import FailureKind

if TYPE_CHECKING:
    from autotts_gym.stats import Selection


class RoundKind(str, Enum):
    """Outcomes of a round other than a failed evaluation (:class:`FailureKind`)."""

    OK = "ok"
    API_ERROR = "api_error"  # the explorer produced no reply
    NO_CODE = "no_code"      # the reply holds no code block
    SYNTAX = "syntax"        # the code does not parse
    REJECTED = "rejected"    # the static check refused the code


Outcome = RoundKind | FailureKind


def parse_kind(text: str) -> Outcome:
    """The outcome named ``text`` (a :class:`RoundKind` or a :class:`FailureKind`)."""
    for enum in (RoundKind, FailureKind):
        try:
            return enum(text)
        except ValueError:
            pass
    raise ValueError(f"unknown round outcome {text!r}")


@dataclass(frozen=True)
class Round:
    """One round as written in ``RUN/rounds/rNNNN/`` (``files`` keeps the raw files)."""

    index: int
    kind: Outcome
    message: str = ""
    code: str | None = None
    score: float | None = None
    files: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.kind is RoundKind.OK and self.score is not None

    @classmethod
    def from_files(cls, files: dict[str, Any]) -> Round:
        record = files.get("record.json") or {}
        results = files.get("results.json") or {}
        try:
            kind = parse_kind(str(record.get("kind", "")))
        except ValueError:
            kind = FailureKind.PROTOCOL if record else RoundKind.API_ERROR
        score = results.get("score")
        return cls(int(files["index"]), kind, str(record.get("message", "")),
                   files.get("controller.py"),
                   float(score) if isinstance(score, (int, float)) else None, files)


def best(rounds: Iterable[Round]) -> Round | None:
    """The best working round on the search set, chosen under noise.

    Rounds whose episode records were kept (``records.jsonl``, same episodes) go through
    :func:`autotts_gym.stats.select_best`: the highest mean objective, and among the rounds
    whose paired difference to it is inside its 95% interval, the one with the fewest
    tokens. Otherwise (older runs), the highest score, earliest on ties.
    """
    ok = [r for r in rounds if r.ok]
    if not ok:
        return None
    chosen = selection(ok)
    if chosen is not None:
        by_name = {round_name(r): r for r in ok}
        return by_name[chosen.best]
    return max(ok, key=lambda r: (r.score, -r.index))


def round_name(r: Round) -> str:
    return f"r{r.index:04d}"


def selection(rounds: Sequence[Round]) -> Selection | None:
    """The noise-aware selection among working rounds with kept records, or None when
    fewer than two have them or they were not scored on the same episodes."""
    from autotts_gym.harness import HarnessError, Results
    from autotts_gym.stats import StatsError, select_best

    kept = [r for r in rounds if r.ok and r.files.get("dir") is not None
            and "records.jsonl" in r.files]
    if len(kept) < 2 or len(kept) != len([r for r in rounds if r.ok]):
        return None
    try:
        return select_best({round_name(r): Results.read(r.files["dir"]).records
                            for r in kept})
    except (StatsError, HarnessError):
        return None
