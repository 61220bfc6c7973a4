"""Argument types shared by the commands: each rejects a bad value while the command line
is parsed (exit 2, ``autotts CMD: error: argument --FLAG: ...``), before any work starts."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from autotts_gym.errors import UsageError


def _int(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (worker counts, step caps, sizes)."""
    return _int(text, 1, "a whole number >= 1")


def nonnegative_int(text: str) -> int:
    """A whole number >= 0 (seeds)."""
    return _int(text, 0, "a whole number >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0 (timeouts, temperatures, budgets)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (temperatures)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def seeds(text: str) -> list[int]:
    """Branch-order seeds such as ``0-99`` or ``0,3,7`` (capped, see ``seeds_arg``)."""
    from autotts_gym.harness import seeds_arg

    try:
        return seeds_arg(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--seeds ")) from None


def names(text: str) -> list[str]:
    """A comma-separated list of at least one non-empty name (models, benchmarks)."""
    out = [s.strip() for s in text.split(",")]
    if not any(out):
        raise argparse.ArgumentTypeError(f"no names in {text!r}; give e.g. a,b or leave "
                                         "the flag out for all")
    if not all(out):
        raise argparse.ArgumentTypeError(f"empty name in {text!r}")
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"a name is repeated in {text!r}")
    return out


def choices_list(known: list[str], allow_empty: bool = False) -> Callable[[str], list[str]]:
    """A comma-separated subset of ``known`` (``''`` for none when ``allow_empty``)."""

    def parse(text: str) -> list[str]:
        if allow_empty and text.strip() == "":
            return []
        got = names(text)
        bad = [n for n in got if n not in known]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown name {', '.join(map(repr, bad))}; choose from {', '.join(known)}")
        return got

    parse.__name__ = "names"
    return parse
