"""Typed discovery history: what a round produced and which round is best."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from autotts_gym.harness import FailureKind


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
    """The working round with the highest search-set score (earliest on ties)."""
    ok = [r for r in rounds if r.ok]
    return max(ok, key=lambda r: (r.score, -r.index)) if ok else None
