"""Parallel-Probe: open many chains, deepen them in lockstep, prune chains that stay off
the majority, stop once the majority has been stable for T steps."""

from __future__ import annotations

from autotts_gym.voting import majority


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
        ids, latest, finished, pruned, off = [], [], [], [], []
        for _ in range(self.num_chains):
            r = session.open()
            if r is None:
                break
            a, b, fin = r
            ids.append(b)
            latest.append(a)
            finished.append(fin)
            pruned.append(False)
            off.append(0)
        n = len(ids)
        prev_winner, stable = None, 0
        for step in range(self.max_steps):
            for i in range(n):
                if pruned[i] or finished[i]:
                    continue
                for _ in range(self.probe_burst):
                    latest[i], finished[i] = session.advance(ids[i])
                    if finished[i]:
                        break
            active = [i for i in range(n) if not pruned[i]]
            if not active:
                break
            winner = majority([latest[i] for i in active])
            if step >= self.warm_up and len(active) > 1:
                cut = False
                for i in active:
                    if finished[i]:
                        continue
                    off[i] = off[i] + 1 if latest[i] != winner else 0
                    if off[i] >= self.prune_patience:
                        pruned[i] = True
                        session.prune(ids[i])
                        cut = True
                if cut:
                    active = [i for i in range(n) if not pruned[i]]
                    if not active:
                        break
                    winner = majority([latest[i] for i in active])
            stable = stable + 1 if winner == prev_winner else 0
            prev_winner = winner
            if stable >= self.T:
                return winner
            if all(finished[i] or pruned[i] for i in range(n)):
                break
        return prev_winner

    def solve_batch(self, batch):
        from .batched import parallel_probe_batch

        return parallel_probe_batch(batch, self.num_chains, self.T, self.prune_patience,
                                    self.warm_up, self.probe_burst, self.max_steps)


def make_controller(beta: float) -> ParallelProbe:
    return ParallelProbe()
