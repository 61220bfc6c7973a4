"""Ray RLlib smoke test: register the env, train PPO with action masking across two env
runners for one iteration, evaluate the module through the project's harness."""

from __future__ import annotations

import os

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (extra 'ray')")
pytest.importorskip("ray.rllib", reason="RLlib is not installed (extra 'ray')")


@pytest.fixture(scope="module")
def ray_session():
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "120")
    try:
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                     [os.getcwd(), os.environ.get("PYTHONPATH", "")])}})
    except Exception as e:  # noqa: BLE001 -- a machine where a local Ray node cannot start
        pytest.skip(f"a local Ray node did not start: {type(e).__name__}: {e}")
    yield
    ray.shutdown()


def test_rllib_ppo_with_masks_through_the_harness(ray_session, synthetic_store,
                                                   synthetic_store_dir):
    from autotts_gym.harness import evaluate
    from autotts_rl.rllib import MaskedObs, env_creator, harness_policy, ppo_config, register

    env = env_creator({"replay_dir": str(synthetic_store_dir), "max_width": 16})
    assert isinstance(env, MaskedObs)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs) and obs["action_mask"][0] == 1.0
    env.close()
    name = register()
    algo = ppo_config({"replay_dir": str(synthetic_store_dir), "model": "Qwen3-4B",
                       "max_width": 16, "max_rounds": 20}, num_env_runners=2,
                      train_batch_size=128, minibatch_size=64, num_epochs=1).build_algo()
    try:
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 128
        policy = harness_policy(algo)
        policy.env_kwargs = {"max_width": 16}
        res = evaluate(policy, synthetic_store, models="Qwen3-4B", benchmarks="aime25",
                       seeds=[0, 1], betas=(0.5,), workers=1, progress=False)
        assert len(res.records) == 60 and all(r.steps >= 1 for r in res.records)
        assert np.isfinite([r.tokens for r in res.records]).all()
    finally:
        algo.stop()
    assert name
