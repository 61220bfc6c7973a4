"""Atomic steps per second of one AutoTTS-v0 env under a random masked policy (real data).

    python benchmarks/bench_env.py [--steps 300000]

Reports the raw env, the env through ``gym.make`` (with its wrappers), and the policy
overhead measured alone, all on one core.
"""

from __future__ import annotations

import argparse
import shutil
import time

import gymnasium as gym
import numpy as np
from common import real_store_dir

from autotts_gym.actions import ANSWER
from autotts_gym.env import AutoTTSEnv


def run(env, steps: int, seed: int = 0, masks_method: bool = False) -> tuple[float, int]:
    """Steps/s of a random masked policy; ``masks_method`` reads the mask through
    ``env.unwrapped.action_masks()`` (as MaskablePPO does) instead of ``info``."""
    rng = np.random.default_rng(seed)
    # pre-drawn random numbers keep the policy's own cost small and constant
    u = rng.random(steps)
    _, info = env.reset(seed=seed)
    episodes = 0
    t0 = time.perf_counter()
    for k in range(steps):
        mask = env.unwrapped.action_masks() if masks_method else info["action_mask"]
        if u[k] < 0.002:
            a = ANSWER
        else:
            valid = np.flatnonzero(mask[1:]) + 1  # ANSWER only with probability 0.002
            a = int(valid[int(u[k] * 1e6) % len(valid)]) if len(valid) else ANSWER
        _, _, term, trunc, info = env.step(a)
        if term or trunc:
            episodes += 1
            _, info = env.reset()
    return steps / (time.perf_counter() - t0), episodes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300_000)
    args = ap.parse_args()
    store = real_store_dir()
    try:
        _bench(store, args.steps)
    finally:
        shutil.rmtree(store, ignore_errors=True)


def _bench(store, steps: int) -> None:
    raw = AutoTTSEnv(replay_dir=str(store))
    sps, eps = run(raw, steps)
    print(f"raw env:       {sps:10,.0f} steps/s  ({eps} episodes, all 9 sets, N=64)")
    sps, _ = run(raw, steps, masks_method=True)
    print(f"raw env:       {sps:10,.0f} steps/s  (mask via action_masks(), as MaskablePPO)")
    sps, eps = run(AutoTTSEnv(replay_dir=str(store), max_width=16), steps)
    print(f"raw env:       {sps:10,.0f} steps/s  ({eps} episodes, all 9 sets, N=16)")
    made = gym.make("autotts_gym:AutoTTS-v0", replay_dir=str(store))
    sps2, _ = run(made, steps)
    print(f"via gym.make:  {sps2:10,.0f} steps/s  (N=64, with its wrappers)")
    mask = raw.action_masks()
    t0 = time.perf_counter()
    for _ in range(steps):
        np.flatnonzero(mask)
    print(f"policy alone:  {steps / (time.perf_counter() - t0):10,.0f} calls/s "
          "(np.flatnonzero of the mask)")


if __name__ == "__main__":
    main()
