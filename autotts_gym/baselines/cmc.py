"""CMC, the Confidence Momentum Controller (the AutoTTS paper's discovered controller).

One knob, beta in [0, 1]; every hyperparameter is a deterministic function of it
(:func:`schedule`). The controller keeps a momentum (EMA) of the beta-majority confidence of
the answers of finished branches, deepens branches that agree with the leader faster,
abandons branches that keep disagreeing, widens while confidence is low and not rising,
and stops once the smoothed confidence is high and not falling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from autotts_gym.voting import Tally, majority

if TYPE_CHECKING:  # types only: the module stays loadable as a sandboxed candidate
    import numpy as np

    from autotts_gym.contracts import SessionAPI
    from autotts_gym.core import EpisodeBatch

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


class _Episode:
    """CMC's state in one episode: its branches and the finished branches' answers."""

    def __init__(self, s: Schedule, session: SessionAPI):
        self.s = s
        self.session = session
        self.branches: list[_Branch] = []
        self.completed: Tally[str] = Tally()  # final answers in the order branches finished

    def live(self) -> list[_Branch]:
        return [br for br in self.branches if not br.finished and not br.abandoned]

    def spawn(self) -> bool:
        r = self.session.open()
        if r is None:
            return False
        a, bid, fin = r
        self.branches.append(_Branch(bid, a, fin))
        if fin:
            self.completed.add(a)
        return True

    def widen(self, n: int) -> None:
        for _ in range(n):
            if len(self.branches) >= self.s.max_branch_use or not self.spawn():
                break

    def abandon(self, winner: str) -> None:
        """(b) Count disagreement rounds; abandon the most persistent dissenters."""
        live = self.live()
        for br in live:
            br.disagree = br.disagree + 1 if br.latest != winner else 0
        stale = sorted((br for br in live if br.disagree >= self.s.abandon_patience),
                       key=lambda br: -br.disagree)
        for br in stale[: max(0, len(live) - 2)]:
            br.abandoned = True
            self.session.prune(br.id)

    def deepen(self, winner: str | None) -> None:
        """(c) Deepest first; branches agreeing with ``winner`` get a burst."""
        live = self.live()
        live.sort(key=lambda br: -br.probes)
        for br in live:
            aligned = winner is not None and br.latest == winner
            for _ in range(self.s.burst_aligned if aligned else 1):
                a, fin = self.session.advance(br.id)
                br.probes += 1
                br.latest = a
                if fin:
                    br.finished = True
                    self.completed.add(a)
                    break

    def fallback(self) -> str | None:
        """The answer when the loop ends without stopping."""
        if self.completed.leader is not None:
            return self.completed.leader
        return majority([br.latest for br in self.branches if not br.abandoned])


class ConfidenceMomentumController:

    def __init__(self, beta: float):
        self.beta = float(beta)
        self.s = schedule(beta)

    def solve(self, session: SessionAPI) -> str | None:
        s = self.s
        ep = _Episode(s, session)
        for _ in range(s.n_init):
            if not ep.spawn():
                break
        pool = ep.completed  # leader and confidence of the finished branches' answers
        ema = 0.0
        hist: list[float] = []
        alpha = s.ema_alpha
        for step in range(MAX_STEPS):
            # (a) momentum of the pool's confidence
            winner = pool.leader
            warm = step >= s.warm_up
            ema = (1 - alpha) * ema + alpha * pool.confidence
            hist.append(ema)
            if len(hist) > s.T_ema:
                hist.pop(0)
            # (b) abandon persistent dissenters; (c) depth
            if warm and winner is not None:
                ep.abandon(winner)
            ep.deepen(winner if warm else None)
            # (d) second momentum update, replacing the newest value
            ema = (1 - alpha) * ema + alpha * pool.confidence
            hist[-1] = ema
            delta = hist[-1] - hist[0] if len(hist) >= 2 else 0.0
            # (e) stop gate
            if (warm and pool.n >= s.min_complete and ema >= s.conf_thresh
                    and delta >= -s.delta_slack):
                return pool.leader
            # (f) nothing left to run
            if not ep.live():
                break
            # (g) widen while confidence is low and not rising
            if (len(ep.branches) < s.max_branch_use and delta <= s.trend_thresh
                    and step >= max(1, s.warm_up // 2) and ema < s.conf_thresh):
                ep.widen(s.widen_burst)
        return ep.fallback()

    def solve_batch(self, batch: EpisodeBatch) -> np.ndarray:
        from .batched import cmc_batch

        return cmc_batch(batch, self.beta)


def make_controller(beta: float) -> ConfidenceMomentumController:
    return ConfidenceMomentumController(beta)
