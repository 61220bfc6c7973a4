"""How the pieces fit: one-way package dependencies, the typed session contract, the one
objective, and the replay tables owned by their replay set (synthetic store)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autotts_gym.actions import ANSWER, BRANCH
from autotts_gym.contracts import SESSION_METHODS, SESSION_PROPERTIES, SessionAPI
from autotts_gym.core import Episode, ProblemTables
from autotts_gym.env import AutoTTSEnv
from autotts_gym.harness import GymPolicy, evaluate
from autotts_gym.protocol import mean_objective
from autotts_gym.session import Session
from autotts_gym.store import ReplaySet, ReplayStore, write_replay_set

REPO = Path(__file__).resolve().parents[1]
OPTIONAL_LAYERS = ("autotts_cli", "autotts_discovery", "autotts_rl")


def test_autotts_gym_never_imports_the_optional_layers():
    """Import autotts_gym and every submodule in a fresh interpreter; none of the layers
    built on top of it may be loaded."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import autotts_gym\n"
        "names = [m.name for m in pkgutil.walk_packages(autotts_gym.__path__, 'autotts_gym.')]\n"
        "for n in names:\n"
        "    importlib.import_module(n)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {OPTIONAL_LAYERS!r})\n"
        "print(len(names), ' '.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(REPO), "PATH": ""})
    n, _, bad = out.stdout.strip().partition(" ")
    assert int(n) >= 20  # the walk found the submodules
    assert bad == "", f"autotts_gym imported {bad}"


def test_session_conforms_to_the_typed_contract(synthetic_store):
    rs = synthetic_store.load("Qwen3-0.6B", "aime24")
    session = Session(Episode.from_seed(rs.tables(rs.problems[0]), 0), beta=0.5)
    assert isinstance(session, SessionAPI)
    for name in SESSION_METHODS:
        want = list(inspect.signature(getattr(SessionAPI, name)).parameters)
        assert list(inspect.signature(getattr(Session, name)).parameters) == want, name
    for name in SESSION_PROPERTIES:
        assert isinstance(getattr(Session, name), property), name


class _OpenThree:
    """A deterministic env policy: open three branches, probe each, answer."""

    def __call__(self, obs: dict, mask: np.ndarray) -> int:
        n = (mask.shape[0] - 2) // 3
        if mask[BRANCH] and round(float(obs["n_open"][0]) * n) < 3:
            return BRANCH
        probes = np.flatnonzero(mask[2 + n:2 + 2 * n])
        return 2 + n + int(probes[0]) if probes.size else ANSWER


def test_objective_is_computed_once(synthetic_store, tmp_path):
    """On the same episodes, the env's mean return, protocol.mean_objective, the discovery
    score and RL model selection are one number, also when cells differ in size (a 30- and
    a 4-problem set)."""
    pytest.importorskip("autotts_discovery")
    from autotts_discovery.loop import sweep_summary
    from autotts_discovery.sandbox import SandboxResult
    from autotts_rl.train import TrainConfig, search_objective

    model, seeds, betas, width = "Qwen3-0.6B", [0, 1], [0.0, 0.5, 1.0], 8
    full = synthetic_store.load(model, "aime24")
    write_replay_set(tmp_path / model / "aime24.h5", full)
    write_replay_set(tmp_path / model / "small.h5",
                     ReplaySet(model, "small", full.problems[:4], synthetic=True))
    store = ReplayStore(tmp_path)
    policy = _OpenThree()
    env = AutoTTSEnv(store=store, max_width=width)
    returns = []
    for rs in store.select():
        for beta in betas:
            for p in rs.problems:
                for seed in seeds:
                    obs, info = env.reset(options={"problem": p.index, "order_seed": seed,
                                                   "beta": beta, "benchmark": rs.benchmark})
                    total, done = 0.0, False
                    while not done:
                        obs, r, term, trunc, info = env.step(policy(obs, info["action_mask"]))
                        total += r
                        done = term or trunc
                    returns.append(total)
    mean_return = float(np.mean(returns))

    res = evaluate(GymPolicy(policy, "open3", env_kwargs={"max_width": width}), store,
                   seeds=seeds, betas=betas, workers=1, progress=False)
    assert len(res.records) == len(returns) == (30 + 4) * len(seeds) * len(betas)
    assert mean_objective(res.records) == pytest.approx(mean_return, abs=1e-12)
    score = sweep_summary(SandboxResult(ok=True, results=res), {model: 1.0})["score"]
    assert score == pytest.approx(mean_return, abs=1e-12)
    cfg = TrainConfig(env="atomic", search=["aime24", "small"], held_out=[],
                      max_width=width, eval_seeds=len(seeds), eval_betas=betas)
    assert search_objective(policy, cfg, store)["objective"] == pytest.approx(
        mean_return, abs=1e-12)


def test_tables_are_owned_by_their_replay_set_and_bounded(synthetic_store_dir, monkeypatch):
    rs = ReplayStore(synthetic_store_dir).load("Qwen3-4B", "aime25")
    p0, p1, p2 = rs.problems[:3]
    t0 = rs.tables(p0)
    assert rs.tables(p0) is t0 and rs.tables(p0.index) is t0  # cached per set
    monkeypatch.setattr(type(rs), "TABLES_CACHE_SIZE", 2)
    rs.tables(p1)
    rs.tables(p2)  # p0 is now the least recently used of three: evicted
    again = rs.tables(p0)
    assert again is not t0 and np.array_equal(again.answers, t0.answers)
    assert rs.tables(p2) is rs.tables(p2)
    other = ReplayStore(synthetic_store_dir).load("Qwen3-4B", "aime25")
    assert other.tables(other.problems[0]) is not t0  # nothing shared across sets


def test_env_bounds_come_from_the_set_and_equal_the_tables(synthetic_store):
    """The per-set bounds the env sizes its spaces with equal what the full tables give."""
    for rs in synthetic_store.select(benchmarks="hmmt25"):
        tables = [ProblemTables.from_problem(p) for p in rs.problems]
        for kappa in (0.0, 2.5):
            want = max(float(t.step_cost.sum()) + kappa * float(t.finish_depth.sum())
                       for t in tables)
            assert rs.bounds.max_episode_tokens(kappa) == want
        assert rs.bounds.max_depth == max(t.max_depth for t in tables)
        assert rs.bounds.min_branches == min(t.n_branches for t in tables)
