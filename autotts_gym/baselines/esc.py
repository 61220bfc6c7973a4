"""ESC, early-stopping self-consistency: read windows of branches; stop at the first
window whose answers all agree."""

from __future__ import annotations

from autotts_gym.voting import majority


class EarlyStoppingConsistency:
    def __init__(self, max_samples: int = 64, window: int = 8):
        self.max_samples = max_samples
        self.window = window

    def solve(self, session) -> str | None:
        answers: list[str] = []
        for _ in range(self.max_samples // self.window):
            win = []
            for _ in range(self.window):
                a = session.read()
                if a is None:
                    break
                win.append(a)
            if not win:
                continue
            answers.extend(win)
            if all(a == win[0] for a in win):
                return win[0]
        return majority(answers)

    def solve_batch(self, batch):
        from .batched import esc_batch

        return esc_batch(batch, self.max_samples, self.window)


def make_controller(beta: float) -> EarlyStoppingConsistency:
    return EarlyStoppingConsistency()
