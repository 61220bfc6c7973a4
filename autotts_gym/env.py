"""AutoTTS-v0: test-time scaling as a Gymnasium environment over cached trajectories."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .actions import ANSWER, BRANCH, n_actions
from .core import Episode, branch_order
from .data import describe_source, open_store
from .protocol import TOKEN_SCALE, default_gamma
from .store import ReplaySet, ReplayStore
from .voting import Tally, majority

Aggregator = Callable[[Sequence[str]], "str | None"]

_OPTION_KEYS = frozenset({"problem", "order_seed", "beta", "model", "benchmark"})


class AutoTTSEnv(gym.Env):
    """How should a reasoning model spend its tokens on one problem?

    ## Description
    An episode is one problem of a replay set (a model on a benchmark) under one branch
    order. Up to ``max_width`` (N) reasoning branches can be opened; each generates its
    trajectory in intervals of ``probe_freq`` (500) tokens, replayed from cached
    trajectories exactly as ``docs/replay-semantics.md`` describes (the replay core
    :class:`~autotts_gym.core.Episode`). The agent chooses how many branches to open, how
    deep to take each, when to read an intermediate answer, which branch to cut, and when
    to stop and answer: the width-depth control space of the AutoTTS paper, section 2.

    ## Action Space
    ``Discrete(2 + 3N)`` (helpers in :mod:`autotts_gym.actions`):

    | action     | name        | effect (admissible when)                                 |
    |------------|-------------|----------------------------------------------------------|
    | 0          | ANSWER      | stop; aggregate the revealed answers (always)            |
    | 1          | BRANCH      | open the next branch, generate one interval, reveal      |
    |            |             | nothing (fewer than N opened and branches left)          |
    | 2 + i      | CONTINUE(i) | generate one more interval on slot i (opened, unpruned,  |
    |            |             | unfinished)                                              |
    | 2 + N + i  | PROBE(i)    | reveal slot i's answer at its current depth, costing     |
    |            |             | ``kappa_probe`` (opened, unpruned, not yet revealed at   |
    |            |             | that depth)                                              |
    | 2 + 2N + i | PRUNE(i)    | deactivate slot i; it keeps its depth and answers but    |
    |            |             | leaves the vote (opened, unpruned)                       |

    Admissibility, from the atomic actions of ``docs/replay-semantics.md``: PROBE is
    admissible once per depth (a second PROBE at the same depth would reveal nothing new
    but still charge ``kappa_probe``), and again after each CONTINUE; a finished branch
    cannot CONTINUE (it would generate nothing); a pruned slot admits nothing. BRANCH on
    a branch whose trajectory is a single interval finishes it at once.
    ``env.unwrapped.action_masks()`` (what sb3-contrib's MaskablePPO calls) and
    ``info["action_mask"]`` give the admissible set. An inadmissible action never raises:
    it does nothing, costs no tokens, sets ``info["invalid_action"]`` and is penalized by
    ``invalid_action_penalty``.

    ## Observation Space
    A ``Dict`` holding only what a controller may know (never the gold answer, an
    unrevealed answer, or anything about unopened branches):

    | key           | shape  | meaning                                                      |
    |---------------|--------|--------------------------------------------------------------|
    | depth         | (N,)   | intervals generated per slot (0 = not opened)                |
    | active        | (N,)   | 1 if opened, not pruned, not finished                        |
    | pruned        | (N,)   | 1 if pruned                                                  |
    | finished      | (N,)   | 1 if the trajectory ended                                    |
    | answer        | (N,)   | latest revealed answer as its rank in this episode's         |
    |               |        | first-seen order (-1 none, N for ranks >= N)                 |
    | votes         | (N+1,) | count of unpruned slots whose latest answer has each rank    |
    |               |        | (exactly the answers ANSWER aggregates)                      |
    | tokens        | (1,)   | tokens spent / ``token_scale``                               |
    | budget_left   | (1,)   | fraction of ``token_budget`` left (1 without a budget)       |
    | beta          | (1,)   | this episode's accuracy-cost knob                            |
    | n_open        | (1,)   | branches opened / N                                          |

    ## Rewards
    Every step costs ``-gamma(beta) * tokens_charged / token_scale``; ANSWER adds
    ``1{answer == gold}`` (no answer is wrong). ANSWER votes over the latest revealed
    answers of the unpruned slots, listed in slot order: by default the majority, ties
    going to the answer listed first (:func:`autotts_gym.voting.majority`); pruned slots do
    not vote, so pruning every slot answers nothing. The return is the paper's objective
    ``1{correct} - gamma(beta) * tokens / token_scale``. ``gamma`` (``gamma_fn``) is
    :func:`default_gamma` unless replaced: monotone decreasing, 2.0 at beta = 0 (cost
    first) down to 0.05 at beta = 1 (accuracy first). Inadmissible actions:
    ``-invalid_action_penalty``.

    The vote is public, for wrappers and analysis (Gymnasium wrappers read only public
    methods): ``ballot()`` lists what ANSWER votes over, ``vote_counts()`` counts it,
    ``leader()`` is what ANSWER would answer now (the aggregator over the ballot),
    ``slot_answers()`` gives each opened slot's latest revealed answer and ``n_opened`` the
    number of opened slots.

    ## Starting State
    No branch open, nothing spent. A replay set (uniformly among the env's sets), a
    problem of it (uniformly), the branch order seed (uniform in ``[0, 2**31 - 1)``,
    ordering branches by :func:`~autotts_gym.core.branch_order`) and, for a beta range,
    beta are drawn from the env's RNG; any of them can be pinned with
    ``reset(options={"problem": k, "order_seed": s, "beta": b, "model": m, "benchmark": bm})``
    (``model``/``benchmark`` are needed with ``problem`` only when the env holds several
    replay sets; ``problem`` is the problem's index in its set). Without ``problem``, a
    ``model`` or ``benchmark`` alone restricts the draw to the matching sets.

    ## Episode End
    Terminated on ANSWER. Truncated when the tokens spent reach ``token_budget`` (the
    step that crosses it is charged in full, so the final ``tokens`` may exceed the
    budget by what that step charged) or after ``max_steps`` steps (invalid ones included):
    the env then answers with the aggregator as ANSWER would and adds the correctness
    term, so every episode's return is the objective above. Stepping after the end warns
    and is undefined (as in Gymnasium); call ``reset()``. Every ``info`` (reset and each
    step) holds the same keys with the same types (so vector envs stack them and Minari's
    ``record_infos=True`` works): ``action_mask``, ``invalid_action``, ``answered`` (True
    once the episode ended with an answer), ``correct``, ``answer`` (the aggregated answer;
    ``""`` before the end or when there is none), ``tokens``, ``width`` (branches opened),
    ``max_depth``, ``mean_depth`` (over opened slots), ``problem``, ``order_seed``,
    ``beta``, ``model``, ``benchmark`` and ``steps``.

    ## Arguments
    * ``replay_dir``: a store or AutoTTS JSON folder (default: the resolution of
      :func:`autotts_gym.data.open_store`, ending in the bundled synthetic store, which
      the env announces with a warning); ``store``: an open :class:`ReplayStore` instead.
    * ``model``, ``benchmark``: a name or list of names (None: all in the store).
    * ``max_width``: N, at most the stored branch count (default 64).
    * ``beta``: a float, or a ``(low, high)`` range sampled uniformly per episode.
    * ``kappa_probe``: tokens charged per PROBE (0, as in the paper).
    * ``token_budget``: tokens per episode before truncation (None: no budget).
    * ``token_scale``, ``gamma_fn``, ``invalid_action_penalty``: reward settings.
    * ``aggregator``: ``f(answers) -> answer or None`` over the latest revealed answer
      strings of the unpruned slots in slot order (default: majority, first listed wins
      ties).
    * ``max_steps``: step cap per episode (None: none).
    * ``render_mode``: ``"ansi"`` or ``"rgb_array"``.
    """

    # a plain class attribute, as gymnasium.Env declares it (a ClassVar would clash)
    metadata: dict[str, Any] = {  # noqa: RUF012
        "render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        replay_dir: str | None = None,
        model: str | Sequence[str] | None = None,
        benchmark: str | Sequence[str] | None = None,
        max_width: int = 64,
        beta: float | tuple[float, float] = 0.5,
        kappa_probe: float = 0.0,
        token_budget: float | None = None,
        token_scale: float = TOKEN_SCALE,
        gamma_fn: Callable[[float], float] | None = None,
        invalid_action_penalty: float = 0.01,
        aggregator: Aggregator | None = None,
        max_steps: int | None = None,
        render_mode: str | None = None,
        store: ReplayStore | None = None,
    ):
        self.store = store if store is not None else open_store(replay_dir)
        self.sets: list[ReplaySet] = self.store.select(model, benchmark)
        if not self.sets:
            raise ValueError(f"{self.store.root}: no replay sets to play")
        self.synthetic = any(rs.synthetic for rs in self.sets)  # attributes already read
        if self.synthetic:
            gym.logger.warn(f"AutoTTS-v0 plays {describe_source(self.store)}")
        # spaces sized from per-set bounds (computed once per loaded set, not per problem)
        bounds = [rs.bounds for rs in self.sets]
        min_branches = min(b.min_branches for b in bounds)
        if not 1 <= int(max_width) <= min_branches:
            raise ValueError(f"max_width must be in 1..{min_branches} (the stored branch "
                             f"count), got {max_width}")
        if isinstance(beta, (tuple, list)):
            lo, hi = float(beta[0]), float(beta[1])
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(f"beta range must satisfy 0 <= low <= high <= 1, got {beta}")
            self.beta_range: tuple[float, float] | None = (lo, hi)
            self.beta = lo
        else:
            if not 0.0 <= float(beta) <= 1.0:
                raise ValueError(f"beta must lie in [0, 1], got {beta}")
            self.beta_range, self.beta = None, float(beta)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        for name, value, ok, need in (
                ("kappa_probe", kappa_probe, float(kappa_probe) >= 0, ">= 0"),
                ("token_budget", token_budget,
                 token_budget is None or float(token_budget) > 0, "positive or None"),
                ("token_scale", token_scale, float(token_scale) > 0, "positive"),
                ("invalid_action_penalty", invalid_action_penalty,
                 float(invalid_action_penalty) >= 0, ">= 0"),
                ("max_steps", max_steps, max_steps is None or int(max_steps) >= 1,
                 "positive or None")):
            if not ok:
                raise ValueError(f"{name} must be {need}, got {value!r}")
        self.N = N = int(max_width)
        self.kappa_probe = float(kappa_probe)
        self.token_budget = None if token_budget is None else float(token_budget)
        self.token_scale = float(token_scale)
        self.gamma_fn = gamma_fn or default_gamma
        self.invalid_action_penalty = float(invalid_action_penalty)
        self.aggregator = aggregator or majority
        self.max_steps = None if max_steps is None else int(max_steps)
        self.render_mode = render_mode
        self.max_depth = max(b.max_depth for b in bounds)
        tok_max = max(b.max_episode_tokens(self.kappa_probe) for b in bounds)
        self.action_space = spaces.Discrete(n_actions(N))
        f32 = np.float32
        self.observation_space = spaces.Dict({
            "depth": spaces.Box(0, self.max_depth, (N,), f32),
            "active": spaces.MultiBinary(N),
            "pruned": spaces.MultiBinary(N),
            "finished": spaces.MultiBinary(N),
            "answer": spaces.Box(-1, N, (N,), np.int64),
            "votes": spaces.Box(0, N, (N + 1,), f32),
            "tokens": spaces.Box(0, np.float32(tok_max / self.token_scale * 1.001), (1,), f32),
            "budget_left": spaces.Box(0, 1, (1,), f32),
            "beta": spaces.Box(0, 1, (1,), f32),
            "n_open": spaces.Box(0, 1, (1,), f32),
        })
        self._ep: Episode | None = None

    # ------------------------------------------------------------------ episode setup
    def _pick_set(self, options: dict) -> ReplaySet:
        m, b = options.get("model"), options.get("benchmark")
        if m is None and b is None:
            if len(self.sets) == 1 or "problem" not in options:
                return self.sets[int(self.np_random.integers(len(self.sets)))]
            raise ValueError("this env holds several replay sets: pin the episode with "
                             "options 'model' and 'benchmark' as well as 'problem'")
        found = [rs for rs in self.sets
                 if (m is None or rs.model == m) and (b is None or rs.benchmark == b)]
        if len(found) > 1 and "problem" not in options:  # e.g. a model pinned, not a set
            return found[int(self.np_random.integers(len(found)))]
        if len(found) != 1:
            raise ValueError(f"options model={m!r}, benchmark={b!r} match {len(found)} of "
                             f"this env's replay sets ({[rs.key for rs in self.sets]})")
        return found[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - _OPTION_KEYS
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; known: "
                             f"{sorted(_OPTION_KEYS)}")
        rs = self._pick_set(options)
        if "problem" in options:
            problem = rs.by_index.get(int(options["problem"]))
            if problem is None:
                raise ValueError(f"options 'problem' = {options['problem']!r} is not a "
                                 f"problem index of {rs.key} (indices "
                                 f"{min(rs.by_index)}..{max(rs.by_index)})")
        else:
            problem = rs.problems[int(self.np_random.integers(len(rs.problems)))]
        order_seed = int(options["order_seed"]) if "order_seed" in options else int(
            self.np_random.integers(2**31 - 1))
        if "beta" in options:
            beta = float(options["beta"])
            if not 0.0 <= beta <= 1.0:
                raise ValueError(f"options 'beta' must lie in [0, 1], got {beta}")
        elif self.beta_range is not None:
            beta = float(self.np_random.uniform(*self.beta_range))
        else:
            beta = self.beta
        tables = rs.tables(problem)
        self._ep = Episode(tables, branch_order(order_seed, tables.n_branches),
                           self.kappa_probe)
        self._set, self._problem, self._order_seed = rs, problem, order_seed
        self._beta = beta
        self._gamma = float(self.gamma_fn(beta)) / self.token_scale
        self._steps = 0
        self._done = False
        N = self.N
        self._depth = np.zeros(N, np.float32)
        self._active = np.zeros(N, np.int8)
        self._pruned = np.zeros(N, np.int8)
        self._finished = np.zeros(N, np.int8)
        self._answer = np.full(N, -1, np.int64)
        self._votes = np.zeros(N + 1, np.float32)
        self._rank: dict[int, int] = {}  # answer id -> first-seen rank (capped at N)
        self._mask = np.zeros(n_actions(N), dtype=bool)
        self._mask[ANSWER] = True
        self._mask[BRANCH] = True
        # the same info keys and types on every step (vector envs, Minari record_infos)
        return self._obs(), self._info(False, None, False)

    # ------------------------------------------------------------------ stepping
    def action_masks(self) -> np.ndarray:
        """The admissible actions of the current state (bool, ``2 + 3N``)."""
        return self._mask.copy()

    def step(self, action):
        if self._ep is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            gym.logger.warn("step() called after the episode ended (terminated or "
                            "truncated); call reset() first, the result is undefined")
        ep, N, mask = self._ep, self.N, self._mask
        try:
            a = int(action)
        except (TypeError, ValueError):  # not an action number at all: inadmissible
            a = -1
        self._steps += 1
        before = ep.tokens
        reward = 0.0
        terminated = truncated = False
        invalid = not (0 <= a < mask.shape[0] and mask[a])
        if invalid:
            reward = -self.invalid_action_penalty
        elif a == ANSWER:
            terminated = True
        elif a == BRANCH:
            i = ep.branch()
            self._depth[i] = 1
            self._on_depth(i)
            mask[2 + 2 * N + i] = True  # PRUNE
            if ep.n_open >= N or not ep.can_branch():
                mask[BRANCH] = False
        else:
            q, i = divmod(a - 2, N)
            if q == 0:  # CONTINUE
                ep.advance(i)
                self._depth[i] = ep.depth[i]
                self._on_depth(i)
            elif q == 1:  # PROBE
                self._reveal(i, ep.probe(i))
                mask[2 + N + i] = False
            else:  # PRUNE
                ep.prune(i)
                self._pruned[i] = 1
                self._active[i] = 0
                mask[2 + i] = mask[2 + N + i] = mask[2 + 2 * N + i] = False
                r = self._answer[i]
                if r >= 0:
                    self._votes[r] -= 1
        reward -= (ep.tokens - before) * self._gamma
        if not terminated:
            budget, cap = self.token_budget, self.max_steps
            truncated = ((budget is not None and ep.tokens >= budget)
                         or (cap is not None and self._steps >= cap))
        answer, correct = None, False
        if terminated or truncated:
            self._done = True
            answer = self.leader()
            correct = answer is not None and answer == self._problem.gold_answer
            reward += float(correct)
        return (self._obs(), float(reward), terminated, truncated,
                self._info(invalid, answer, correct))

    def _on_depth(self, i: int) -> None:
        """Update flags and masks of slot i after it gained depth."""
        ep, N, mask = self._episode(), self.N, self._mask
        fin = ep.finished[i]
        self._finished[i] = fin
        self._active[i] = 0 if fin else 1
        mask[2 + i] = not fin
        mask[2 + N + i] = True  # a new depth can be probed

    def _reveal(self, i: int, answer_id: int) -> None:
        rank = self._rank.get(answer_id)
        if rank is None:
            rank = self._rank[answer_id] = min(len(self._rank), self.N)
        old = self._answer[i]
        if old >= 0:
            self._votes[old] -= 1
        self._answer[i] = rank
        self._votes[rank] += 1

    # ------------------------------------------------------------------ the vote
    @property
    def n_opened(self) -> int:
        """Branches opened so far this episode (slots ``0..n_opened - 1``)."""
        return self._episode().n_open

    def slot_answers(self) -> list[str | None]:
        """The latest revealed answer of each opened slot (None where nothing was revealed),
        pruned slots included."""
        ep, vocab = self._episode(), self._problem.vocab
        return [vocab[a] if a >= 0 else None for a in ep.revealed]

    def ballot(self) -> list[str]:
        """What ANSWER votes over: the latest revealed answers of the unpruned slots, in slot
        order."""
        ep, vocab = self._episode(), self._problem.vocab
        return [vocab[a] for a, pruned in zip(ep.revealed, ep.pruned, strict=True)
                if a >= 0 and not pruned]

    def vote_counts(self) -> dict[str, int]:
        """Votes per answer on the :meth:`ballot`, in first-listed order."""
        return Tally(self.ballot()).counts

    def leader(self) -> str | None:
        """The answer ANSWER would give now: the env's ``aggregator`` over the ballot."""
        return self.aggregator(self.ballot())

    def _episode(self) -> Episode:
        if self._ep is None:
            raise RuntimeError("call reset() first")
        return self._ep

    def _info(self, invalid: bool, answer: str | None, correct: bool) -> dict[str, Any]:
        """The step's info: the same keys and types on every step (``answer`` is ``""``
        and ``answered`` False until the episode ends with an answer)."""
        ep = self._episode()
        depths = ep.depth
        return {
            "action_mask": self._mask.copy(), "invalid_action": bool(invalid),
            "answered": answer is not None, "correct": bool(correct),
            "answer": "" if answer is None else str(answer), "tokens": float(ep.tokens),
            "width": int(ep.n_open), "max_depth": int(max(depths, default=0)),
            "mean_depth": float(sum(depths) / len(depths)) if depths else 0.0,
            "problem": int(self._problem.index), "order_seed": int(self._order_seed),
            "beta": float(self._beta), "model": self._set.model,
            "benchmark": self._set.benchmark, "steps": int(self._steps),
        }

    def _obs(self) -> dict[str, np.ndarray]:
        ep = self._episode()
        budget = 1.0
        if self.token_budget:
            budget = max(0.0, 1.0 - ep.tokens / self.token_budget)
        return {
            "depth": self._depth.copy(),
            "active": self._active.copy(),
            "pruned": self._pruned.copy(),
            "finished": self._finished.copy(),
            "answer": self._answer.copy(),
            "votes": self._votes.copy(),
            "tokens": np.array([ep.tokens / self.token_scale], np.float32),
            "budget_left": np.array([budget], np.float32),
            "beta": np.array([self._beta], np.float32),
            "n_open": np.array([ep.n_open / self.N], np.float32),
        }

    # ------------------------------------------------------------------ rendering
    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass "
                            "render_mode='ansi' or 'rgb_array' to gym.make")
            return None
        from .render import render_ansi, render_rgb

        if self._ep is None:
            raise RuntimeError("call reset() before render()")
        view = {"depth": self._depth, "pruned": self._pruned, "finished": self._finished,
                "answer": self._answer, "votes": self._votes, "tokens": self._episode().tokens,
                "max_depth": self.max_depth, "beta": self._beta, "n_open": self._episode().n_open}
        if self.render_mode == "ansi":
            return render_ansi(**view)
        return render_rgb(**view)

