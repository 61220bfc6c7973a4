"""Extract controller code from an explorer's reply and check it before it runs.

A static filter only (the jail is the boundary): the code must parse, define
``make_controller``, import only allowed modules and avoid dunder attributes and the
built-ins that reach around the contract. The discovery loop gates on it (it saves a jail
and tells the explorer why); ``autotts eval --sandbox`` reports it as advice.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

ALLOWED_IMPORTS = (
    "__future__", "math", "collections", "itertools", "functools", "statistics", "heapq",
    "bisect", "random", "dataclasses", "typing", "fractions", "operator", "numpy", "scipy",
    "autotts_gym.voting",
)
"""Modules a controller may import (with their submodules for numpy and scipy)."""
_PACKAGES = ("numpy", "scipy")

FORBIDDEN_NAMES = frozenset({
    "eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars",
    "getattr", "setattr", "delattr", "breakpoint", "input", "memoryview", "help",
})
ALLOWED_DUNDERS = frozenset({"__init__", "__name__", "__len__", "__iter__", "__next__",
                             "__eq__", "__lt__", "__hash__", "__repr__", "__slots__",
                             "__post_init__", "__future__", "__contains__", "__getitem__"})
_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    code: str
    kind: str = "ok"  # "no_code", "syntax", "rejected"
    message: str = ""


def extract_code(reply: str) -> str | None:
    """The longest fenced code block of a reply (None if it has none)."""
    blocks = _BLOCK.findall(reply or "")
    return max(blocks, key=len).strip() + "\n" if blocks else None


def check_code(code: str) -> CheckResult:
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return CheckResult(False, code, "syntax", f"line {e.lineno}: {e.msg}")
    problems = []
    defines = False
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                node.name == "make_controller"):
            defines = defines or node in tree.body
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            if name not in ALLOWED_IMPORTS and not name.startswith(
                    tuple(p + "." for p in _PACKAGES)):
                problems.append(f"line {node.lineno}: import of {name!r} is not allowed "
                                f"(allowed: {', '.join(ALLOWED_IMPORTS)})")
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            problems.append(f"line {node.lineno}: {node.id!r} is not allowed")
        if isinstance(node, ast.Attribute) and node.attr.startswith("__") and (
                node.attr not in ALLOWED_DUNDERS):
            problems.append(f"line {node.lineno}: attribute {node.attr!r} is not allowed")
    if not defines:
        problems.append("no top-level function make_controller(beta)")
    if problems:
        return CheckResult(False, code, "rejected", "; ".join(problems))
    return CheckResult(True, code)


def check_reply(reply: str) -> CheckResult:
    code = extract_code(reply)
    if code is None:
        return CheckResult(False, "", "no_code", "the reply has no ```python code block")
    return check_code(code)
