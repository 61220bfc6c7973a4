"""The atomic action layout of AutoTTS-v0: ``Discrete(2 + 3N)`` for N slots.

=========  ==================  =============================================
action     kind                meaning
=========  ==================  =============================================
0          ``answer``          stop and answer (aggregate revealed answers)
1          ``branch``          open the next branch, generate one interval
2 + i      ``continue``        generate one more interval on slot i
2 + N + i  ``probe``           reveal slot i's answer at its current depth
2 + 2N + i ``prune``           deactivate slot i
=========  ==================  =============================================
"""

from __future__ import annotations

ANSWER = 0
BRANCH = 1
KINDS = ("answer", "branch", "continue", "probe", "prune")
_OFFSET = {"continue": 0, "probe": 1, "prune": 2}


def n_actions(n: int) -> int:
    return 2 + 3 * n


def encode(kind: str, slot: int | None, n: int) -> int:
    """The action number of ``kind`` (on ``slot`` for continue/probe/prune) with N = n."""
    if kind == "answer":
        return ANSWER
    if kind == "branch":
        return BRANCH
    if kind not in _OFFSET:
        raise ValueError(f"unknown action kind {kind!r}; kinds are {', '.join(KINDS)}")
    if slot is None or not 0 <= slot < n:
        raise ValueError(f"action {kind!r} needs a slot in 0..{n - 1}, got {slot!r}")
    return 2 + _OFFSET[kind] * n + slot


def decode(action: int, n: int) -> tuple[str, int | None]:
    """``(kind, slot)`` of an action number (slot None for answer and branch)."""
    a = int(action)
    if a == ANSWER:
        return "answer", None
    if a == BRANCH:
        return "branch", None
    if not 2 <= a < 2 + 3 * n:
        raise ValueError(f"action {a} is outside Discrete({2 + 3 * n})")
    q, slot = divmod(a - 2, n)
    return KINDS[2 + q], slot
