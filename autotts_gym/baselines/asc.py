"""ASC, adaptive consistency: read branches one by one; stop once the beta-majority
confidence of the top two counts exceeds the threshold."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotts_gym.voting import Tally

if TYPE_CHECKING:  # types only: the module stays loadable as a sandboxed candidate
    import numpy as np

    from autotts_gym.contracts import SessionAPI
    from autotts_gym.core import EpisodeBatch


class AdaptiveConsistency:
    def __init__(self, max_samples: int = 64, threshold: float = 0.95):
        self.max_samples = max_samples
        self.threshold = threshold

    def solve(self, session: SessionAPI) -> str | None:
        votes: Tally[str] = Tally()
        for _ in range(self.max_samples):
            a = session.read()
            if a is None:
                break
            votes.add(a)
            if votes.n >= 2 and votes.confidence > self.threshold:
                break
        return votes.leader

    def solve_batch(self, batch: EpisodeBatch) -> np.ndarray:
        from .batched import asc_batch

        return asc_batch(batch, self.max_samples, self.threshold)


def make_controller(beta: float) -> AdaptiveConsistency:
    return AdaptiveConsistency()
