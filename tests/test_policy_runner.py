"""Batched policy evaluation: every runner gives the per-episode runner's records; policies
travel (plain SB3 zips, wrapper inference, space errors, AutoTTSMacro-v0)."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from autotts_gym.harness import GymPolicy, evaluate
from autotts_gym.policy_runner import PolicySpaceError
from autotts_gym.wrappers import RoundMacroWrapper
from autotts_rl.train import load_policy

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = resources.files("autotts_rl.pretrained").joinpath("policy.zip")


def _records(policy, store, runner, **kw):
    policy.runner = runner
    res = evaluate(policy, store, workers=1, progress=False, **kw)
    return res.records


@pytest.mark.parametrize("max_rounds", [200, 7])
def test_macro_runners_equal_per_episode(synthetic_store, max_rounds):
    """The bundled macro policy: vector and batched records equal the per-episode ones,
    field by field, at several betas (max_rounds 7 also exercises truncation)."""
    policy = load_policy(f"rl:{PRETRAINED}")
    policy.wrapper = functools.partial(RoundMacroWrapper, max_rounds=max_rounds)
    kw = dict(models=["Qwen3-4B", "Qwen3-0.6B"], benchmarks="aime25", seeds=range(3),
              betas=(0.0, 0.6, 1.0))
    ref = _records(policy, synthetic_store, "episode", **kw)
    assert len(ref) == 2 * 30 * 3 * 3
    assert len({r.steps for r in ref}) > 3 and any(r.answer is not None for r in ref)
    for runner in ("vector", "batched"):
        got = _records(policy, synthetic_store, runner, **kw)
        assert got == ref, runner


def test_vector_runner_every_macro_action(synthetic_store):
    """A policy cycling through every macro action (prune included), deterministic in the
    observation, on narrow and full widths: vector == per-episode."""
    from autotts_gym.wrappers import FEATURES

    class Cycle:
        observation_space = gym.spaces.Box(0.0, 1.0, (len(FEATURES),), np.float32)
        action_space = gym.spaces.Discrete(6)

        def predict(self, obs, state=None, episode_start=None, deterministic=True,
                    action_masks=None):
            obs = np.atleast_2d(obs)
            masks = np.atleast_2d(action_masks)
            key = (obs[:, -1] * 1000 + obs[:, 0] * 97 + obs[:, 3] * 13).astype(np.int64)
            pref = np.stack([(key + k) % 6 for k in range(6)], axis=1)
            pref[:, 0] = np.where(obs[:, -1] > 0.1, 0, pref[:, 0])
            pick = np.array([p[m[p]][0] if m[p].any() else 0
                             for p, m in zip(pref, masks, strict=True)])
            return pick, state

    for width in (8, 64):
        policy = GymPolicy(Cycle(), "cycle", env_kwargs={"max_width": width},
                           wrapper=functools.partial(RoundMacroWrapper, max_rounds=60))
        kw = dict(models="Qwen3-1.7B", benchmarks=["aime24", "hmmt25"], seeds=range(4),
                  betas=(0.3,))
        ref = _records(policy, synthetic_store, "episode", **kw)
        assert _records(policy, synthetic_store, "vector", **kw) == ref


def test_atomic_batched_equals_per_episode(synthetic_store):
    """An (untrained) atomic MaskablePPO with the slot extractor and a plain callable:
    batched records equal per-episode ones."""
    from sb3_contrib import MaskablePPO

    from autotts_gym.env import AutoTTSEnv
    from autotts_rl.features import SlotSetExtractor

    env = AutoTTSEnv(store=synthetic_store, benchmark="aime24", max_width=8)
    model = MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=32, seed=3,
                        policy_kwargs={"features_extractor_class": SlotSetExtractor,
                                       "net_arch": [16]})
    kw = dict(models="Qwen3-0.6B", benchmarks="aime25", seeds=range(2), betas=(0.5,),
              max_steps=400)
    for pol in (GymPolicy(model, "atomic", env_kwargs={"max_width": 8}, wrapper=None),
                GymPolicy(lambda obs, mask: int(np.flatnonzero(mask)[-1])
                          if obs["n_open"][0] < 0.5 else 0, "callable",
                          env_kwargs={"max_width": 8}, wrapper=None)):
        ref = _records(pol, synthetic_store, "episode", **kw)
        assert len(ref) == 60 and any(r.steps > 1 for r in ref)
        assert _records(pol, synthetic_store, "batched", **kw) == ref
        assert _records(pol, synthetic_store, "auto", **kw) == ref  # falls back: atomic


def test_harness_evaluates_a_raw_macro_model(synthetic_store):
    """``evaluate(model)`` on a bare macro MaskablePPO picks the macro wrapper itself."""
    from sb3_contrib import MaskablePPO

    model = MaskablePPO.load(str(PRETRAINED), device="cpu")
    res = evaluate(model, synthetic_store, models="Qwen3-4B", benchmarks="aime25",
                   seeds=[0], betas=(1.0,), workers=1, progress=False)
    assert len(res.records) == 30 and all(r.steps >= 1 for r in res.records)


def test_space_mismatch_names_the_wrapper(synthetic_store):
    from sb3_contrib import MaskablePPO

    model = MaskablePPO.load(str(PRETRAINED), device="cpu")
    pol = GymPolicy(model, "macro-model", wrapper=None)  # forced onto the atomic env
    with pytest.raises(PolicySpaceError, match=r"atomic \(no wrapper\).*--wrapper"):
        evaluate(pol, synthetic_store, models="Qwen3-4B", benchmarks="aime25", seeds=[0],
                 workers=1, progress=False)


def test_macro_env_is_registered():
    env = gym.make("autotts_gym:AutoTTSMacro-v0", max_width=16)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.get_wrapper_attr("action_masks")().tolist() == info["action_mask"].tolist()
    assert env.unwrapped.sets[0].benchmark == "aime24"  # the search set by default
    env.close()


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "autotts_cli", *args], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=600)


def test_plain_sb3_zip_through_compare(tmp_path, synthetic_store_dir):
    """A PPO zip with no run config beside it is compared through the CLI; with the wrong
    --wrapper the error is one line naming the wrapper."""
    from stable_baselines3 import PPO

    env = gym.make("autotts_gym:AutoTTSMacro-v0", replay_dir=str(synthetic_store_dir))
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0)
    model.learn(64)
    zip_path = tmp_path / "plain" / "ppo_macro.zip"
    zip_path.parent.mkdir()
    model.save(str(zip_path))
    out = tmp_path / "cmp"
    r = _cli("compare", "--policy", str(zip_path), "--wrapper", "macro", "--controllers",
             "sc64", "--models", "Qwen3-4B", "--benchmarks", "aime25", "--seeds", "0-1",
             "--betas", "0.5", "--replay-dir", str(synthetic_store_dir), "--workers", "1",
             "--out", str(out))
    assert r.returncode == 0, r.stderr
    methods = {json.loads(line)["method"] for line in
               (out / "records.jsonl").read_text().splitlines()}
    assert methods == {"RL(plain)", "SC@64"}
    r = _cli("compare", "--policy", str(zip_path), "--wrapper", "atomic", "--controllers",
             "sc64", "--models", "Qwen3-4B", "--benchmarks", "aime25", "--seeds", "0",
             "--replay-dir", str(synthetic_store_dir), "--workers", "1", "--out",
             str(tmp_path / "bad"))
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1 and "atomic (no wrapper)" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_rl_zoo_hyperparameters_fit_ppo_and_the_env():
    """autotts_rl/zoo/ppo.yml: one entry for a registered env id; its keys are RL Zoo's own
    (n_envs, n_timesteps, policy, policy_kwargs) or PPO arguments."""
    import inspect

    import yaml
    from stable_baselines3 import PPO

    text = resources.files("autotts_rl").joinpath("zoo/ppo.yml").read_text()
    conf = yaml.safe_load(text)
    assert list(conf) == ["AutoTTSMacro-v0"] and "AutoTTSMacro-v0" in gym.registry
    ppo_args = set(inspect.signature(PPO.__init__).parameters)
    for key in conf["AutoTTSMacro-v0"]:
        assert key in {"n_envs", "n_timesteps", "policy"} or key in ppo_args, key
    assert eval(conf["AutoTTSMacro-v0"]["policy_kwargs"], {"dict": dict})["net_arch"]
