"""AutoTTS-v0 invariants on the real replay data."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import autotts_gym  # noqa: F401  (registers AutoTTS-v0)
from autotts_gym.actions import ANSWER, BRANCH, decode, encode
from autotts_gym.core import branch_order
from autotts_gym.env import AutoTTSEnv, default_gamma
from autotts_gym.store import ProblemBuilder, ReplaySet, ReplayStore, write_replay_set

N = 8


def _env(store_dir, **kw) -> AutoTTSEnv:
    kw.setdefault("model", "Qwen3-4B")
    kw.setdefault("benchmark", "aime24")
    kw.setdefault("max_width", N)
    return AutoTTSEnv(replay_dir=str(store_dir), **kw)


def test_checkers_pass(real_store_dir):
    check_env(_env(real_store_dir), skip_render_check=True)
    from stable_baselines3.common.env_checker import check_env as sb3_check

    sb3_check(_env(real_store_dir), warn=True)


def test_make_and_vector_envs(real_store_dir):
    env = gym.make("autotts_gym:AutoTTS-v0", replay_dir=str(real_store_dir),
                   model="Qwen3-0.6B", benchmark="aime25", max_width=N)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert info["action_mask"].shape == (2 + 3 * N,)
    for mode in ("sync", "async"):
        venv = gym.make_vec("autotts_gym:AutoTTS-v0", num_envs=2, vectorization_mode=mode,
                            replay_dir=str(real_store_dir), model="Qwen3-0.6B",
                            benchmark="aime25", max_width=N)
        obs, info = venv.reset(seed=0)
        assert obs["depth"].shape == (2, N)
        obs, r, term, trunc, info = venv.step(np.array([BRANCH, BRANCH]))
        assert (obs["depth"][:, 0] == 1).all()
        venv.close()


def test_action_encoding_roundtrip():
    for a in range(2 + 3 * N):
        kind, slot = decode(a, N)
        assert encode(kind, slot, N) == a
    with pytest.raises(ValueError):
        decode(2 + 3 * N, N)


def test_masks_equal_admissible_set_and_invalid_is_free_noop(real_store_dir):
    env = _env(real_store_dir, kappa_probe=3.0)
    rng = np.random.default_rng(0)
    for episode in range(30):
        obs, info = env.reset(seed=episode)
        for _ in range(120):
            mask = env.action_masks()
            assert np.array_equal(mask, info["action_mask"])
            # the mask must equal the rules evaluated on the core's state
            ep = env._ep
            for i in range(ep.n_open):
                live = not ep.pruned[i]
                assert mask[encode("continue", i, N)] == (live and not ep.finished[i])
                assert mask[encode("prune", i, N)] == live
            for i in range(ep.n_open, N):
                for kind in ("continue", "probe", "prune"):
                    assert not mask[encode(kind, i, N)]
            assert mask[BRANCH] == (ep.n_open < N)
            invalid = np.flatnonzero(~mask)
            if invalid.size and rng.random() < 0.3:
                a = int(rng.choice(invalid))
                tokens, state = ep.tokens, (list(ep.depth), list(ep.revealed), list(ep.pruned))
                obs2, r, term, trunc, info = env.step(a)
                assert info["invalid_action"] and not term and not trunc
                assert r == -env.invalid_action_penalty
                assert ep.tokens == tokens
                assert (list(ep.depth), list(ep.revealed), list(ep.pruned)) == state
                assert all(np.array_equal(obs2[k], obs[k]) for k in obs)
                continue
            valid = np.flatnonzero(mask[1:]) + 1
            if not valid.size or rng.random() < 0.02:
                break
            obs, r, term, trunc, info = env.step(int(rng.choice(valid)))
            assert not info["invalid_action"]


def test_probe_admissible_once_per_depth(real_store_dir):
    env = _env(real_store_dir)
    env.reset(seed=0)
    env.step(BRANCH)
    probe = encode("probe", 0, N)
    assert env.action_masks()[probe]
    env.step(probe)
    assert not env.action_masks()[probe]
    env.step(encode("continue", 0, N))
    assert env.action_masks()[probe]


def test_branch_run_to_end_costs_spec(real_store_dir, replay_json_dir):
    raw = json.loads((replay_json_dir / "Qwen3-4B" / "aime24.json").read_text())
    env = _env(real_store_dir, token_scale=1.0, gamma_fn=lambda b: 1.0)
    for problem, seed in [(0, 0), (4, 9), (21, 5)]:
        env.reset(options={"problem": problem, "order_seed": seed})
        stored = branch_order(seed)[0]
        probes, tokens, final = raw[problem]["each_branch"][stored]
        total_reward = env.step(BRANCH)[1]
        while env.action_masks()[encode("continue", 0, N)]:
            total_reward += env.step(encode("continue", 0, N))[1]
        _, r, *_ , info = env.step(encode("probe", 0, N))
        assert env._ep.tokens == max(tokens, 500 * len(probes))
        assert -total_reward == max(tokens, 500 * len(probes))  # the reward charges it
        _, _, term, _, info = env.step(ANSWER)
        assert term and info["answer"] == final and info["tokens"] == max(tokens, 500 * len(probes))


def _tiny_store(tmp_path, gold: str, hidden: str) -> ReplayStore:
    """One problem, two branches; only the gold and unrevealed answers depend on args."""
    b = ProblemBuilder(0, "q", gold, 500)
    b.add_branch(["1", "2", hidden], 1400, hidden)
    b.add_branch(["1", hidden, hidden], 1700, hidden)
    root = tmp_path / gold
    write_replay_set(root / "m" / "bench.h5", ReplaySet("m", "bench", [b.build()]))
    return ReplayStore(root)


def test_no_leak_of_gold_or_unrevealed_answers(tmp_path):
    envs = [AutoTTSEnv(store=_tiny_store(tmp_path, g, h), max_width=2)
            for g, h in (("7", "9"), ("8", "5"))]
    actions = [BRANCH, BRANCH, encode("probe", 0, 2), encode("continue", 0, 2),
               encode("probe", 0, 2), encode("continue", 1, 2), encode("prune", 1, 2)]
    outs = []
    for env in envs:
        obs, _ = env.reset(options={"problem": 0, "order_seed": 0})
        seq = [obs]
        for a in actions:
            seq.append(env.step(a)[0])
        outs.append(seq)
    for o1, o2 in zip(*outs):
        assert all(np.array_equal(o1[k], o2[k]) for k in o1)


def test_random_masked_policy_10000_episodes(real_store_dir):
    env = AutoTTSEnv(replay_dir=str(real_store_dir), max_width=16)
    rng = np.random.default_rng(1)
    obs, info = env.reset(seed=0)
    episodes = 0
    while episodes < 10_000:
        mask = info["action_mask"]
        valid = np.flatnonzero(mask)
        a = ANSWER if rng.random() < 0.05 else int(rng.choice(valid))
        obs, r, term, trunc, info = env.step(a)
        assert np.isfinite(r) and not info["invalid_action"]
        if term or trunc:
            assert {"correct", "answer", "tokens", "width"} <= set(info)
            episodes += 1
            obs, info = env.reset()


def test_budget_truncates_and_reward_sums_to_objective(real_store_dir):
    env = _env(real_store_dir, token_budget=3000, beta=(0.0, 1.0))
    obs, info = env.reset(seed=5)
    beta = float(obs["beta"][0])
    ret, trunc, term = 0.0, False, False
    while not (term or trunc):
        a = BRANCH if env.action_masks()[BRANCH] else encode("continue", 0, N)
        obs, r, term, trunc, info = env.step(a)
        ret += r
    assert trunc and not term and info["tokens"] >= 3000
    want = float(info["correct"]) - default_gamma(beta) * info["tokens"] / 1e6
    assert ret == pytest.approx(want, abs=1e-9)
    assert obs["budget_left"][0] == 0.0


def test_sc64_through_env_actions_costs_interval_overshoot(real_store, real_store_dir):
    """Same accuracy as SC@64 exactly; tokens = SC@64's + sum of max(0, 500 L - tokens)."""
    from autotts_gym.core import Episode
    from autotts_gym.voting import majority

    env = AutoTTSEnv(replay_dir=str(real_store_dir), model="Qwen3-1.7B", benchmark="aime25",
                     max_width=64)
    rs = real_store.load("Qwen3-1.7B", "aime25")
    for p in rs.problems[:10]:
        for seed in (0, 1):
            ref = Episode.from_seed(p, seed)
            finals = [p.vocab[ref.read()[0]] for _ in range(64)]
            order = branch_order(seed)
            overshoot = sum(max(0, 500 * int(p.n_probes[b]) - int(p.tokens[b]))
                            for b in order[:64])
            env.reset(options={"problem": p.index, "order_seed": seed})
            for i in range(64):
                env.step(BRANCH)
                while env.action_masks()[encode("continue", i, 64)]:
                    env.step(encode("continue", i, 64))
                env.step(encode("probe", i, 64))
            *_, info = env.step(ANSWER)
            assert info["answer"] == majority(finals)
            assert info["tokens"] == ref.tokens + overshoot


def test_render_modes(real_store_dir):
    env = _env(real_store_dir, render_mode="ansi")
    env.reset(seed=0)
    env.step(BRANCH)
    env.step(encode("probe", 0, N))
    text = env.render()
    assert "ans=#0" in text and "tokens=500" in text
    env = _env(real_store_dir, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(BRANCH)
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and (img != 255).any()


def test_bad_arguments_are_clear(real_store_dir):
    with pytest.raises(ValueError, match="max_width"):
        _env(real_store_dir, max_width=500)
    with pytest.raises(ValueError, match="beta"):
        _env(real_store_dir, beta=1.5)
    env = AutoTTSEnv(replay_dir=str(real_store_dir))
    with pytest.raises(ValueError, match="model"):
        env.reset(options={"problem": 0})
