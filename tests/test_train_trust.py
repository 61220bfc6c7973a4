"""Training that can be trusted: validated configs, one writer, the best score inside
best.zip, the final weights evaluated, finished runs left alone, kill-then-resume never
lowering the best score, and the bundled policy's provenance."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import yaml

from autotts_gym.protocol import mean_objective
from autotts_rl.train import (
    RunFinished,
    TrainConfig,
    TrainConfigError,
    read_best_records,
    read_score,
    replaces_best,
    train,
)

ROOT = Path(__file__).resolve().parents[1]


def _cfg(store_dir, **kw) -> TrainConfig:
    base = dict(env="macro", replay_dir=str(store_dir), models=["Qwen3-4B"], n_envs=1,
                vec_env="dummy", total_timesteps=256, n_steps=64, batch_size=64,
                n_epochs=1, checkpoint_every=128, eval_every=128, eval_seeds=1,
                eval_betas=[0.5], max_width=16, max_rounds=20)
    base.update(kw)
    return TrainConfig(**base)


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "autotts_cli", *args], cwd=ROOT, check=False,
                          capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.parametrize("text, needle", [
    ("total_timesteps: abc\n", "'total_timesteps' must be an int, got 'abc'"),
    ("n_envs: 0\n", "'n_envs' must be a positive integer, got 0"),
    ("learning_rate: fast\n", "'learning_rate' must be a float"),
    ("net_arch: [64, 0]\n", "'net_arch' must be a non-empty list"),
    ("eval_betas: [2.0]\n", "'eval_betas' must be a non-empty list of betas"),
    ("search: [aime24]\nheld_out: [aime24, hmmt25]\n", "both in the search set and held out"),
    ("lerning_rate: 0.1\n", "unknown setting(s) lerning_rate"),
    ("env: [1\n", "not valid YAML"),
    ("- 1\n", "expected a mapping"),
])
def test_bad_configs_are_one_line_errors(tmp_path, text, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(TrainConfigError) as e:
        TrainConfig.from_yaml(cfg)
    assert needle in str(e.value) and "\n" not in str(e.value)
    r = _cli("train", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_flags_override_the_config(tmp_path):
    r = _cli("train", "--out", str(tmp_path / "r"), "--n-envs", "0")
    assert r.returncode == 2 and "--n-envs" in r.stderr and "Traceback" not in r.stderr


def test_best_inside_zip_final_evaluated_finished_resume(tmp_path, synthetic_store_dir):
    out = tmp_path / "run"
    train(_cfg(synthetic_store_dir, total_timesteps=200), out)
    evals = [json.loads(line) for line in (out / "evals.jsonl").read_text().splitlines()]
    assert evals[-1]["timesteps"] == 256  # the final weights (not a multiple of 128+64)
    best = read_score(out / "best.zip")
    assert best in evals  # the stored score is one of the run's evaluations
    recs = read_best_records(out / "best.zip")
    assert len(recs) == 30 and mean_objective(recs) == pytest.approx(best["objective"])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["best_objective"] == best["objective"] and meta["num_timesteps"] == 256
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(RunFinished, match="already finished"):
        train(TrainConfig(), out, resume=True)
    r = _cli("train", "--out", str(out), "--resume")
    assert r.returncode == 0 and "already finished" in r.stdout, r.stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # nothing changed, nothing appended


def test_second_writer_is_refused(tmp_path, synthetic_store_dir):
    from autotts_gym.runlock import RunLock, RunLockedError

    out = tmp_path / "run"
    with RunLock(out, "train"), pytest.raises(RunLockedError, match="in use by pid"):
        train(_cfg(synthetic_store_dir), out)


def test_kill_then_resume_never_lowers_the_best(tmp_path, synthetic_store_dir):
    """SIGKILL a training process at random points, resume, repeat: best.zip only ever
    changes to an evaluation the selection rule prefers over the one it held (the rule
    sees the episodes stored inside the zip), and a worse model never overwrites it."""
    cfg = _cfg(synthetic_store_dir, total_timesteps=1536, eval_every=64, checkpoint_every=192,
               seed=3)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(cfg.to_yaml())
    out = tmp_path / "run"
    rng = np.random.default_rng(0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    held = None  # the episodes behind best.zip after the last attempt
    args = ["train", "--config", str(cfg_path), "--out", str(out), "--no-progress"]
    kills = 0
    for _attempt in range(8):  # four random kills, then let it finish
        proc = subprocess.Popen([sys.executable, "-m", "autotts_cli", *args], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=float(rng.uniform(3, 15)) if kills < 4 else 600)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        recs = read_best_records(out / "best.zip") if (out / "best.zip").is_file() else None
        if recs is not None and held is not None and recs != held:
            assert replaces_best(held, recs)
        held = recs if recs is not None else held
        if proc.returncode == 0 and (out / "final.zip").is_file():
            break
        if (out / "checkpoints" / "last.zip").is_file():
            args = ["train", "--out", str(out), "--resume", "--no-progress"]
    else:
        pytest.fail("training never finished")
    evals = [json.loads(line) for line in (out / "evals.jsonl").read_text().splitlines()]
    assert read_score(out / "best.zip") in evals
    assert json.loads((out / "meta.json").read_text())["num_timesteps"] >= 1536


def test_bundled_policy_provenance():
    """The bundled policy's files agree with each other: config, seed, steps, the stored
    score and the hashes of the data it was trained on."""
    pre = resources.files("autotts_rl.pretrained")
    meta = json.loads(pre.joinpath("meta.json").read_text())
    cfg = TrainConfig.from_dict(yaml.safe_load(pre.joinpath("config.yaml").read_text()))
    assert cfg.search == [meta["search_benchmark"]] == ["aime24"] and cfg.env == "macro"
    assert meta["seed"] == cfg.seed
    evals = [json.loads(line) for line in pre.joinpath("evals.jsonl").read_text().splitlines()]
    if meta.get("stopped_early"):  # a run stopped at its time budget says so
        assert evals[-1]["timesteps"] <= meta["num_timesteps"] < cfg.total_timesteps
    else:  # a finished run scored its final weights
        assert evals[-1]["timesteps"] == meta["num_timesteps"] >= cfg.total_timesteps
    policy = Path(str(pre.joinpath("policy.zip")))
    best = read_score(policy)  # the weights carry the score that chose them
    assert best in evals
    assert meta["best_objective"] == best["objective"]
    assert meta["best_timesteps"] == best["timesteps"]
    assert meta["policy_sha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()
    hashes = meta["data_sha256"]
    assert set(hashes) == {f"{m}/aime24" for m in ("Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B")}
    assert all(len(h) == 64 for h in hashes.values())


def test_bundled_policy_data_hashes_match_the_real_store(real_store):
    from autotts_rl.train import data_hashes

    meta = json.loads(resources.files("autotts_rl.pretrained").joinpath("meta.json")
                      .read_text())
    assert data_hashes(real_store, None, "aime24") == meta["data_sha256"]
