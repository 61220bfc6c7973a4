"""Answer normalizers: merge spellings of one value before building a vocabulary.

``none`` keeps strings as they are (the AutoTTS release's behaviour: exact string
equality). ``math`` canonicalizes LaTeX spellings of numbers: ``\\frac{1}{2}``, ``1/2``,
``0.5``, ``\\dfrac12``, ``{1\\over 2}`` all become ``1/2``; ``\\text{}``, ``\\left``,
``$``, thousands separators, trailing units of degrees and surrounding spaces are dropped;
anything that is not a plain number stays as its cleaned string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_OVER = re.compile(r"\{?\s*([^{}]+?)\s*\\over\s*([^{}]+?)\s*\}?$")


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
    m = re.fullmatch(r"\(?(-?\d+(?:\.\d+)?)\)?(?:/\(?(-?\d+(?:\.\d+)?)\)?)?", s)
    if not m:
        return None
    try:
        num = Fraction(m.group(1))
        den = Fraction(m.group(2)) if m.group(2) else Fraction(1)
        return num / den if den != 0 else None
    except (ValueError, ZeroDivisionError):
        return None


NORMALIZERS: dict[str, Callable[[str], str]] = {"none": normalize_none, "math": normalize_math}


def get_normalizer(name: str) -> Callable[[str], str]:
    try:
        return NORMALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown normalizer {name!r}; choose from {', '.join(NORMALIZERS)}")
