"""Offline RL: controller rollouts as a Minari dataset (write, load, recover the env,
replay an episode) and a behaviour-cloning warm start from it."""

from __future__ import annotations

import numpy as np
import pytest

minari = pytest.importorskip("minari", reason="Minari is not installed (extra 'offline')")
pytest.importorskip("jax", reason="Minari's DataCollector needs jax (minari[create])")

from autotts_gym.harness import evaluate  # noqa: E402 (after the importorskip checks)
from autotts_rl.offline import RolloutSpec, write_rollouts  # noqa: E402


@pytest.fixture()
def minari_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_minari_round_trip(minari_dir, synthetic_store, synthetic_store_dir):
    spec = RolloutSpec("cmc", ["Qwen3-4B"], ["aime24"], seeds=[0, 1], betas=[0.5])
    write_rollouts(spec, "autotts/cmc-test-v0", str(synthetic_store_dir))
    assert any(minari_dir.rglob("*"))
    ds = minari.load_dataset("autotts/cmc-test-v0")
    assert ds.total_episodes == 60
    # the env charged what the controller's session charged, episode by episode
    ref = evaluate("cmc", synthetic_store, models="Qwen3-4B", benchmarks="aime24",
                   seeds=[0, 1], betas=(0.5,), workers=1, progress=False).records
    ref_tokens = {(r.problem, r.seed): r.tokens for r in ref}
    episodes = list(ds.iterate_episodes())
    for ep in episodes:
        infos = ep.infos
        key = (int(infos["problem"][-1]), int(infos["order_seed"][-1]))
        assert infos["tokens"][-1] == ref_tokens[key]
        assert bool(infos["answered"][-1]) and ep.terminations[-1]
        # every step (and the reset) recorded the same keys
        assert {"action_mask", "answered", "answer", "tokens", "steps"} <= set(infos)
        assert all(len(v) == len(ep.actions) + 1 for v in infos.values())
    # the recovered env replays an episode exactly
    env = ds.recover_environment()
    ep = episodes[7]
    opts = {"problem": int(ep.infos["problem"][0]), "order_seed": int(ep.infos["order_seed"][0]),
            "beta": float(ep.infos["beta"][0]), "model": str(ep.infos["model"][0], "utf-8")
            if isinstance(ep.infos["model"][0], bytes) else str(ep.infos["model"][0]),
            "benchmark": "aime24"}
    obs, _ = env.reset(options=opts)
    assert np.array_equal(obs["depth"], ep.observations["depth"][0])
    rewards = []
    for t, a in enumerate(ep.actions):
        obs, r, term, _, _ = env.step(int(a))
        rewards.append(r)
        assert np.array_equal(obs["votes"], ep.observations["votes"][t + 1])
    assert term and np.allclose(rewards, ep.rewards)
    env.close()


def test_behaviour_cloning_warm_start(minari_dir, synthetic_store_dir):
    """BC on CMC rollouts makes an atomic policy agree with CMC's actions far more than
    an untrained one; a macro run refuses the atomic dataset with one line."""
    from sb3_contrib import MaskablePPO

    from autotts_gym.errors import UsageError
    from autotts_rl.bc import behaviour_clone
    from autotts_rl.train import TrainConfig, make_env

    write_rollouts(RolloutSpec("cmc", ["Qwen3-0.6B"], ["aime24"], seeds=[0], betas=[0.5],
                               max_width=64), "autotts/cmc-bc-v0", str(synthetic_store_dir))
    cfg = TrainConfig(env="atomic", replay_dir=str(synthetic_store_dir), models=["Qwen3-0.6B"])
    env = make_env(cfg, str(synthetic_store_dir))
    model = MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=32, seed=0,
                        policy_kwargs={"net_arch": [32]}, device="cpu")
    before = behaviour_clone(model, "autotts/cmc-bc-v0", cfg, epochs=0)["agreement"]
    after = behaviour_clone(model, "autotts/cmc-bc-v0", cfg, epochs=3)["agreement"]
    assert after > before + 0.3, (before, after)
    macro = MaskablePPO("MlpPolicy", make_env(TrainConfig(replay_dir=str(synthetic_store_dir)),
                                              str(synthetic_store_dir)), n_steps=32,
                        batch_size=32, device="cpu")
    with pytest.raises(UsageError, match="do not fit the 'macro' env"):
        behaviour_clone(macro, "autotts/cmc-bc-v0", TrainConfig(env="macro"), epochs=1)
