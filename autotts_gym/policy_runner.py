"""Running Gymnasium policies on harness episodes, many episodes at once.

Three runners give identical :class:`~autotts_gym.harness.EpisodeRecord` s (tested):

* ``"episode"``: one env, one episode and one forward pass at a time (the reference).
* ``"batched"``: a pool of env instances stepped together; one batched forward pass per
  step over the stacked observations and action masks. Any wrapper, any env settings.
* ``"vector"``: the round-level macro wrapper simulated for every episode of a unit at
  once on an :class:`~autotts_gym.core.EpisodeBatch` (numpy), with one batched forward
  pass per round. Used for :class:`~autotts_gym.wrappers.RoundMacroWrapper` policies on
  the default env settings; the others fall back to ``"batched"``.

``"auto"`` (the default) picks ``"vector"`` where it applies, else ``"batched"``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from .core import NO_ANSWER_ID as NO_ANSWER
from .core import EpisodeBatch
from .errors import AutoTTSError
from .store import ReplaySet, ReplayStore

if TYPE_CHECKING:
    from .harness import EpisodeRecord, GymPolicy

RUNNERS = ("auto", "vector", "batched", "episode")
BATCH = 512  # env instances stepped together by the "batched" runner


class PolicySpaceError(AutoTTSError, ValueError):
    """A policy whose observation or action space does not fit the env it is run on."""


# ----------------------------------------------------------------------------- helpers


def macro_rounds(wrapper: Callable | None) -> int | None:
    """``max_rounds`` if ``wrapper`` is the plain :class:`RoundMacroWrapper` (or a partial of
    it setting only ``max_rounds``), else None."""
    from .wrappers import RoundMacroWrapper

    if wrapper is RoundMacroWrapper:
        return 200
    if (isinstance(wrapper, functools.partial) and wrapper.func is RoundMacroWrapper
            and not wrapper.args and set(wrapper.keywords) <= {"max_rounds"}):
        return int(wrapper.keywords.get("max_rounds", 200))
    return None


def make_env(policy: GymPolicy, store: ReplayStore, rs: ReplaySet, beta: float,
             kappa_probe: float) -> gym.Env:
    """The (wrapped) AutoTTS-v0 env a policy acts on, checked against its spaces."""
    from .env import AutoTTSEnv

    env: gym.Env = AutoTTSEnv(store=store, model=rs.model, benchmark=rs.benchmark, beta=beta,
                              kappa_probe=kappa_probe, **policy.env_kwargs)
    if policy.wrapper is not None:
        env = policy.wrapper(env)
    check_spaces(policy, env)
    return env


def wrapper_name(policy: GymPolicy) -> str:
    w = policy.wrapper
    if w is None:
        return "atomic (no wrapper)"
    if isinstance(w, functools.partial):
        w = w.func
    return getattr(w, "__name__", type(w).__name__)


def check_spaces(policy: GymPolicy, env: gym.Env) -> None:
    """One-line error when the model's observation/action space differs from the env's."""
    model_obs = getattr(policy.policy, "observation_space", None)
    model_act = getattr(policy.policy, "action_space", None)
    if model_obs is not None and not _same_space(model_obs, env.observation_space):
        raise PolicySpaceError(
            f"policy {policy.name}: its observation space {_short(model_obs)} does not match "
            f"the {wrapper_name(policy)} env's {_short(env.observation_space)}; pick the "
            f"wrapper it was trained with (--wrapper macro|atomic) and its max_width")
    if model_act is not None and model_act != env.action_space:
        raise PolicySpaceError(
            f"policy {policy.name}: its action space {model_act} does not match the "
            f"{wrapper_name(policy)} env's {env.action_space}; pick the wrapper it was "
            f"trained with (--wrapper macro|atomic) and its max_width")


def _same_space(a: gym.Space, b: gym.Space) -> bool:
    if isinstance(a, gym.spaces.Dict) and isinstance(b, gym.spaces.Dict):
        return set(a.spaces) == set(b.spaces) and all(
            a[k].shape == b[k].shape for k in a.spaces)
    return type(a) is type(b) and a.shape == b.shape


def _short(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Dict):
        return "Dict(" + ", ".join(f"{k}{v.shape}" for k, v in space.spaces.items()) + ")"
    return f"{type(space).__name__}{space.shape}"


def _stack(obs: Sequence[Any]) -> Any:
    if isinstance(obs[0], dict):
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    return np.stack(obs)


def _one_torch_thread() -> None:
    """Harness workers are processes: torch's intra-op threads only oversubscribe them
    (a 3000 x 14 forward pass is 100x slower with 2 threads on a busy 2-core machine)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def act_batch(policy: GymPolicy, obs: Any, masks: np.ndarray) -> np.ndarray:
    """One batched forward pass: actions for stacked observations and masks."""
    _one_torch_thread()
    if policy._predict is None:  # a plain callable acts on one observation at a time
        n = masks.shape[0]
        rows = ([{k: v[i] for k, v in obs.items()} for i in range(n)]
                if isinstance(obs, dict) else list(obs))
        return np.array([int(policy.policy(o, m)) for o, m in zip(rows, masks, strict=True)])
    if policy._masked:
        action, _ = policy._predict(obs, action_masks=masks, deterministic=True)
    else:
        action, _ = policy._predict(obs, deterministic=True)
    return np.asarray(action).reshape(-1).astype(np.int64)


def _no_answer(policy: GymPolicy, rs: ReplaySet, problem: int, seed: int, max_steps: int):
    from .harness import HarnessError

    raise HarnessError(
        f"policy {policy.name} on model {rs.model}, benchmark {rs.benchmark}, problem "
        f"{problem}, seed {seed}: no ANSWER within {max_steps} steps")


def _answer(info: dict) -> str | None:
    return info["answer"] if info.get("answered", info["answer"] is not None) else None


def _record(rs, problem, seed, beta, method, answer, correct, tokens, steps) -> EpisodeRecord:
    from .harness import EpisodeRecord

    return EpisodeRecord(rs.model, rs.benchmark, problem, seed, beta, method, answer,
                         bool(correct), float(tokens), int(steps))


# ----------------------------------------------------------------------------- runners


def run_episodes(policy: GymPolicy, method: str, store: ReplayStore, rs: ReplaySet,
                 beta: float, seeds: Sequence[int], kappa_probe: float = 0.0,
                 max_steps: int = 100_000, runner: str | None = None) -> list[EpisodeRecord]:
    """Every (problem of ``rs``, seed) episode at ``beta``, by the policy's runner."""
    runner = runner or getattr(policy, "runner", "auto")
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
    if runner in ("auto", "vector"):
        rounds = macro_rounds(policy.wrapper)
        if (rounds is not None and not kappa_probe
                and set(policy.env_kwargs) <= {"max_width"}):
            return run_vector(policy, method, store, rs, beta, seeds, rounds, max_steps)
        runner = "batched"
    if runner == "batched":
        return run_batched(policy, method, store, rs, beta, seeds, kappa_probe, max_steps)
    return run_per_episode(policy, method, store, rs, beta, seeds, kappa_probe, max_steps)


def run_per_episode(policy, method, store, rs, beta, seeds, kappa_probe=0.0,
                    max_steps=100_000) -> list[EpisodeRecord]:
    """The reference: one env, one episode, one forward pass per step."""
    env = make_env(policy, store, rs, beta, kappa_probe)
    out = []
    for p in rs.problems:
        for seed in seeds:
            obs, info = env.reset(options={"problem": p.index, "order_seed": seed,
                                           "beta": beta})
            steps, done = 0, False
            while not done:
                if steps >= max_steps:
                    _no_answer(policy, rs, p.index, seed, max_steps)
                obs, _, term, trunc, info = env.step(policy.act(obs, info["action_mask"]))
                steps += 1
                done = term or trunc
            out.append(_record(rs, p.index, seed, beta, method, _answer(info),
                               info["correct"], info["tokens"], steps))
    env.close()
    return out


def run_batched(policy, method, store, rs, beta, seeds, kappa_probe=0.0, max_steps=100_000,
                batch: int = BATCH) -> list[EpisodeRecord]:
    """A pool of envs stepped together, one batched forward pass per step."""
    todo = [(p.index, int(s)) for p in rs.problems for s in seeds]
    todo.reverse()
    envs = [make_env(policy, store, rs, beta, kappa_probe)
            for _ in range(min(batch, len(todo)))]
    slots: list[dict] = []
    for env in envs:
        problem, seed = todo.pop()
        obs, info = env.reset(options={"problem": problem, "order_seed": seed, "beta": beta})
        slots.append({"env": env, "obs": obs, "mask": info["action_mask"], "steps": 0,
                      "problem": problem, "seed": seed})
    out = []
    while slots:
        for s in slots:
            if s["steps"] >= max_steps:
                _no_answer(policy, rs, s["problem"], s["seed"], max_steps)
        actions = act_batch(policy, _stack([s["obs"] for s in slots]),
                            np.stack([s["mask"] for s in slots]))
        keep = []
        for s, a in zip(slots, actions, strict=True):
            obs, _, term, trunc, info = s["env"].step(int(a))
            s["steps"] += 1
            if not (term or trunc):
                s["obs"], s["mask"] = obs, info["action_mask"]
                keep.append(s)
                continue
            out.append(_record(rs, s["problem"], s["seed"], beta, method, _answer(info),
                               info["correct"], info["tokens"], s["steps"]))
            if todo:
                problem, seed = todo.pop()
                obs, info = s["env"].reset(options={"problem": problem, "order_seed": seed,
                                                    "beta": beta})
                s.update(obs=obs, mask=info["action_mask"], steps=0, problem=problem,
                         seed=seed)
                keep.append(s)
            else:
                s["env"].close()
        slots = keep
    return out


def run_vector(policy, method, store, rs, beta, seeds, max_rounds=200, max_steps=100_000
               ) -> list[EpisodeRecord]:
    """Every episode of the unit as one :class:`MacroBatch`, one forward pass per round."""
    from .env import AutoTTSEnv

    env = make_env(policy, store, rs, beta, 0.0)  # checks the spaces; gives N, max_depth
    inner = env.unwrapped
    assert isinstance(inner, AutoTTSEnv)
    mb = MacroBatch(rs, seeds, beta, inner.N, inner.max_depth, max_rounds)
    env.close()
    live = np.ones(mb.E, dtype=bool)
    while live.any():
        rows = np.flatnonzero(live)
        if mb.rounds[rows[0]] >= max_steps:  # every live row has played as many rounds
            r = int(rows[0])
            _no_answer(policy, rs, rs.problems[r // len(seeds)].index, seeds[r % len(seeds)],
                       max_steps)
        actions = act_batch(policy, mb.features(rows), mb.action_masks(rows))
        done = mb.step(rows, actions)
        live[rows[done]] = False
    out = []
    for r in range(mb.E):
        p = rs.problems[r // len(seeds)]
        a = int(mb.final[r])
        answer = p.vocab[a] if a >= 0 else None
        out.append(_record(rs, p.index, int(seeds[r % len(seeds)]), beta, method, answer,
                           answer is not None and answer == p.gold_answer,
                           mb.eb.tokens[r], mb.rounds[r]))
    return out


class MacroBatch:
    """:class:`~autotts_gym.wrappers.RoundMacroWrapper` over AutoTTS-v0 for many episodes.

    Rows are ``problem * len(seeds) + seed``. Replay rules come from
    :class:`~autotts_gym.core.EpisodeBatch`; this class keeps what the env shows a policy
    (answer ranks in first-seen order, votes) and plays the six macro actions. Default env
    settings only (no probe cost, budget or step cap); the runner tests check every record
    against the wrapper.
    """

    def __init__(self, rs: ReplaySet, seeds: Sequence[int], beta: float, N: int,
                 max_depth: int, max_rounds: int):
        from .voting import confidence_table

        self.eb = eb = EpisodeBatch.from_seeds(rs.problems, list(seeds))
        self.E, self.N, self.beta = eb.n_rows, N, float(beta)
        self.max_depth, self.max_rounds = max_depth, max_rounds
        self.n_ids = max(len(p.vocab) for p in rs.problems) + 1  # id -1 -> column 0
        self.rank_of = np.full((self.E, self.n_ids), -1, dtype=np.int64)
        self.n_ranks = np.zeros(self.E, dtype=np.int64)
        self.answer = np.full((self.E, N), -1, dtype=np.int64)
        self.votes = np.zeros((self.E, N + 1), dtype=np.float32)
        self.rounds = np.zeros(self.E, dtype=np.int64)
        self.final = np.full(self.E, NO_ANSWER, dtype=np.int64)
        self.conf = confidence_table(N)
        self._rows = np.arange(self.E)

    # -- state views, (R, N) over the first N slots of ``rows``
    def _view(self, rows):
        eb, N = self.eb, self.N
        opened = np.arange(N)[None, :] < eb.n_open[rows, None]
        fin = eb.finished[rows, :N] & opened
        pruned = eb.pruned[rows, :N]
        active = opened & ~pruned & ~fin
        return opened, fin, pruned, active

    def _can_branch(self, rows):
        return (self.eb.n_open[rows] < self.N) & self.eb.can_branch()[rows]

    def _leader(self, rows) -> np.ndarray:
        """The answer id ANSWER would give now (the env's ``leader``: majority over the
        unpruned revealed answers in slot order, first listed on ties; -1 for none)."""
        from .voting import batch_majority

        opened, _, pruned, _ = self._view(rows)
        ids = self.eb.revealed[rows, :self.N]
        ids = np.where(opened & ~pruned & (ids >= 0), ids, -1)
        return batch_majority(ids, self.n_ids)[0]

    def _dissenters(self, rows) -> np.ndarray:
        """Active slots whose latest answer is not the leader (keeping one active)."""
        _, _, _, active = self._view(rows)
        lead = self._leader(rows)
        ok = (active.sum(1) >= 2) & (lead >= 0)
        diss = active & (self.eb.revealed[rows, :self.N] != lead[:, None]) & ok[:, None]
        all_d = diss.sum(1) >= active.sum(1)
        first = np.argmax(diss, axis=1)
        sel = all_d & ok
        diss[np.flatnonzero(sel), first[sel]] = False
        return diss

    def action_masks(self, rows) -> np.ndarray:
        _, _, _, active = self._view(rows)
        m = np.zeros((len(rows), 6), dtype=bool)
        m[:, 0] = True
        m[:, 1] = m[:, 2] = self._can_branch(rows)
        m[:, 3] = m[:, 4] = active.any(1)
        m[:, 5] = self._dissenters(rows).any(1)
        return m

    def features(self, rows) -> np.ndarray:
        eb, N = self.eb, self.N
        opened, fin, pruned, active = self._view(rows)
        R = len(rows)
        n_open = eb.n_open[rows]
        votes = -np.sort(-self.votes[rows], axis=1)
        n_votes = np.maximum(np.float32(1.0), votes.sum(1, dtype=np.float32))
        fmask = fin & ~pruned & (self.answer[rows] >= 0)
        nf = fmask.sum(1)
        counts = np.zeros((R, N + 2), dtype=np.int64)
        rr, ss = np.nonzero(fmask)
        np.add.at(counts, (rr, self.answer[rows][rr, ss]), 1)
        counts = -np.sort(-counts, axis=1)
        fin_top = np.where(nf > 0, counts[:, 0] / np.maximum(nf, 1), 0.0)
        fin_conf = np.where(nf > 0, self.conf[counts[:, 0], counts[:, 1]], 0.0)
        v0, v1 = votes[:, 0].astype(np.int64), votes[:, 1].astype(np.int64)
        tokens = (eb.tokens[rows] / 1e6).astype(np.float32).astype(np.float64)
        depth_sum = np.where(opened, eb.depth[rows, :N], 0).sum(1)
        mean_depth = (depth_sum / np.maximum(n_open, 1)).astype(np.float32).astype(np.float64)
        f = np.stack([
            n_open / N, active.sum(1) / N, fin.sum(1) / N,
            (votes[:, 0] / n_votes).astype(np.float64),
            (votes[:, 1] / n_votes).astype(np.float64),
            (self.votes[rows] > 0).sum(1) / N,
            fin_top, fin_conf, self.conf[v0, v1],
            np.minimum(1.0, tokens),
            np.where(n_open > 0, mean_depth / self.max_depth, 0.0),
            np.full(R, float(np.float32(self.beta))), np.ones(R),
            np.minimum(1.0, self.rounds[rows] / self.max_rounds),
        ], axis=1).astype(np.float32)
        return np.clip(f, 0.0, 1.0)

    # -- reveals and votes
    def _reveal(self, r: np.ndarray, s: np.ndarray, ids: np.ndarray) -> None:
        """Slot ``s`` of row ``r`` shows answer ``ids``; reveals within a row in ``s`` order."""
        order = np.lexsort((s, r))
        r, s, ids = r[order], s[order], ids[order] + 1
        # k-th reveal of its row, so rows never collide within one pass
        start = np.r_[0, np.flatnonzero(np.diff(r)) + 1]
        k = np.arange(len(r)) - np.repeat(start, np.diff(np.r_[start, len(r)]))
        for j in range(int(k.max()) + 1 if len(r) else 0):
            sel = k == j
            rj, sj, aj = r[sel], s[sel], ids[sel]
            rank = self.rank_of[rj, aj]
            new = rank < 0
            rank[new] = np.minimum(self.n_ranks[rj[new]], self.N)
            self.rank_of[rj[new], aj[new]] = rank[new]
            self.n_ranks[rj[new]] += 1
            old = self.answer[rj, sj]
            had = old >= 0
            self.votes[rj[had], old[had]] -= 1
            self.answer[rj, sj] = rank
            self.votes[rj, rank] += 1

    # -- one round
    def step(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Play one macro action per row; returns which rows ended."""
        eb, N = self.eb, self.N
        E = self.E
        mask = self.action_masks(rows)
        a = np.asarray(actions, dtype=np.int64)
        valid = (a >= 0) & (a < 6)
        valid[valid] = mask[np.flatnonzero(valid), a[valid]]
        self.rounds[rows] += 1
        answer = valid & (a == 0)
        for k, act in ((1, 1), (4, 2)):  # widen
            sel = rows[valid & (a == act)]
            for _ in range(k):
                go = sel[self._can_branch(sel)]
                if not len(go):
                    break
                rmask = np.zeros(E, dtype=bool)
                rmask[go] = True
                _, slot, ids, _ = eb.open(rmask)
                self._reveal(go, slot[go], ids[go].astype(np.int64))
        for k, act in ((1, 3), (4, 4)):  # deepen every active slot, then probe it
            sel = rows[valid & (a == act)]
            if not len(sel):
                continue
            _, _, _, active = self._view(sel)
            for _ in range(k):
                go = active & ~eb.finished[sel, :N]
                if not go.any():
                    break
                eb.advance(go, probe=False, rows=sel)
            full = np.zeros((len(sel), eb.n_slots), dtype=bool)
            full[:, :N] = active
            big = np.zeros((E, eb.n_slots), dtype=bool)
            big[sel] = full
            got = eb.probe(big)
            rr, ss = np.nonzero(big)
            self._reveal(rr, ss, got[rr, ss].astype(np.int64))
        sel = rows[valid & (a == 5)]  # prune the dissenters
        if len(sel):
            diss = self._dissenters(sel)
            rr, ss = np.nonzero(diss)
            r = sel[rr]
            eb.pruned[r, ss] = True
            old = self.answer[r, ss]
            had = old >= 0
            np.subtract.at(self.votes, (r[had], old[had]), 1)
        done = answer | (self.rounds[rows] >= self.max_rounds)
        end = rows[done]
        if len(end):
            self._answer(end)
        return done

    def _answer(self, rows: np.ndarray) -> None:
        """The env's ANSWER: its leader (majority over unpruned revealed answers)."""
        self.final[rows] = self._leader(rows)
