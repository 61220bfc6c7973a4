"""SC@N, self-consistency: read N whole branches, answer the majority of their finals."""

from __future__ import annotations

from autotts_gym.voting import majority

N_DEFAULT = 64


class SelfConsistency:
    def __init__(self, n: int = N_DEFAULT):
        self.n = n

    def solve(self, session) -> str | None:
        finals = []
        for _ in range(self.n):
            a = session.read()
            if a is None:
                break
            finals.append(a)
        return majority(finals)

    def solve_batch(self, batch):
        from .batched import sc_batch

        return sc_batch(batch, n=self.n)


def make_controller(beta: float) -> SelfConsistency:
    """SC@64 ignores beta: it is the fixed-budget anchor."""
    return SelfConsistency(N_DEFAULT)
