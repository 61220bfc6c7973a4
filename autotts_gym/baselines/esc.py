"""ESC, early-stopping self-consistency: read windows of branches; stop at the first
window whose answers all agree."""

from __future__ import annotations

import numpy as np

from autotts_gym.contracts import SessionAPI
from autotts_gym.core import EpisodeBatch
from autotts_gym.voting import Tally


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
