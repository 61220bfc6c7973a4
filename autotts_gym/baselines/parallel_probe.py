"""Parallel-Probe: open many chains, deepen them in lockstep, prune chains that stay off
the majority, stop once the majority has been stable for T steps."""

from __future__ import annotations

from dataclasses import dataclass, field

from autotts_gym.voting import majority


@dataclass
class _Chains:
    """Per opened chain: branch id, latest answer, finished, pruned, steps off the majority."""

    ids: list = field(default_factory=list)
    latest: list = field(default_factory=list)
    finished: list[bool] = field(default_factory=list)
    pruned: list[bool] = field(default_factory=list)
    off: list[int] = field(default_factory=list)

    def add(self, answer, branch, finished: bool) -> None:
        self.ids.append(branch)
        self.latest.append(answer)
        self.finished.append(finished)
        self.pruned.append(False)
        self.off.append(0)

    def unpruned(self) -> list[int]:
        return [i for i in range(len(self.ids)) if not self.pruned[i]]


class ParallelProbe:
    def __init__(self, num_chains: int = 64, T: int = 40, prune_patience: int = 7,
                 warm_up: int = 15, probe_burst: int = 1, max_steps: int = 100):
        self.num_chains = num_chains
        self.T = T
        self.prune_patience = prune_patience
        self.warm_up = warm_up
        self.probe_burst = probe_burst
        self.max_steps = max_steps

    def solve(self, session) -> str | None:
        c = _Chains()
        for _ in range(self.num_chains):
            r = session.open()
            if r is None:
                break
            c.add(*r)
        prev_winner, stable = None, 0
        for step in range(self.max_steps):
            self._deepen(session, c)
            active = c.unpruned()
            if not active:
                break
            winner = majority([c.latest[i] for i in active])
            if (step >= self.warm_up and len(active) > 1
                    and self._prune_off_majority(session, c, active, winner)):
                active = c.unpruned()
                if not active:
                    break
                winner = majority([c.latest[i] for i in active])
            stable = stable + 1 if winner == prev_winner else 0
            prev_winner = winner
            if stable >= self.T:
                return winner
            if all(c.finished[i] or c.pruned[i] for i in range(len(c.ids))):
                break
        return prev_winner

    def _deepen(self, session, c: _Chains) -> None:
        """Advance every live chain by up to ``probe_burst`` probes."""
        for i in range(len(c.ids)):
            if c.pruned[i] or c.finished[i]:
                continue
            for _ in range(self.probe_burst):
                c.latest[i], c.finished[i] = session.advance(c.ids[i])
                if c.finished[i]:
                    break

    def _prune_off_majority(self, session, c: _Chains, active: list[int], winner) -> bool:
        """Count steps off the majority per unfinished chain; prune those off it for
        ``prune_patience`` steps in a row. True when any chain was pruned."""
        cut = False
        for i in active:
            if c.finished[i]:
                continue
            c.off[i] = c.off[i] + 1 if c.latest[i] != winner else 0
            if c.off[i] >= self.prune_patience:
                c.pruned[i] = True
                session.prune(c.ids[i])
                cut = True
        return cut

    def solve_batch(self, batch):
        from .batched import parallel_probe_batch

        return parallel_probe_batch(batch, self.num_chains, self.T, self.prune_patience,
                                    self.warm_up, self.probe_burst, self.max_steps)


def make_controller(beta: float) -> ParallelProbe:
    return ParallelProbe()
