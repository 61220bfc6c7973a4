"""Controllers written for the AutoTTS release, run unchanged over a session.

A release-style controller is a class constructed as ``Cls(config={"beta": b, ...})`` whose
``solve(question)`` returns an answer string or None. :class:`ReleaseQuestion` is the
``question`` it expects, a thin view over any :class:`~autotts_gym.contracts.SessionAPI`
(the in-process session or the sandbox's proxy): every call maps to one session call, so
costs and answers are the replay core's, never a second rule.

=============================== ============================ ==========================
release call                    session                      AutoTTS-v0 actions
=============================== ============================ ==========================
``probe_new()``                 ``open()``                   BRANCH, PROBE(new)
``probe_more(i)``               ``advance(i)``               CONTINUE(i), PROBE(i)
``get_new_branch_final_answer`` ``read()``                   (no single action)
``get_cost_per_branch_active``  ``branch_tokens(i)`` per i   (observation)
``get_seq_and_total_tokens``    ``(0, tokens)``              (observation)
=============================== ============================ ==========================

Exceptions follow the release: ``probe_new`` raises ``ValueError`` when every branch is
open, ``probe_more`` raises ``ValueError`` for an id that is not an opened branch, and
``get_new_branch_final_answer`` raises ``IndexError`` past the last branch.
"""

from __future__ import annotations

import inspect
import operator
import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from .contracts import SessionAPI
from .errors import AutoTTSError, UsageError

__all__ = [
    "ControllerConfigError",
    "ReleaseClassError",
    "ReleaseController",
    "ReleaseQuestion",
    "check_release_class",
    "parse_controller_config",
    "release_candidates",
]


class ReleaseClassError(AutoTTSError, ValueError):
    """A release-style class could not be found, chosen or built."""


class ControllerConfigError(UsageError):
    """A bad ``--controller-config KEY=VALUE,...`` value."""


def _count(x: float) -> int | float:
    """Token counts as the release reports them: integers (floats only if fractional)."""
    x = float(x)
    return int(x) if x.is_integer() else x


class ReleaseQuestion:
    """The release's ``question`` API over one episode's session (which only this object
    drives, so it counts the opened branches itself: one session call per release call)."""

    __slots__ = ("_n", "_s")

    def __init__(self, session: SessionAPI):
        self._s = session
        self._n = session.n_opened

    def probe_new(self) -> tuple[str, int, bool]:
        """Open the next branch, one interval: ``(answer, branch_id, finished)``."""
        r = self._s.open()
        if r is None:
            raise ValueError("every branch is already open")
        self._n += 1
        return r

    def probe_more(self, branch_id: int) -> tuple[str, bool]:
        """One more interval on an opened branch: ``(answer, finished)``."""
        n = self._n
        try:
            i = operator.index(branch_id)
        except TypeError:
            i = -1
        if not 0 <= i < n:
            raise ValueError(f"branch {branch_id!r} is not an opened branch (opened: {n})")
        return self._s.advance(i)

    def get_new_branch_final_answer(self) -> str:
        """Read the next unopened branch whole, at its full cost; its final answer."""
        a = self._s.read()
        if a is None:
            raise IndexError("no unopened branch is left")
        self._n += 1
        return a

    def get_cost_per_branch_active(self) -> list[int | float]:
        """Tokens charged so far per opened branch, in opening order."""
        return [_count(self._s.branch_tokens(i)) for i in range(self._n)]

    def get_seq_and_total_tokens(self) -> tuple[int, int | float]:
        """``(0, tokens charged so far)``."""
        return 0, _count(self._s.tokens)

    def __repr__(self) -> str:
        return "<ReleaseQuestion>"


class ReleaseController:
    """A release-style class as a controller: ``Cls(config={"beta": beta, **config})``,
    whose ``solve`` receives a :class:`ReleaseQuestion` per episode."""

    def __init__(self, cls: type, beta: float, config: Mapping[str, Any] | None = None):
        self.cls = cls
        self.config = {"beta": float(beta), **dict(config or {})}
        try:
            self.method = cls(config=dict(self.config))
        except Exception as e:
            raise ReleaseClassError(f"{cls.__name__}(config={self.config!r}) raised "
                                    f"{type(e).__name__}: {e}") from e

    def solve(self, session: SessionAPI) -> Any:
        return self.method.solve(ReleaseQuestion(session))

    def __repr__(self) -> str:
        return f"ReleaseController({self.cls.__name__}, config={self.config!r})"


# ----------------------------------------------------------------------------- finding classes


def _problem(cls: Any, module_name: str) -> str | None:
    """Why ``cls`` is not a release-style class of the module (None if it is one)."""
    if not inspect.isclass(cls):
        return "is not a class"
    if cls.__module__ != module_name:
        return f"is imported from {cls.__module__}, not defined here"
    if not callable(getattr(cls, "solve", None)):
        return "has no solve(question) method"
    if inspect.isabstract(cls):
        return "is abstract"
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return "has a constructor whose arguments cannot be read"
    if not any((p.name == "config" and p.kind is not p.POSITIONAL_ONLY)
               or p.kind is p.VAR_KEYWORD for p in params):
        return "has a constructor without a config argument"
    return None


def release_candidates(module: ModuleType) -> tuple[list[str], dict[str, str]]:
    """The module's release-style classes (names, in definition order), and for every other
    class defined there with a ``solve`` method, why it is not one."""
    found, rejected = [], {}
    for name, obj in vars(module).items():
        if not inspect.isclass(obj) or obj.__module__ != module.__name__:
            continue
        why = _problem(obj, module.__name__)
        if why is None:
            found.append(name)
        elif callable(getattr(obj, "solve", None)):
            rejected[name] = why
    return found, rejected


def check_release_class(module: ModuleType, name: str, where: str) -> type:
    """The class ``name`` of ``module`` if it is release-style; else a one-line error."""
    found, _ = release_candidates(module)
    obj = getattr(module, name, None)
    if obj is None:
        have = f"release-style classes there: {', '.join(found)}" if found else \
            "it defines no release-style class"
        raise ReleaseClassError(f"{where}: no class {name} ({have})")
    why = _problem(obj, module.__name__)
    if why is not None:
        raise ReleaseClassError(f"{where}:{name} {why}, so it cannot run as a release-style "
                                "controller Cls(config=...).solve(question)")
    return obj


# ----------------------------------------------------------------------------- config


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_BOOLS = {"true": True, "false": False}


def _value(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    return text


def parse_controller_config(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """``KEY=VALUE,...`` into a dict: integers, floats, ``true``/``false`` (any case), and
    strings otherwise (quote a value to keep it a string: ``tag="1"``). ``beta`` is not
    allowed (it comes from ``--betas``)."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        out = dict(text)
    else:
        out = {}
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            key, eq, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not eq:
                raise ControllerConfigError(
                    f"--controller-config {text!r}: {part!r} is not KEY=VALUE")
            if not key.isidentifier():
                raise ControllerConfigError(
                    f"--controller-config {text!r}: {key!r} is not a valid key")
            if key in out:
                raise ControllerConfigError(
                    f"--controller-config {text!r}: key {key!r} is given twice")
            out[key] = _value(value)
    if "beta" in out:
        raise ControllerConfigError("--controller-config: beta is set per run by --betas, "
                                    "not in the config")
    return out
