"""PPO with action masking on Ray RLlib across env runners, scored by the project's harness.

    pip install 'autotts-gym[ray]'
    python examples/rllib_ppo.py [--replay-dir DIR] [--iterations 20] [--env-runners 2]

Trains on the search set (aime24) with beta drawn per episode, then evaluates the module on
the held-out benchmarks with ``autotts_gym.harness.evaluate`` beside SC@64, exactly like a
stable-baselines3 policy.
"""

import argparse

import ray

from autotts_gym.data import open_store
from autotts_gym.harness import evaluate
from autotts_rl.rllib import harness_policy, ppo_config, register

ap = argparse.ArgumentParser()
ap.add_argument("--replay-dir", default=None)
ap.add_argument("--iterations", type=int, default=20)
ap.add_argument("--env-runners", type=int, default=2)
ap.add_argument("--seeds", type=int, default=10)
args = ap.parse_args()

store = open_store(args.replay_dir)
ray.init(num_cpus=args.env_runners + 1, include_dashboard=False, log_to_driver=False)
register()  # ray.tune.registry.register_env under autotts_rl.rllib.ENV_NAME
algo = ppo_config({"replay_dir": str(store.root), "benchmark": "aime24",
                   "beta": [0.0, 1.0]}, num_env_runners=args.env_runners).build_algo()
for i in range(args.iterations):
    result = algo.train()
    ret = result["env_runners"].get("episode_return_mean")
    print(f"iteration {i + 1}: mean return {ret}")
policy = harness_policy(algo)
for method in (policy, "sc64"):
    res = evaluate(method, store, benchmarks=["aime25", "hmmt25"], seeds=range(args.seeds),
                   betas=(0.5,), progress=False)
    acc = sum(r.correct for r in res.records) / len(res.records)
    tok = sum(r.tokens for r in res.records) / len(res.records)
    print(f"{res.records[0].method}: accuracy {100 * acc:.1f}%, mean tokens {tok:,.0f}")
algo.stop()
ray.shutdown()
