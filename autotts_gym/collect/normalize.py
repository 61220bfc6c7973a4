"""Answer normalizers: merge spellings of one value before a problem's vocabulary is built.

A normalizer maps each distinct answer of one problem (and its gold answer) to a canonical
spelling; equal spellings then share an answer id, so votes and correctness count them as
one. Three are offered:

``none``
    Strings as they are (the AutoTTS release's behaviour: exact string equality).
``math``
    A regex canonicalizer of number spellings, string by string: ``\\frac{1}{2}``, ``1/2``,
    ``0.5``, ``\\dfrac12``, ``{1\\over 2}`` become ``1/2`` (signs in front or inside
    kept: ``-\\frac{1}{2}`` and ``-1/2`` become ``-1/2``); ``\\text{}``, ``\\left``, ``$``,
    thousands separators, degree marks and spaces dropped. Kept for comparison.
``math-verify``
    Clusters the vocabulary by verified mathematical equivalence (the ``math-verify``
    library: ``parse`` then ``verify``). Only answers that parse to a value without free
    symbols take part (``x = 3`` counts as ``3``); anything else, and ``ERR``, stays as its
    own string, and so does a parse or comparison that exceeds ``timeout`` seconds
    (counted in ``timeouts``). Each cluster takes the gold answer's spelling if the gold is in
    it, else its first spelling in stored order. Candidates are bucketed by numeric value first, so
    ``verify`` runs only between answers that may be equal.
"""

from __future__ import annotations

import cmath
import logging
import re
import threading
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Protocol

from .extract import UNPARSED

# ----------------------------------------------------------------------------- per string

_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_OVER = re.compile(r"\{?\s*([^{}]+?)\s*\\over\s*([^{}]+?)\s*\}?$")
_NUM = re.compile(r"\(?([+-]?\d+(?:\.\d+)?)\)?(?:/\(?([+-]?\d+(?:\.\d+)?)\)?)?")


def normalize_none(answer: str) -> str:
    return answer


def normalize_math(answer: str) -> str:
    s = answer.strip()
    s = s.replace("$", "").replace("\\left", "").replace("\\right", "").replace("\\!", "")
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\^\s*\{?\\circ\}?|°", "", s)
    s = s.replace("\\,", "").replace(" ", "")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    s = _FRAC.sub(r"(\1)/(\2)", s)
    s = _FRAC_SHORT.sub(r"\1/\2", s)
    m = _OVER.fullmatch(s)
    if m:
        s = f"({m.group(1)})/({m.group(2)})"
    value = _number(s)
    if value is None:
        return s
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def _number(s: str) -> Fraction | None:
    s = s.strip("{}")
    sign = 1
    if s[:1] in "+-" and s[1:2] == "(":  # a sign in front of a parenthesized fraction
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    m = _NUM.fullmatch(s)
    if not m:
        return None
    try:
        num = Fraction(m.group(1))
        den = Fraction(m.group(2)) if m.group(2) else Fraction(1)
        return sign * num / den if den != 0 else None
    except (ValueError, ZeroDivisionError):
        return None


# ----------------------------------------------------------------------------- per problem

class VocabNormalizer(Protocol):
    """Maps a problem's distinct answers (and gold) to canonical spellings."""

    name: str

    def merge(self, gold: str, answers: Iterable[str]) -> dict[str, str]: ...


class StringwiseNormalizer:
    def __init__(self, name: str, fn: Callable[[str], str]):
        self.name, self.fn = name, fn

    def merge(self, gold: str, answers: Iterable[str]) -> dict[str, str]:
        return {a: self.fn(a) for a in {gold, *answers}}


_WRAP = re.compile(r"^\\(?:text|mathrm|textbf|mathbf)\{([^{}]*)\}$")


def _unwrap(answer: str) -> str:
    """Drop ``$``, one group of braces around the whole answer, ``\\text{...}`` around it."""
    s = answer.strip().strip("$").strip()
    for _ in range(3):
        m = _WRAP.match(s)
        if m:
            s = m.group(1).strip()
        elif s.startswith("{") and s.endswith("}") and _balanced(s[1:-1]):
            s = s[1:-1].strip()
        else:
            break
    return s


def _balanced(s: str) -> bool:
    depth = 0
    for c in s:
        depth += (c == "{") - (c == "}")
        if depth < 0:
            return False
    return depth == 0


_INT = re.compile(r"\s*[+-]?\d{1,30}\s*")
_TIMEOUTS = [0]


def _count_timeout(record: logging.LogRecord) -> bool:
    if "Timeout" in record.getMessage() or "timeout" in record.getMessage():
        _TIMEOUTS[0] += 1
        return False  # counted, not printed
    return True


def _install_timeout_counter() -> None:
    for name in ("math_verify.grader", "math_verify.parser"):
        log = logging.getLogger(name)
        if _count_timeout not in log.filters:
            log.addFilter(_count_timeout)


class MathVerifyNormalizer:
    """Equivalence clusters by ``math_verify.verify`` (see the module docstring)."""

    name = "math-verify"

    def __init__(self, float_rounding: int = 6, timeout: int = 2):
        try:
            import math_verify  # noqa: F401
        except ImportError:
            raise ValueError("--normalize math-verify needs the math-verify package: "
                             "pip install 'autotts-gym[math-verify]'") from None
        self.float_rounding = float_rounding
        self.timeout = timeout
        self._cache: dict[str, object] = {}
        _install_timeout_counter()
        self._timeouts_at_start = _TIMEOUTS[0]

    @property
    def timeouts(self) -> int:
        """Parses or comparisons cut off since this normalizer was made (kept apart)."""
        return _TIMEOUTS[0] - self._timeouts_at_start

    def _timeout(self) -> int | None:
        # math-verify's timeouts use SIGALRM, which only the main thread may set
        return self.timeout if threading.current_thread() is threading.main_thread() else None

    def value(self, answer: str):
        """The parsed value of an answer, or None (unparseable, symbolic, or ERR)."""
        if answer in self._cache:
            return self._cache[answer]
        from math_verify import parse

        v = None
        if _INT.fullmatch(answer):  # most answers: no parse needed
            from sympy import Integer

            v = Integer(int(answer))
        elif answer.strip() and answer != UNPARSED:
            parsed = parse("\\boxed{" + _unwrap(answer) + "}",
                           parsing_timeout=self._timeout())
            if parsed:
                v = parsed[0]
                if getattr(v, "func", None) is not None and type(v).__name__ == "Equality":
                    v = v.rhs if not v.rhs.free_symbols else v
                if getattr(v, "free_symbols", None) or isinstance(v, str):
                    v = None
        self._cache[answer] = v
        return v

    @staticmethod
    def _bucket(v) -> object:
        try:
            z = complex(v.evalf(15))
        except (TypeError, ValueError, AttributeError):
            return type(v).__name__  # sets, intervals, tuples: compared among themselves
        if cmath.isnan(z):
            return "nan"
        return (float(f"{z.real:.5g}"), float(f"{z.imag:.5g}"))

    def merge(self, gold: str, answers: Iterable[str]) -> dict[str, str]:
        from math_verify import verify

        order = list(dict.fromkeys([gold, *answers]))
        canon = {a: a for a in order}
        reps: dict[object, list[str]] = {}  # bucket -> cluster representatives
        for a in order:
            v = self.value(a)
            if v is None:
                continue
            bucket = reps.setdefault(self._bucket(v), [])
            for r in bucket:
                if verify(self.value(r), v, float_rounding=self.float_rounding,
                          timeout_seconds=self._timeout()):
                    canon[a] = r
                    break
            else:
                bucket.append(a)
        return canon


def get_vocab_normalizer(name: str) -> VocabNormalizer:
    if name == "math-verify":
        return MathVerifyNormalizer()
    if name in NORMALIZERS:
        return StringwiseNormalizer(name, NORMALIZERS[name])
    raise ValueError(f"unknown normalizer {name!r}; choose from "
                     f"{', '.join([*NORMALIZERS, 'math-verify'])}")


NORMALIZERS: dict[str, Callable[[str], str]] = {"none": normalize_none, "math": normalize_math}
NORMALIZER_NAMES = ("none", "math", "math-verify")


def get_normalizer(name: str) -> Callable[[str], str]:
    """A string-by-string normalizer (``none``, ``math``)."""
    try:
        return NORMALIZERS[name]
    except KeyError:
        raise ValueError(
            f"unknown normalizer {name!r}; choose from {', '.join(NORMALIZERS)}") from None
