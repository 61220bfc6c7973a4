"""ESC, early-stopping self-consistency: read windows of branches; stop at the first
window whose answers all agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotts_gym.voting import Tally

if TYPE_CHECKING:  # types only: the module stays loadable as a sandboxed candidate
    import numpy as np

    from autotts_gym.contracts import SessionAPI
    from autotts_gym.core import EpisodeBatch


class EarlyStoppingConsistency:
    def __init__(self, max_samples: int = 64, window: int = 8):
        self.max_samples = max_samples
        self.window = window

    def solve(self, session: SessionAPI) -> str | None:
        votes: Tally[str] = Tally()
        for _ in range(self.max_samples // self.window):
            win = []
            for _ in range(self.window):
                a = session.read()
                if a is None:
                    break
                win.append(a)
                votes.add(a)
            if win and all(a == win[0] for a in win):
                return win[0]
        return votes.leader

    def solve_batch(self, batch: EpisodeBatch) -> np.ndarray:
        from .batched import esc_batch

        return esc_batch(batch, self.max_samples, self.window)


def make_controller(beta: float) -> EarlyStoppingConsistency:
    return EarlyStoppingConsistency()
