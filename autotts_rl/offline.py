"""Offline RL data: controller rollouts in AutoTTS-v0 as a Minari dataset.

A controller (SC@64, CMC, a file, ...) plays an episode through a
:class:`~autotts_gym.session.Session`; its calls are then replayed as the env's atomic
actions (open = BRANCH + PROBE, advance = CONTINUE + PROBE, read = BRANCH + CONTINUE... +
PROBE, probe, prune; ANSWER at the end) inside ``minari.DataCollector(record_infos=True)``.
Calls the env would mask (advancing a finished branch, probing a depth already probed)
change nothing in the session either and are skipped, so the env charges the same tokens.
The env answers by its own majority vote, which is what the dataset's rewards score.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autotts_gym.actions import ANSWER, BRANCH, encode
from autotts_gym.errors import AutoTTSError, UsageError


class OfflineError(AutoTTSError):
    """A dataset that cannot be written or used."""


def _minari():
    try:
        import minari
    except ImportError:
        raise OfflineError("Minari is not installed: pip install 'autotts-gym[offline]'"
                           ) from None
    return minari


def session_actions(trace, env) -> list[int]:
    """Atomic env actions replaying a session trace on ``env`` (already reset), stepping it."""
    inner = env.unwrapped
    N = inner.N
    actions: list[int] = []

    def do(a: int) -> bool:
        if not inner.action_masks()[a]:
            return False
        actions.append(a)
        env.step(a)
        return True

    for ev in trace:
        call, slot = ev.call, ev.branch
        if slot >= N:
            raise OfflineError(f"the controller used branch {slot}, beyond the env's "
                               f"max_width {N}")
        if call == "open":
            do(BRANCH)
            do(encode("probe", slot, N))
        elif call == "advance":
            do(encode("continue", slot, N))
            do(encode("probe", slot, N))
        elif call == "read":
            do(BRANCH)
            while do(encode("continue", slot, N)):
                pass
            do(encode("probe", slot, N))
        elif call == "probe":
            do(encode("probe", slot, N))
        elif call == "prune":
            do(encode("prune", slot, N))
    return actions


@dataclass(frozen=True)
class RolloutSpec:
    controller: str
    models: Sequence[str] | None
    benchmarks: Sequence[str]
    seeds: Sequence[int]
    betas: Sequence[float]
    max_width: int = 64


def write_rollouts(spec: RolloutSpec, dataset_id: str, replay_dir: str | None = None,
                   overwrite: bool = False):
    """Record every (set, problem, seed, beta) episode of ``spec``; returns the dataset."""
    import gymnasium as gym

    from autotts_gym.controllers import instantiate, load_controller
    from autotts_gym.core import Episode
    from autotts_gym.data import open_store
    from autotts_gym.session import Session

    minari = _minari()
    if dataset_id in minari.list_local_datasets():
        if not overwrite:
            raise UsageError(f"--dataset-id {dataset_id}: a local dataset with this id exists "
                             f"(pass --overwrite to replace it)")
        minari.delete_dataset(dataset_id)
    store = open_store(replay_dir)
    sets = store.select(spec.models, spec.benchmarks)
    if not sets:
        raise UsageError(f"no replay sets for models {spec.models}, benchmarks "
                         f"{list(spec.benchmarks)}")
    ctl_spec = load_controller(spec.controller)
    env = gym.make("autotts_gym:AutoTTS-v0", replay_dir=str(store.root),
                   model=sorted({rs.model for rs in sets}),
                   benchmark=sorted({rs.benchmark for rs in sets}),
                   max_width=spec.max_width)
    env = minari.DataCollector(env, record_infos=True)
    episodes = 0
    for beta in spec.betas:
        ctl = instantiate(ctl_spec, float(beta))
        for rs in sets:
            for p in rs.problems:
                for seed in spec.seeds:
                    ep = Episode.from_seed(p, int(seed))
                    session = Session(ep, float(beta), record_trace=True)
                    ctl.solve(session)
                    env.reset(seed=episodes, options={
                        "problem": p.index, "order_seed": int(seed), "beta": float(beta),
                        "model": rs.model, "benchmark": rs.benchmark})
                    session_actions(session.trace, env)
                    env.step(ANSWER)
                    episodes += 1
    with warnings.catch_warnings():  # "eval_env is None": the recording env serves
        warnings.simplefilter("ignore", UserWarning)
        ds = _create(env, dataset_id, ctl_spec, spec, sets, store)
    env.close()
    return ds


def _create(env, dataset_id, ctl_spec, spec, sets, store):
    return env.create_dataset(
        dataset_id=dataset_id, algorithm_name=f"controller:{ctl_spec.name}",
        description=(f"{ctl_spec.name} rollouts in AutoTTS-v0 (max_width {spec.max_width}); "
                     f"models {sorted({rs.model for rs in sets})}, benchmarks "
                     f"{sorted({rs.benchmark for rs in sets})}, seeds {list(spec.seeds)}, "
                     f"betas {list(spec.betas)}; data {store.root}"),
        author="autotts-gym")


def dataset_arrays(dataset_id: str):
    """``(observations, actions, masks)`` of every step of a Minari dataset (episodes
    concatenated; the last observation of each episode dropped)."""
    minari = _minari()
    try:
        ds = minari.load_dataset(dataset_id)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(f"--bc {dataset_id}: no such local Minari dataset ({e})") from None
    obs, acts, masks = [], [], []
    for ep in ds.iterate_episodes():
        o = ep.observations
        n = len(ep.actions)
        obs.append({k: np.asarray(v[:n]) for k, v in o.items()} if isinstance(o, dict)
                   else np.asarray(o[:n]))
        acts.append(np.asarray(ep.actions))
        masks.append(np.asarray(ep.infos["action_mask"][:n]))
    if not acts:
        raise UsageError(f"--bc {dataset_id}: the dataset holds no episodes")
    if isinstance(obs[0], dict):
        stacked = {k: np.concatenate([o[k] for o in obs]) for k in obs[0]}
    else:
        stacked = np.concatenate(obs)
    return stacked, np.concatenate(acts), np.concatenate(masks), ds
