"""Policy evaluation speed: the vector and batched runners against the per-episode one.

    python benchmarks/bench_policy.py [--seeds 10] [--model Qwen3-4B] [--benchmark aime25]

Plays the bundled macro policy on one replay set at betas 0.5 and 1 with each runner
(identical records, checked here too), in one process with one torch thread, and prints
episodes per CPU-second and the ratio to the per-episode path. Uses the real data
(``../shared`` or ``$AUTOTTS_SHARED``), else the bundled synthetic store.
"""

from __future__ import annotations

import argparse
import time
from importlib import resources

from autotts_gym.data import bundled_store_dir, open_store
from autotts_gym.harness import evaluate
from autotts_rl.train import load_policy

try:
    from common import SHARED, real_store_dir
except ImportError:  # run from another folder
    SHARED, real_store_dir = None, None

ap = argparse.ArgumentParser()
ap.add_argument("--seeds", type=int, default=10)
ap.add_argument("--model", default="Qwen3-4B")
ap.add_argument("--benchmark", default="aime25")
args = ap.parse_args()

if SHARED is not None and (SHARED / "replay" / "autotts").is_dir():
    store = open_store(str(real_store_dir()))
else:
    store = open_store(str(bundled_store_dir()))
print(f"data: {'synthetic' if store.synthetic else 'real'} ({store.root})")
policy = load_policy(f"rl:{resources.files('autotts_rl.pretrained').joinpath('policy.zip')}")
times, records = {}, {}
for runner in ("vector", "batched", "episode"):
    policy.runner = runner
    t0 = time.process_time()
    res = evaluate(policy, store, models=args.model, benchmarks=args.benchmark,
                   seeds=range(args.seeds), betas=(0.5, 1.0), workers=1, progress=False)
    times[runner] = time.process_time() - t0
    records[runner] = res.records
n = len(records["episode"])
steps = sum(r.steps for r in records["episode"])
print(f"{n} episodes, {steps:,} macro steps ({args.model}/{args.benchmark}, "
      f"{args.seeds} seeds, betas 0.5 and 1)")
for runner, t in times.items():
    same = records[runner] == records["episode"]
    print(f"{runner:>8}: {t:7.2f} CPU s, {n / t:8.1f} episodes/s, "
          f"{times['episode'] / t:6.1f}x the per-episode path, records identical: {same}")
