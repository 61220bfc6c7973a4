"""Atomic steps per second of one AutoTTS-v0 env under a random masked policy (real data).

    python benchmarks/bench_env.py [--steps 300000]

Reports the raw env, the env through ``gym.make`` (with its wrappers), and the policy
overhead measured alone, all on one core.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

from autotts_gym.actions import ANSWER
from autotts_gym.env import AutoTTSEnv
from common import real_store_dir


def run(env, steps: int, seed: int = 0) -> tuple[float, int]:
    rng = np.random.default_rng(seed)
    # pre-drawn random numbers keep the policy's own cost small and constant
    u = rng.random(steps)
    obs, info = env.reset(seed=seed)
    episodes = 0
    t0 = time.perf_counter()
    for k in range(steps):
        mask = info["action_mask"]
        if u[k] < 0.002:
            a = ANSWER
        else:
            valid = np.flatnonzero(mask[1:]) + 1  # ANSWER only with probability 0.002
            a = int(valid[int(u[k] * 1e6) % len(valid)]) if len(valid) else ANSWER
        obs, r, term, trunc, info = env.step(a)
        if term or trunc:
            episodes += 1
            obs, info = env.reset()
    return steps / (time.perf_counter() - t0), episodes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300_000)
    args = ap.parse_args()
    store = real_store_dir()
    raw = AutoTTSEnv(replay_dir=str(store))
    sps, eps = run(raw, args.steps)
    print(f"raw env:       {sps:10,.0f} steps/s  ({eps} episodes, all 9 sets, N=64)")
    made = gym.make("autotts_gym:AutoTTS-v0", replay_dir=str(store))
    sps2, _ = run(made, args.steps)
    print(f"via gym.make:  {sps2:10,.0f} steps/s")
    mask = raw.action_masks()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        np.flatnonzero(mask)
    print(f"policy alone:  {args.steps / (time.perf_counter() - t0):10,.0f} calls/s "
          "(np.flatnonzero of the mask)")


if __name__ == "__main__":
    main()
