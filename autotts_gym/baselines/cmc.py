"""CMC, the Confidence Momentum Controller (the AutoTTS paper's discovered controller).

One knob, beta in [0, 1]; every hyperparameter is a deterministic function of it
(:func:`schedule`). The controller keeps a momentum (EMA) of the beta-majority confidence of
the answers of finished branches, deepens branches that agree with the leader faster,
abandons branches that keep disagreeing, widens while confidence is low and not rising,
and stops once the smoothed confidence is high and not falling.
"""

from __future__ import annotations

from dataclasses import dataclass

from autotts_gym.contracts import SessionAPI
from autotts_gym.voting import Tally, majority

MAX_STEPS = 500
"""Rounds before CMC answers with what it has (the per-episode and batched versions)."""


@dataclass(frozen=True)
class Schedule:
    n_init: int
    max_branch_use: int
    warm_up: int
    abandon_patience: int
    T_ema: int
    ema_alpha: float
    conf_thresh: float
    delta_slack: float
    burst_aligned: int
    widen_burst: int
    trend_thresh: float
    min_complete: int


def schedule(beta: float) -> Schedule:
    b = min(1.0, max(0.0, float(beta)))
    return Schedule(
        n_init=max(2, round(2 + 6 * b)),
        max_branch_use=min(64, round(4 + 60 * b)),
        warm_up=max(2, round(2 + 8 * b)),
        abandon_patience=max(3, round(3 + 9 * b)),
        T_ema=max(2, round(2 + 6 * b)),
        ema_alpha=0.70 - 0.40 * b,
        conf_thresh=0.85 + 0.12 * b,
        delta_slack=0.04 - 0.03 * b,
        burst_aligned=max(1, round(1 + 2 * b)),
        widen_burst=max(1, round(1 + 3 * b)),
        trend_thresh=0.04 - 0.03 * b,
        min_complete=max(2, round(2 + 3 * b)),
    )


class _Branch:
    __slots__ = ("abandoned", "disagree", "finished", "id", "latest", "probes")

    def __init__(self, bid: int, answer: str, finished: bool):
        self.id = bid
        self.latest = answer
        self.finished = finished
        self.abandoned = False
        self.probes = 1
        self.disagree = 0


class ConfidenceMomentumController:

    def __init__(self, beta: float):
        self.beta = float(beta)
        self.s = schedule(beta)

    def solve(self, session: SessionAPI) -> str | None:
        s = self.s
        branches: list[_Branch] = []
        completed: Tally[str] = Tally()  # final answers in the order branches finished

        def spawn() -> bool:
            r = session.open()
            if r is None:
                return False
            a, bid, fin = r
            branches.append(_Branch(bid, a, fin))
            if fin:
                completed.add(a)
            return True

        def pool() -> tuple[str | None, float]:
            return completed.leader, completed.confidence

        for _ in range(s.n_init):
            if not spawn():
                break
        ema = 0.0
        hist: list[float] = []
        alpha = s.ema_alpha
        for step in range(MAX_STEPS):
            # (a) momentum of the pool's confidence
            winner, conf = pool()
            warm = step >= s.warm_up
            ema = (1 - alpha) * ema + alpha * conf
            hist.append(ema)
            if len(hist) > s.T_ema:
                hist.pop(0)
            # (b) abandon persistent dissenters
            if warm and winner is not None:
                live = [br for br in branches if not br.finished and not br.abandoned]
                for br in live:
                    br.disagree = br.disagree + 1 if br.latest != winner else 0
                stale = sorted((br for br in live if br.disagree >= s.abandon_patience),
                               key=lambda br: -br.disagree)
                for br in stale[: max(0, len(live) - 2)]:
                    br.abandoned = True
                    session.prune(br.id)
            # (c) depth: deepest first; branches agreeing with the leader get a burst
            live = [br for br in branches if not br.finished and not br.abandoned]
            live.sort(key=lambda br: -br.probes)
            for br in live:
                aligned = warm and winner is not None and br.latest == winner
                for _ in range(s.burst_aligned if aligned else 1):
                    a, fin = session.advance(br.id)
                    br.probes += 1
                    br.latest = a
                    if fin:
                        br.finished = True
                        completed.add(a)
                        break
            # (d) second momentum update, replacing the newest value
            winner, conf = pool()
            ema = (1 - alpha) * ema + alpha * conf
            hist[-1] = ema
            delta = hist[-1] - hist[0] if len(hist) >= 2 else 0.0
            # (e) stop gate
            if (warm and completed.n >= s.min_complete and ema >= s.conf_thresh
                    and delta >= -s.delta_slack):
                return winner
            # (f) nothing left to run
            if all(br.finished or br.abandoned for br in branches):
                break
            # (g) widen while confidence is low and not rising
            if (len(branches) < s.max_branch_use and delta <= s.trend_thresh
                    and step >= max(1, s.warm_up // 2) and ema < s.conf_thresh):
                for _ in range(s.widen_burst):
                    if len(branches) >= s.max_branch_use or not spawn():
                        break
        winner, _ = pool()
        if winner is not None:
            return winner
        return majority([br.latest for br in branches if not br.abandoned])

    def solve_batch(self, batch):
        from .batched import cmc_batch

        return cmc_batch(batch, self.beta)


def make_controller(beta: float) -> ConfidenceMomentumController:
    return ConfidenceMomentumController(beta)
