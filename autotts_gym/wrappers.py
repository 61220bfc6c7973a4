"""RoundMacroWrapper: a round-level action space over AutoTTS-v0's atomic actions.

PPO over the atomic env picks among 2 + 3N actions for hundreds of steps per episode and
learns slowly. This wrapper turns one decision into a *round*: widen, deepen every active
branch, prune the dissenters, or answer. Each macro action is executed as atomic actions
of the wrapped env, which charges every token and hands out every reward (the atomic env
stays the ground truth). Observations are a compact vector of vote and cost statistics.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .actions import ANSWER, BRANCH, encode
from .env import AutoTTSEnv
from .voting import beta_confidence

MACRO_ACTIONS = ("answer", "widen_1", "widen_4", "deepen_1", "deepen_4", "prune_dissent")
FEATURES = (
    "n_open", "n_active", "n_finished", "top_share", "second_share", "distinct",
    "finished_top_share", "finished_confidence", "all_confidence", "tokens", "mean_depth",
    "beta", "budget_left", "rounds",
)


class RoundMacroWrapper(gym.Wrapper):
    """Macro actions over :class:`~autotts_gym.env.AutoTTSEnv`.

    ## Action Space
    ``Discrete(6)``: 0 ANSWER; 1 WIDEN_1 / 2 WIDEN_4 (open 1 or 4 branches and probe each);
    3 DEEPEN_1 / 4 DEEPEN_4 (every active branch generates 1 or 4 more intervals, then is
    probed); 5 PRUNE_DISSENT (prune every active branch whose latest answer is not the
    env's :meth:`~autotts_gym.env.AutoTTSEnv.leader`, i.e. what ANSWER would give now under
    its aggregator; at least one active branch stays). ``action_masks()`` marks what can act now;
    an inadmissible macro is passed to the inner env as an invalid atomic action (no-op,
    penalized there).

    ## Observation Space
    ``Box(0, 1, (14,))``: opened / active / finished fractions of N, the vote shares of the
    top two answers, distinct answers / N, the top share and beta-majority confidence among
    finished branches, the confidence over all latest answers, tokens / token_scale
    (clipped to 1), mean depth / max depth, beta, budget left, rounds / max_rounds.

    The wrapper reads the env only through its public methods (``action_masks``,
    ``leader``, ``slot_answers``, ``n_opened``) and the observations it returns.

    ## Rewards and Episode End
    The sum of the atomic env's rewards over the round's atomic steps; the episode ends
    when the atomic env's does, or is truncated after ``max_rounds`` rounds (the inner env
    then answers).
    """

    def __init__(self, env: gym.Env, max_rounds: int = 200):
        super().__init__(env)
        inner = env.unwrapped
        if not isinstance(inner, AutoTTSEnv):
            raise TypeError("RoundMacroWrapper wraps an AutoTTS-v0 environment")
        self.inner: AutoTTSEnv = inner
        self.N = inner.N
        self.max_rounds = int(max_rounds)
        self.action_space = spaces.Discrete(len(MACRO_ACTIONS))
        self.observation_space = spaces.Box(0.0, 1.0, (len(FEATURES),), np.float32)
        self._rounds = 0
        self.atomic_actions: list[int] = []  # every atomic action issued this episode

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._rounds = 0
        self.atomic_actions = []
        info = dict(info, action_mask=self.action_masks())
        return self._features(obs), info

    # ------------------------------------------------------------------ masks
    def action_masks(self) -> np.ndarray:
        m = self.inner.action_masks()
        N = self.N
        cont = m[2:2 + N]
        mask = np.zeros(len(MACRO_ACTIONS), dtype=bool)
        mask[0] = True
        mask[1] = mask[2] = m[BRANCH]
        mask[3] = mask[4] = cont.any()
        mask[5] = bool(self._dissenters().any())
        return mask

    def _dissenters(self) -> np.ndarray:
        """Active slots whose latest answer is not what ANSWER would give now (the env's
        :meth:`~autotts_gym.env.AutoTTSEnv.leader`), keeping at least one active slot."""
        inner, N = self.inner, self.N
        active = inner.action_masks()[2:2 + N]  # CONTINUE admissible: opened, unpruned, unfinished
        diss = np.zeros(N, dtype=bool)
        lead = inner.leader() if active.sum() >= 2 else None
        if lead is None:
            return diss
        for i, answer in enumerate(inner.slot_answers()):
            diss[i] = active[i] and answer != lead
        if diss.sum() >= active.sum():
            diss[np.flatnonzero(diss)[0]] = False
        return diss

    # ------------------------------------------------------------------ stepping
    def _atomic(self, a: int):
        self.atomic_actions.append(int(a))
        return self.env.step(a)

    def _play(self, actions: Iterable[int]) -> tuple[tuple, float]:
        """Issue atomic actions (drawn lazily, so each sees the state the previous left)
        until they run out or the episode ends: ``(last step result, summed reward)``."""
        result: tuple | None = None
        total = 0.0
        for a in actions:
            result = self._atomic(a)
            total += result[1]
            if result[2] or result[3]:
                break
        assert result is not None, "a macro admitted by the mask issues an atomic action"
        return result, total

    def _widen(self, n: int) -> Iterator[int]:
        for _ in range(n):
            if not self.inner.action_masks()[BRANCH]:
                return
            slot = self.inner.n_opened
            yield BRANCH
            yield encode("probe", slot, self.N)

    def _deepen(self, n: int) -> Iterator[int]:
        masks, N = self.inner.action_masks, self.N
        for slot in map(int, np.flatnonzero(masks()[2:2 + N])):
            for _ in range(n):
                if not masks()[encode("continue", slot, N)]:
                    break
                yield encode("continue", slot, N)
            if masks()[encode("probe", slot, N)]:
                yield encode("probe", slot, N)

    def _prune_dissent(self) -> Iterator[int]:
        for slot in np.flatnonzero(self._dissenters()):
            yield encode("prune", int(slot), self.N)

    def step(self, action):
        a = int(action)
        self._rounds += 1
        if not (0 <= a < len(MACRO_ACTIONS)) or not self.action_masks()[a]:
            actions: Iterable[int] = [-1]  # the inner env's invalid-action no-op and penalty
        elif a == 0:
            actions = [ANSWER]
        elif a in (1, 2):
            actions = self._widen(1 if a == 1 else 4)
        elif a in (3, 4):
            actions = self._deepen(1 if a == 3 else 4)
        else:
            actions = self._prune_dissent()
        result, total = self._play(actions)
        obs, _, terminated, truncated, info = result
        if not (terminated or truncated) and self._rounds >= self.max_rounds:
            obs, r, terminated, _, info = self._atomic(ANSWER)
            total += r
            truncated, terminated = True, False
        info = dict(info, action_mask=self.action_masks())
        return self._features(obs), float(total), terminated, truncated, info

    # ------------------------------------------------------------------ features
    def _features(self, obs: dict[str, Any]) -> np.ndarray:
        inner, N = self.inner, self.N
        n_open = inner.n_opened
        votes = np.sort(obs["votes"])[::-1]
        n_votes = max(1.0, float(votes.sum()))
        fin_ranks = obs["answer"][(obs["finished"] == 1) & (obs["pruned"] == 0)
                                  & (obs["answer"] >= 0)]
        if fin_ranks.size:
            fc = np.sort(np.bincount(fin_ranks, minlength=2))[::-1]
            fin_top = fc[0] / fin_ranks.size
            fin_conf = beta_confidence(int(fc[0]), int(fc[1]))
        else:
            fin_top = fin_conf = 0.0
        depth = obs["depth"][:n_open]
        f = np.array([
            n_open / N, obs["active"].sum() / N, obs["finished"].sum() / N,
            votes[0] / n_votes, votes[1] / n_votes, float((obs["votes"] > 0).sum()) / N,
            fin_top, fin_conf, beta_confidence(int(votes[0]), int(votes[1])),
            min(1.0, float(obs["tokens"][0])),
            float(depth.mean()) / inner.max_depth if n_open else 0.0,
            float(obs["beta"][0]), float(obs["budget_left"][0]),
            min(1.0, self._rounds / self.max_rounds),
        ], dtype=np.float32)
        return np.clip(f, 0.0, 1.0)
