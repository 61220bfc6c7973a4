"""AutoTTS-v0 invariants, on the bundled synthetic store (Table 1 on the real data)."""

from __future__ import annotations

import itertools
import json
import warnings

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


def test_checkers_pass(synthetic_store_dir):
    made = gym.make("autotts_gym:AutoTTS-v0", replay_dir=str(synthetic_store_dir), model="Qwen3-4B",
                    benchmark="aime24", max_width=N, render_mode="rgb_array")
    check_env(made.unwrapped)  # with a spec, so the checker also tries the ansi mode
    from stable_baselines3.common.env_checker import check_env as sb3_check

    sb3_check(_env(synthetic_store_dir), warn=True)


def test_make_and_vector_envs(synthetic_store_dir):
    env = gym.make("autotts_gym:AutoTTS-v0", replay_dir=str(synthetic_store_dir),
                   model="Qwen3-0.6B", benchmark="aime25", max_width=N)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert info["action_mask"].shape == (2 + 3 * N,)
    for mode in ("sync", "async"):
        venv = gym.make_vec("autotts_gym:AutoTTS-v0", num_envs=2, vectorization_mode=mode,
                            replay_dir=str(synthetic_store_dir), model="Qwen3-0.6B",
                            benchmark="aime25", max_width=N)
        obs, info = venv.reset(seed=0)
        assert obs["depth"].shape == (2, N)
        obs, _, term, trunc, info = venv.step(np.array([BRANCH, BRANCH]))
        assert (obs["depth"][:, 0] == 1).all()
        rng, ends = np.random.default_rng(0), 0
        for _ in range(200):  # masked random play across episode ends (autoreset)
            acts = [ANSWER if rng.random() < 0.1 else int(rng.choice(np.flatnonzero(m)))
                    for m in info["action_mask"]]
            obs, _, term, trunc, info = venv.step(np.array(acts))
            assert info["action_mask"].shape == (2, 2 + 3 * N)
            assert not info["invalid_action"].any()
            ends += int((term | trunc).sum())
        assert ends > 5
        venv.close()


def test_action_encoding_roundtrip():
    for a in range(2 + 3 * N):
        kind, slot = decode(a, N)
        assert encode(kind, slot, N) == a
    with pytest.raises(ValueError):
        decode(2 + 3 * N, N)
    with pytest.raises(ValueError, match="kind"):
        encode("widen", 0, N)
    with pytest.raises(ValueError, match="slot"):
        encode("probe", N, N)
    assert (encode("answer", None, N), encode("branch", None, N)) == (ANSWER, BRANCH)


def _rules_mask(ep, probed_at: list[int], n: int) -> np.ndarray:
    """The admissible set evaluated from scratch on the core's state (the documented rules)."""
    m = np.zeros(2 + 3 * n, dtype=bool)
    m[ANSWER] = True
    m[BRANCH] = ep.n_open < n and ep.can_branch()
    for i in range(ep.n_open):
        if not ep.pruned[i]:
            m[encode("continue", i, n)] = not ep.finished[i]
            m[encode("probe", i, n)] = probed_at[i] != ep.depth[i]
            m[encode("prune", i, n)] = True
    return m


def _snapshot(env: AutoTTSEnv, obs: dict) -> tuple:
    ep = env._ep
    return (ep.tokens, ep.n_open, tuple(ep.depth), tuple(ep.finished), tuple(ep.pruned),
            tuple(ep.revealed), tuple(o.tobytes() for o in obs.values()),
            env.action_masks().tobytes())


def test_masks_equal_admissible_set_brute_force(synthetic_store_dir):
    """At random states every action is admissible iff the rules allow it iff stepping it
    changes the state; an inadmissible one is a free no-op with the penalty."""
    n = 4
    env = _env(synthetic_store_dir, max_width=n, kappa_probe=3.0)
    twin = _env(synthetic_store_dir, max_width=n, kappa_probe=3.0)
    rng = np.random.default_rng(0)
    checked = 0
    for episode in range(12):
        options = {"problem": int(rng.integers(30)), "order_seed": episode}
        obs, info = env.reset(options=options)
        probed_at = [-1] * n
        prefix: list[int] = []
        for _ in range(25):
            mask = env.action_masks()
            assert np.array_equal(mask, info["action_mask"])
            assert np.array_equal(mask, _rules_mask(env._ep, probed_at, n))
            before = _snapshot(env, obs)
            for a in range(2 + 3 * n):  # step every action from a copy of this state
                o2, _ = twin.reset(options=options)
                for b in prefix:
                    o2 = twin.step(b)[0]
                assert _snapshot(twin, o2) == before
                o2, r, term, trunc, inf = twin.step(a)
                assert inf["invalid_action"] == (not mask[a])
                if mask[a]:
                    assert term or _snapshot(twin, o2) != before
                else:
                    assert _snapshot(twin, o2) == before
                    assert r == -twin.invalid_action_penalty and not term and not trunc
                checked += 1
            valid = np.flatnonzero(mask[1:]) + 1
            if not valid.size:
                break
            a = int(rng.choice(valid))
            obs, _, _, _, info = env.step(a)
            prefix.append(a)
            kind, slot = decode(a, n)
            if kind == "probe":
                probed_at[slot] = env._ep.depth[slot]
    assert checked > 2000
    # out-of-range and non-numeric actions are inadmissible too, and never raise
    for a in (-1, 2 + 3 * n, 10**6, None, "x"):
        _, r, term, _, info = env.step(a)
        assert info["invalid_action"] and r == -env.invalid_action_penalty and not term


def test_probe_admissible_once_per_depth(synthetic_store_dir):
    env = _env(synthetic_store_dir)
    env.reset(seed=0)
    env.step(BRANCH)
    probe = encode("probe", 0, N)
    assert env.action_masks()[probe]
    env.step(probe)
    assert not env.action_masks()[probe]
    env.step(encode("continue", 0, N))
    assert env.action_masks()[probe]


def test_branch_run_to_end_costs_spec(synthetic_store_dir, synthetic_json_dir):
    raw = json.loads((synthetic_json_dir / "Qwen3-4B" / "aime24.json").read_text())
    env = _env(synthetic_store_dir, token_scale=1.0, gamma_fn=lambda b: 1.0)
    for problem, seed in [(0, 0), (4, 9), (21, 5)]:
        env.reset(options={"problem": problem, "order_seed": seed})
        stored = branch_order(seed)[0]
        probes, tokens, final = raw[problem]["each_branch"][stored]
        total_reward = env.step(BRANCH)[1]
        while env.action_masks()[encode("continue", 0, N)]:
            total_reward += env.step(encode("continue", 0, N))[1]
        env.step(encode("probe", 0, N))
        assert env._ep.tokens == max(tokens, 500 * len(probes))
        assert -total_reward == max(tokens, 500 * len(probes))  # the reward charges it
        _, _, term, _, info = env.step(ANSWER)
        assert term and info["answer"] == final and info["tokens"] == max(tokens, 500 * len(probes))


def _store(tmp_path, name: str, gold: str, branches: list[tuple[list[str], int, str]],
           question: str = "q") -> ReplayStore:
    """One problem whose k-th listed branch is met k-th under order seed 0."""
    order = branch_order(0, len(branches))
    stored = [None] * len(branches)
    for k, b in enumerate(branches):
        stored[order[k]] = b
    pb = ProblemBuilder(0, question, gold, 500)
    for probes, tokens, final in stored:
        pb.add_branch(probes, tokens, final)
    root = tmp_path / name
    write_replay_set(root / "m" / "bench.h5", ReplaySet("m", "bench", [pb.build()]))
    return ReplayStore(root)


def test_no_leak_of_gold_or_unrevealed_answers(tmp_path):
    """Two problems equal in everything a controller sees, different in the gold answer,
    every unrevealed answer (including ones that would change the first-seen ranks if they
    leaked), the question, and the whole branch that N = 2 never lets it open."""
    variants = [("2", "1", "1", "Q1", (["1"] * 5, 2600, "1")),
                ("9", "z", "y", "Q2", (["q"], 300, "q"))]
    envs = []
    for k, (gold, h0, h1, question, unopened) in enumerate(variants):
        store = _store(tmp_path, f"v{k}", gold, [(["1", "2", h0], 1400, h0),
                                                 (["2", h1, h1], 1700, h1), unopened],
                       question)
        envs.append(AutoTTSEnv(store=store, max_width=2, token_scale=1.0))
    c0, c1 = (encode("continue", i, 2) for i in range(2))
    p0, p1 = (encode("probe", i, 2) for i in range(2))
    actions = [BRANCH, BRANCH, p0, p1, c0, p0, c0, c1, c1, c0, c1, encode("prune", 0, 2),
               BRANCH, p1 + 5, ANSWER]  # BRANCH is inadmissible at N = 2; p1 + 5 is out of range
    runs = []
    for env in envs:
        obs, info = env.reset(options={"problem": 0, "order_seed": 0})
        seq = [(obs, info["action_mask"], 0.0)]
        for a in actions:
            obs, r, _, _, info = env.step(a)
            seq.append((obs, info["action_mask"], r))
        runs.append((seq, info))
    (seq_a, end_a), (seq_b, end_b) = runs
    for (o1, m1, r1), (o2, m2, r2) in zip(seq_a[:-1], seq_b[:-1], strict=True):
        assert all(np.array_equal(o1[k], o2[k]) for k in o1)
        assert np.array_equal(m1, m2) and r1 == r2
    assert all(np.array_equal(seq_a[-1][0][k], seq_b[-1][0][k]) for k in seq_a[-1][0])
    # only the gold answer tells the two apart, and only through correctness
    assert end_a["answer"] == end_b["answer"] == "2" and end_a["tokens"] == end_b["tokens"]
    assert end_a["correct"] and not end_b["correct"]
    assert seq_a[-1][2] == seq_b[-1][2] + 1.0


def _open_and_probe_all(env, n: int, order: list[int] | None = None) -> dict:
    obs, _ = env.reset(options={"problem": 0, "order_seed": 0})
    for _ in range(n):
        obs, *_ = env.step(BRANCH)
    for i in order or range(n):
        obs, *_ = env.step(encode("probe", i, n))
    return obs


def test_answer_votes_unpruned_latest_answers_in_slot_order(tmp_path):
    store = _store(tmp_path, "votes", "b", [(["a"], 600, "a"), (["b"], 600, "b"),
                                            (["b"], 600, "b"), (["c"], 600, "c")])
    env = AutoTTSEnv(store=store, max_width=4)
    obs = _open_and_probe_all(env, 4, order=[3, 1, 2, 0])  # first seen: c, b, a
    assert obs["answer"].tolist() == [2, 1, 1, 0]
    assert obs["votes"].tolist() == [1, 2, 1, 0, 0]
    *_, info = env.step(ANSWER)
    assert info["answer"] == "b" and info["correct"]
    # pruned slots leave the vote; a tie goes to the answer listed first in slot order
    _open_and_probe_all(env, 4, order=[3, 1, 2, 0])
    env.step(encode("prune", 1, 4))
    obs, *_ = env.step(encode("prune", 3, 4))
    assert obs["votes"].tolist() == [0, 1, 1, 0, 0] and obs["answer"][1] == 1
    *_, info = env.step(ANSWER)
    assert info["answer"] == "a" and not info["correct"]
    # pruning every slot leaves nothing to vote on: no answer, wrong
    _open_and_probe_all(env, 4)
    for i in range(4):
        env.step(encode("prune", i, 4))
    *_, info = env.step(ANSWER)
    assert info["answer"] == "" and not info["answered"] and not info["correct"]
    # a custom aggregator gets the answer strings in slot order
    seen = []
    env = AutoTTSEnv(store=store, max_width=4, aggregator=lambda xs: seen.append(xs) or xs[-1])
    _open_and_probe_all(env, 4, order=[3, 0])
    *_, info = env.step(ANSWER)
    assert seen == [["a", "c"]] and info["answer"] == "c"


def test_other_rank_for_answers_first_seen_beyond_n(tmp_path):
    store = _store(tmp_path, "other", "x", [(["p", "q", "r"], 1600, "s"), (["p"], 600, "p")])
    env = AutoTTSEnv(store=store, max_width=2, render_mode="ansi")
    env.reset(options={"problem": 0, "order_seed": 0})
    env.step(BRANCH)
    ranks = []
    for _ in range(4):  # p, q, r, s revealed in turn: ranks 0, 1, then "other" (= N = 2)
        obs, *_ = env.step(encode("probe", 0, 2))
        ranks.append(int(obs["answer"][0]))
        env.step(encode("continue", 0, 2))
    assert ranks == [0, 1, 2, 2] and obs["votes"].tolist() == [0, 0, 1]
    env.step(BRANCH)
    obs, *_ = env.step(encode("probe", 1, 2))
    assert obs["answer"].tolist() == [2, 0] and obs["votes"].tolist() == [1, 0, 1]
    assert "ans=other" in env.render()
    *_, info = env.step(ANSWER)
    assert info["answer"] == "s"  # a 1-1 tie: slot 0 is listed first


def test_random_masked_policy_10000_episodes(synthetic_store_dir):
    """All nine real sets, beta drawn per episode, a token budget that cuts some episodes;
    every episode's return must equal its objective and its votes the unpruned revealed
    slots."""
    env = AutoTTSEnv(replay_dir=str(synthetic_store_dir), max_width=16, beta=(0.0, 1.0),
                     kappa_probe=1.0, token_budget=12_000)
    rng = np.random.default_rng(1)
    u = rng.random(2_000_000)
    obs, info = env.reset(seed=0)
    episodes = steps = finished_slots = prunes = cut = 0
    ret = 0.0
    probed_at = [-1] * 16
    while episodes < 10_000:
        mask = info["action_mask"]
        if steps % 3 == 0:  # the incremental mask against the rules on the core's state
            assert np.array_equal(mask, _rules_mask(env._ep, probed_at, 16))
        valid = np.flatnonzero(mask[1:]) + 1
        x = u[steps % len(u)]
        a = ANSWER if x < 0.04 or not valid.size else int(valid[int(x * 1e6) % valid.size])
        obs, r, term, trunc, info = env.step(a)
        steps += 1
        ret += r
        assert not info["invalid_action"]
        if a >= 2 + 16 and a < 2 + 32:
            probed_at[a - 18] = env._ep.depth[a - 18]
        if steps % 997 == 0:
            assert env.observation_space.contains(obs)
        if term or trunc:
            ep = env._ep
            k = ep.n_open  # the incremental observation against the core's state
            assert obs["depth"][:k].tolist() == ep.depth and not obs["depth"][k:].any()
            assert obs["pruned"][:k].tolist() == ep.pruned
            assert obs["finished"][:k].tolist() == ep.finished
            assert obs["active"][:k].tolist() == [
                not (p or f) for p, f in zip(ep.pruned, ep.finished, strict=True)]
            assert obs["tokens"][0] == np.float32(ep.tokens / 1e6)
            probed_at = [-1] * 16
            want = float(info["correct"]) - default_gamma(info["beta"]) * info["tokens"] / 1e6
            assert ret == pytest.approx(want, abs=1e-9)
            live = [i for i in range(ep.n_open) if ep.revealed[i] >= 0 and not ep.pruned[i]]
            assert obs["votes"].sum() == len(live)
            cut += trunc
            assert trunc == (info["tokens"] >= 12_000)
            finished_slots += int(obs["finished"].sum())
            prunes += int(obs["pruned"].sum())
            episodes += 1
            ret = 0.0
            obs, info = env.reset()
    assert steps > 100_000 and finished_slots > 0 and prunes > 0 and 0 < cut < episodes


def test_budget_truncates_and_reward_sums_to_objective(synthetic_store_dir):
    env = _env(synthetic_store_dir, token_budget=3000, beta=(0.0, 1.0))
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


def _play_sc64(env: AutoTTSEnv, problem: int, seed: int) -> dict:
    """SC@64 as env actions: BRANCH x64, CONTINUE each slot to its end, PROBE each, ANSWER."""
    env.reset(options={"problem": problem, "order_seed": seed})
    for _ in range(64):
        env.step(BRANCH)
    for i in range(64):
        cont = encode("continue", i, 64)
        while env.action_masks()[cont]:
            env.step(cont)
        env.step(encode("probe", i, 64))
    *_, term, _, info = env.step(ANSWER)
    assert term
    return info


def _overshoot(p, seed: int) -> int:
    """What the interval view charges beyond a whole read: sum of max(0, 500 L - tokens)."""
    return sum(max(0, p.probe_freq * int(p.n_probes[b]) - int(p.tokens[b]))
               for b in branch_order(seed)[:64])


def test_sc64_through_env_actions_costs_interval_overshoot(synthetic_store, synthetic_store_dir):
    """Per episode, the same answer as the SC@64 controller (agents.baselines.sc) run
    through a Session on the same order; tokens = its tokens + the interval overshoot."""
    from autotts_gym.baselines.sc import SelfConsistency
    from autotts_gym.core import Episode
    from autotts_gym.session import Session

    env = AutoTTSEnv(replay_dir=str(synthetic_store_dir), model="Qwen3-1.7B", benchmark="aime25",
                     max_width=64)
    rs = synthetic_store.load("Qwen3-1.7B", "aime25")
    total_overshoot = correct = 0
    for p in rs.problems:
        for seed in (0, 1, 2):
            ep = Episode.from_seed(p, seed)
            answer = SelfConsistency(64).solve(Session(ep, beta=0.5))
            info = _play_sc64(env, p.index, seed)
            assert info["answer"] == answer
            assert info["correct"] == (answer == p.gold_answer)
            assert info["tokens"] == ep.tokens + _overshoot(p, seed)
            assert info["width"] == 64 and info["max_depth"] == max(ep.depth)
            total_overshoot += _overshoot(p, seed)
            correct += info["correct"]
    assert total_overshoot > 0  # the two costs really differ on this data
    assert 0 < correct < 90


@pytest.mark.slow
def test_sc64_through_env_actions_matches_table1(real_store, real_store_dir, reference_rows):
    """Over the protocol's 100 seeds, the env-played SC@64 has the published accuracy
    exactly and the published tokens plus the mean interval overshoot."""
    model, bench = "Qwen3-4B", "aime24"
    want = next(r for r in reference_rows if (r["model"], r["benchmark"], r["method"])
                == (model, bench, "SC@64"))
    env = AutoTTSEnv(replay_dir=str(real_store_dir), model=model, benchmark=bench,
                     max_width=64)
    problems = real_store.load(model, bench).problems
    accs, toks, overs = [], [], []
    for seed in range(100):
        infos = [_play_sc64(env, p.index, seed) for p in problems]
        accs.append(np.mean([i["correct"] for i in infos]))
        toks.append(np.mean([i["tokens"] for i in infos]))
        overs.append(np.mean([_overshoot(p, seed) for p in problems]))
    assert f"{100 * np.mean(accs):.2f}" == want["spec_accuracy_pct"]
    assert abs(np.mean(toks) - np.mean(overs) - float(want["spec_mean_tokens"])) <= 1


def test_render_modes(synthetic_store_dir):
    env = _env(synthetic_store_dir, render_mode="ansi")
    env.reset(seed=0)
    env.step(BRANCH)
    env.step(encode("probe", 0, N))
    text = env.render()
    assert "ans=#0" in text and "tokens=500" in text and "votes: #0:1" in text
    env = _env(synthetic_store_dir, render_mode="rgb_array")
    env.reset(seed=0)
    assert (env.render() == 255).all()  # nothing opened: a blank grid
    env.step(BRANCH)
    env.step(encode("probe", 0, N))
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    w = img.shape[1] // N
    col0, rest = img[-1, w // 2], img[:, w:]
    assert len(set(col0.tolist())) > 1 and (rest == 255).all()  # a coloured slot 0 only
    env.step(encode("prune", 0, N))
    pruned = env.render()[-1, w // 2]
    assert len(set(pruned.tolist())) == 1 and pruned[0] < 255  # grey once pruned
    with pytest.warns(UserWarning, match="render_mode"):
        assert _env(synthetic_store_dir).render() is None  # no render_mode: no view


def test_max_steps_truncates_with_the_objective(synthetic_store_dir):
    env = _env(synthetic_store_dir, max_steps=5, beta=0.2)
    env.reset(seed=1)
    ret = 0.0
    for k in range(5):
        _, r, term, trunc, info = env.step(BRANCH if k < 3 else encode("probe", k - 3, N))
        ret += r
    assert trunc and not term and info["width"] == 3 and info["tokens"] == 1500
    want = float(info["correct"]) - default_gamma(0.2) * 1500 / 1e6
    assert ret == pytest.approx(want, abs=1e-12)


def test_default_gamma_is_monotone_from_2_to_005():
    g = [default_gamma(b) for b in np.linspace(0, 1, 11)]
    assert g[0] == pytest.approx(2.0) and g[-1] == pytest.approx(0.05)
    assert all(x > y for x, y in itertools.pairwise(g))


def test_reset_options_pin_the_episode(synthetic_store_dir):
    env = AutoTTSEnv(replay_dir=str(synthetic_store_dir), max_width=N,
                     benchmark=["aime24", "hmmt25"], beta=(0.1, 0.3))
    betas = {float(env.reset(seed=s)[0]["beta"][0]) for s in range(20)}
    assert len(betas) > 1 and all(0.1 <= b <= 0.3 for b in betas)
    obs, _ = env.reset(options={"problem": 7, "order_seed": 11, "beta": 0.9,
                                "model": "Qwen3-1.7B", "benchmark": "hmmt25"})
    assert obs["beta"][0] == np.float32(0.9)
    *_, info = env.step(ANSWER)
    assert (info["model"], info["benchmark"], info["problem"], info["order_seed"],
            info["beta"]) == ("Qwen3-1.7B", "hmmt25", 7, 11, 0.9)
    assert not info["answered"] and info["tokens"] == 0.0 and info["width"] == 0
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"problme": 3})
    with pytest.raises(ValueError, match="problem"):
        env.reset(options={"problem": 30, "model": "Qwen3-4B", "benchmark": "aime24"})
    with pytest.raises(ValueError, match="match 0"):
        env.reset(options={"problem": 0, "model": "Qwen3-4B", "benchmark": "aime25"})
    # a model alone (no problem) draws among that model's sets
    drawn = set()
    for s in range(30):
        env.reset(seed=s, options={"model": "Qwen3-0.6B"})
        drawn.add((env._set.model, env._set.benchmark))
    assert drawn == {("Qwen3-0.6B", "aime24"), ("Qwen3-0.6B", "hmmt25")}
    # the same seed gives the same episode
    a = env.reset(seed=4)[0], env._problem.index, env._order_seed
    b = env.reset(seed=4)[0], env._problem.index, env._order_seed
    assert a[1:] == b[1:]


def test_synthetic_data_is_announced(synthetic_store_dir, tmp_path):
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        env = AutoTTSEnv(replay_dir=str(synthetic_store_dir), max_width=N)
    assert env.synthetic
    real = _store(tmp_path, "real", "1", [(["1"], 600, "1")])  # a set not made by the generator
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not AutoTTSEnv(store=real, max_width=1).synthetic


def test_bad_arguments_are_clear(synthetic_store_dir):
    with pytest.raises(ValueError, match="max_width"):
        _env(synthetic_store_dir, max_width=500)
    with pytest.raises(ValueError, match="beta"):
        _env(synthetic_store_dir, beta=1.5)
    with pytest.raises(ValueError, match="token_budget must be positive or None, got 0"):
        _env(synthetic_store_dir, token_budget=0)
    with pytest.raises(ValueError, match="kappa_probe must be >= 0"):
        _env(synthetic_store_dir, kappa_probe=-1)
    env = AutoTTSEnv(replay_dir=str(synthetic_store_dir))
    with pytest.raises(ValueError, match="model"):
        env.reset(options={"problem": 0})


def test_step_after_the_end_warns(synthetic_store_dir):
    env = _env(synthetic_store_dir)
    env.reset(seed=0)
    env.step(BRANCH)
    assert env.step(ANSWER)[2]
    with pytest.warns(UserWarning, match="after the episode ended"):
        env.step(BRANCH)
    env.reset(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.step(BRANCH)  # a fresh episode steps without a warning
