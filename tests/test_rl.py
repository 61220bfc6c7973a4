"""Learned policies: training end to end, resume, harness scoring, macro costs, features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from autotts_gym.env import AutoTTSEnv
from autotts_gym.errors import UsageError
from autotts_gym.harness import evaluate
from autotts_gym.wrappers import MACRO_ACTIONS, RoundMacroWrapper
from autotts_rl.features import SlotSetExtractor
from autotts_rl.train import TrainConfig, load_policy, train


def _cfg(store_dir, **kw) -> TrainConfig:
    base = dict(env="macro", replay_dir=str(store_dir), models=["Qwen3-4B"], n_envs=2,
                vec_env="dummy", total_timesteps=512, n_steps=128, batch_size=128,
                n_epochs=2, checkpoint_every=256, eval_every=256, eval_seeds=1,
                eval_betas=[0.5])
    base.update(kw)
    return TrainConfig(**base)


def test_train_save_load_and_score(tmp_path, synthetic_store_dir, synthetic_store):
    out = tmp_path / "run"
    model = train(_cfg(synthetic_store_dir), out)
    assert model.num_timesteps == 512
    for f in ("best.zip", "final.zip", "checkpoints/last.zip", "config.yaml", "meta.json"):
        assert (out / f).is_file(), f
    evals = [json.loads(line) for line in open(out / "evals.jsonl")]
    assert [e["timesteps"] for e in evals] == [256, 512]
    policy = load_policy(f"rl:{out}/best.zip")
    res = evaluate(policy, synthetic_store, models="Qwen3-4B", benchmarks="aime25", seeds=[0, 1],
                   betas=(0.0, 1.0), workers=1, progress=False)
    assert len(res.records) == 30 * 2 * 2
    assert all(r.tokens > 0 and r.steps >= 1 for r in res.records)


def test_resume_continues_step_count(tmp_path, synthetic_store_dir):
    out = tmp_path / "run"
    train(_cfg(synthetic_store_dir), out)
    with pytest.raises(UsageError, match="a run exists here"):
        train(_cfg(synthetic_store_dir), out)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["total_timesteps"] = 1024
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    model = train(TrainConfig(), out, resume=True)
    assert model.num_timesteps == 1024
    evals = [json.loads(line)["timesteps"] for line in open(out / "evals.jsonl")]
    assert evals == [256, 512, 768, 1024]  # resumed at 512, not from 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["num_timesteps"] == 1024 and meta["seed"] == 0


def test_held_out_benchmarks_are_refused(tmp_path, synthetic_store):
    for bench in ("aime25", "hmmt25"):
        with pytest.raises(ValueError, match="both in the search set and held out"):
            TrainConfig(search=[bench], held_out=["aime25", "hmmt25"]).validate()
    split = TrainConfig().split(synthetic_store.benchmarks())
    assert split.search == ("aime24",) and split.held_out == ("aime25", "hmmt25")
    legacy = tmp_path / "old.yaml"
    legacy.write_text("env: macro\nbenchmark: aime24\n")
    assert TrainConfig.from_yaml(legacy).search == ["aime24"]
    bad = tmp_path / "c.yaml"
    bad.write_text("env: macro\nlerning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown setting.*lerning_rate"):
        TrainConfig.from_yaml(bad)


def test_macro_costs_equal_atomic_env(synthetic_store_dir):
    """Replaying the atomic actions a macro episode issued on a fresh atomic env gives the
    same tokens, answer and return."""
    rng = np.random.default_rng(0)
    for episode in range(40):
        opts = {"problem": episode % 30, "order_seed": episode, "beta": float(rng.random())}
        w = RoundMacroWrapper(AutoTTSEnv(replay_dir=str(synthetic_store_dir), model="Qwen3-1.7B",
                                         benchmark="aime24", max_width=16), max_rounds=30)
        obs, info = w.reset(options=opts)
        assert w.observation_space.contains(obs)
        ret, done = 0.0, False
        while not done:
            mask = info["action_mask"]
            choices = np.flatnonzero(mask[1:]) + 1
            a = 0 if rng.random() < 0.05 or not choices.size else int(rng.choice(choices))
            obs, r, term, trunc, info = w.step(a)
            ret += r
            done = term or trunc
        atomic = AutoTTSEnv(replay_dir=str(synthetic_store_dir), model="Qwen3-1.7B",
                            benchmark="aime24", max_width=16)
        atomic.reset(options=opts)
        ret2 = 0.0
        for a in w.atomic_actions:
            _, r, term, trunc, info2 = atomic.step(a)
            ret2 += r
        assert term or trunc
        assert info2["tokens"] == info["tokens"] and info2["answer"] == info["answer"]
        assert ret2 == pytest.approx(ret, abs=1e-9)
    assert len(MACRO_ACTIONS) == w.action_space.n


def test_slot_extractor_is_permutation_invariant(synthetic_store_dir):
    env = AutoTTSEnv(replay_dir=str(synthetic_store_dir), model="Qwen3-4B", benchmark="aime24",
                     max_width=8)
    obs, _ = env.reset(seed=0)
    for a in [1, 1, 1, 1, 2 + 8, 2 + 8 + 1, 2, 2, 2 + 8, 2 + 8 + 2, 2 + 16 + 3]:
        obs, *_ = env.step(a)
    ext = SlotSetExtractor(env.observation_space, hidden=16, per_slot_dim=0)
    perm = np.array([3, 0, 2, 1, 7, 6, 5, 4])
    t = {k: torch.as_tensor(v[None]).float() for k, v in obs.items()}
    tp = {k: torch.as_tensor((v[perm] if v.shape == (8,) else v)[None]).float()
          for k, v in obs.items()}
    with torch.no_grad():
        a, b = ext(t), ext(tp)
    assert a.shape == (1, ext.features_dim)
    assert torch.allclose(a, b, atol=1e-6)


def _pretrained_by_beta(store) -> dict[float, list]:
    from importlib import resources

    path = resources.files("autotts_rl.pretrained").joinpath("policy.zip")
    policy = load_policy(f"rl:{path}")
    res = evaluate(policy, store, models="Qwen3-4B", benchmarks="aime25", seeds=[0],
                   betas=(0.0, 1.0), workers=1, progress=False)
    by_beta = {b: [r for r in res.records if r.beta == b] for b in (0.0, 1.0)}
    assert all(len(v) == 30 for v in by_beta.values())
    return by_beta


def test_bundled_pretrained_policy_loads_and_plays(synthetic_store):
    by_beta = _pretrained_by_beta(synthetic_store)
    # it learned something beta-dependent: more tokens at beta 1 than at beta 0
    assert (sum(r.tokens for r in by_beta[1.0]) > sum(r.tokens for r in by_beta[0.0]))


def test_bundled_pretrained_policy_accuracy_on_the_real_data(real_store):
    by_beta = _pretrained_by_beta(real_store)
    assert (sum(r.tokens for r in by_beta[1.0]) > sum(r.tokens for r in by_beta[0.0]))
    assert sum(r.correct for r in by_beta[1.0]) >= 15  # SC@64 gets 23 of 30 here
