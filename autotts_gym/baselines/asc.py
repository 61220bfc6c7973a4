"""ASC, adaptive consistency: read branches one by one; stop once the beta-majority
confidence of the top two counts exceeds the threshold."""

from __future__ import annotations

from collections import Counter

from autotts_gym.voting import beta_confidence, majority


class AdaptiveConsistency:
    def __init__(self, max_samples: int = 64, threshold: float = 0.95):
        self.max_samples = max_samples
        self.threshold = threshold

    def solve(self, session) -> str | None:
        answers: list[str] = []
        counts: Counter[str] = Counter()
        for _ in range(self.max_samples):
            a = session.read()
            if a is None:
                break
            answers.append(a)
            counts[a] += 1
            if len(answers) >= 2:
                mc = counts.most_common(2)
                top = mc[0][1]
                second = mc[1][1] if len(mc) > 1 else 0
                if beta_confidence(top, second) > self.threshold:
                    return mc[0][0]
        return majority(answers)

    def solve_batch(self, batch):
        from .batched import asc_batch

        return asc_batch(batch, self.max_samples, self.threshold)


def make_controller(beta: float) -> AdaptiveConsistency:
    return AdaptiveConsistency()
