"""Answer extraction from generated text: ``\\boxed{...}``, a regex, or a letter choice.

A text without an answer gives :data:`UNPARSED` (``"ERR"``, as in the AutoTTS release).
That is a stored answer *string*, which votes like any other (so stores made by ``collect``
replay as the release's do); it is not the library's "no answer", which is ``None``
(:data:`autotts_gym.contracts.NO_ANSWER`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

UNPARSED = "ERR"
"""The answer string recorded for a text without an answer."""
_LETTER = re.compile(r"(?:answer|Answer|ANSWER)\s*(?:is|:)?\s*\(?([A-J])\)?\b")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (nested braces kept), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


def make_extractor(spec: str = "boxed") -> Callable[[str], str]:
    """``"boxed"``, ``"regex:PATTERN"`` (group 1, or the match) or ``"letters"``."""
    if spec == "boxed":
        return lambda text: last_boxed(text) or UNPARSED
    if spec.startswith("regex:"):
        try:
            pattern = re.compile(spec[len("regex:"):])
        except re.error as e:
            raise ValueError(f"--extract {spec!r}: not a valid regular expression: {e}") from None

        def by_regex(text: str) -> str:
            matches = list(pattern.finditer(text))
            if not matches:
                return UNPARSED
            m = matches[-1]
            return (m.group(1) if m.groups() else m.group(0)).strip()

        return by_regex
    if spec == "letters":
        def by_letter(text: str) -> str:
            boxed = last_boxed(text)
            if boxed and re.fullmatch(r"\(?[A-J]\)?", boxed):
                return boxed.strip("()")
            found = _LETTER.findall(text)
            return found[-1] if found else UNPARSED

        return by_letter
    raise ValueError(f"--extract {spec!r}: expected boxed, regex:PATTERN or letters")
