"""``autotts discover run|report|accept``: split flags, honest exits, locked runs, the
recorded data source, the held-out guard, typed rounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox_util import need_jail

from autotts_discovery.history import History
from autotts_discovery.prompt import build_prompt, guard
from autotts_discovery.rounds import Round, RoundKind, best, parse_kind
from autotts_gym.harness import FailureKind
from autotts_gym.protocol import Split
from autotts_gym.runlock import RunLock

ROOT = Path(__file__).resolve().parents[1]


def autotts(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autotts_cli", *args], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=timeout, check=False)


def _one_line_error(p: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.startswith("autotts")]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.fixture(scope="module")
def own_store(tmp_path_factory, synthetic_store_dir) -> Path:
    """A store of non-default names (as ``autotts collect`` makes): mymodel x mybench,
    otherbench."""
    import dataclasses

    from autotts_gym.store import ReplayStore, write_replay_set

    root = tmp_path_factory.mktemp("store")
    src = ReplayStore(synthetic_store_dir).load("Qwen3-4B", "aime24")
    for bench in ("mybench", "otherbench"):
        rs = dataclasses.replace(src, model="mymodel", benchmark=bench, synthetic=False)
        write_replay_set(root / "mymodel" / f"{bench}.h5", rs)
    return root


def test_reports_and_accepts_never_create_what_they_read(tmp_path):
    missing = tmp_path / "nope"
    for args in (["report", str(missing)], ["accept", str(missing), "--round", "1"]):
        p = autotts("discover", *args)
        assert p.returncode == 1 and "not a discovery run" in _one_line_error(p)
        assert not missing.exists()


def test_zero_rounds_is_a_usage_error(tmp_path):
    p = autotts("discover", "--rounds", "0", "--out", str(tmp_path / "run"))
    assert p.returncode == 2 and "--rounds 0" in _one_line_error(p)
    assert not (tmp_path / "run").exists()


def test_default_split_names_what_the_store_has(tmp_path, own_store):
    p = autotts("discover", "run", "--out", str(tmp_path / "run"), "--replay-dir",
                str(own_store), "--rounds", "1")
    assert p.returncode == 2, p.stderr
    line = _one_line_error(p)
    assert "mybench" in line and "otherbench" in line and "--search" in line


def test_collect_style_store_discover_then_report(tmp_path, own_store):
    """Non-default names end to end; report reuses the recorded store and split."""
    need_jail()
    run = tmp_path / "run"
    p = autotts("discover", "run", "--out", str(run), "--replay-dir", str(own_store),
                "--search", "mybench", "--held-out", "otherbench", "--rounds", "2",
                "--seeds", "0", "--betas", "0.5")
    assert p.returncode == 0, p.stderr
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "done"
    assert state["config"]["search"] == ["mybench"]
    assert state["config"]["held_out"] == ["otherbench"]
    assert state["data"] == {"store": str(own_store.resolve()), "synthetic": False}
    cells = History(run).load(1)["results.json"]["cells"]
    assert {c["benchmark"] for c in cells} == {"mybench"}
    for r in History(run).rounds():
        assert "otherbench" not in r["prompt.md"]
    rep = autotts("discover", "report", str(run), "--seeds", "0", "--betas", "0.5")
    assert rep.returncode == 0, rep.stderr
    assert str(own_store.resolve()) in rep.stderr  # the recorded data source, reused
    assert "otherbench" in rep.stdout and "| mybench" not in rep.stdout


def test_every_round_failing_exits_non_zero(tmp_path, synthetic_store_dir):
    need_jail()
    run = tmp_path / "run"
    common = ("--explorer", "anthropic", "--model", "claude-test", "--base-url",
              "http://127.0.0.1:9", "--out", str(run), "--replay-dir", str(synthetic_store_dir),
              "--rounds", "1", "--seeds", "0", "--betas", "0.5")
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    p = subprocess.run([sys.executable, "-m", "autotts_cli", "discover", *common], cwd=ROOT,
                       env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                       timeout=300, check=False)
    assert p.returncode == 1 and "ANTHROPIC_API_KEY" in _one_line_error(p)
    p = autotts("discover", *common, ANTHROPIC_API_KEY="test-key")  # nothing listens there
    assert p.returncode == 1 and "no round produced a working controller" in \
        _one_line_error(p)
    assert json.loads((run / "state.json").read_text())["status"] == "failed"
    assert History(run).load(1)["record.json"]["kind"] == "api_error"


def test_one_writer_per_run_directory(tmp_path, synthetic_store_dir):
    need_jail()
    run = tmp_path / "run"
    with RunLock(run, "test holder"):
        p = autotts("discover", "--out", str(run), "--replay-dir", str(synthetic_store_dir),
                    "--rounds", "1", "--seeds", "0", "--betas", "0.5")
        assert p.returncode == 1
        assert f"in use by pid {os.getpid()}" in _one_line_error(p)
        assert not (run / "rounds").exists()
    p = autotts("discover", "--out", str(run), "--replay-dir", str(synthetic_store_dir),
                "--rounds", "1", "--seeds", "0", "--betas", "0.5")
    assert p.returncode == 0, p.stderr
    assert not (run / ".lock").exists()


def test_held_out_guard_checks_project_text_not_candidate_code():
    split = Split(("aime24",), ("aime25", "hmmt25"))
    code = "# tuned on hmmt25 style problems\ndef make_controller(beta):\n    return None\n"
    files = {"index": 1, "controller.py": code,
             "record.json": {"round": 1, "kind": "ok"},
             "results.json": {"score": 0.5, "per_beta": [
                 {"beta": 0.5, "accuracy_pct": 50.0, "mean_tokens": 1e5,
                  "tokens_vs_sc64": 0.1, "objective": 0.4}]}}
    text = build_prompt([Round.from_files(files)], split, baseline="- aime25: 3 tokens")
    assert "tuned on hmmt25" in text  # the candidate's own words pass
    assert "aime25" not in text and "[held-out]" in text  # the project's text is guarded
    assert guard("nothing here", split) == "nothing here"


def test_rounds_are_typed_and_best_is_one_rule():
    rounds = [Round(1, RoundKind.OK, score=0.2), Round(2, FailureKind.TIMEOUT),
              Round(3, RoundKind.OK, score=0.5), Round(4, RoundKind.OK, score=0.5),
              Round(5, RoundKind.REJECTED)]
    assert best(rounds).index == 3 and best(rounds[:2]).index == 1
    assert best([Round(1, FailureKind.CRASH)]) is None
    assert parse_kind("timeout") is FailureKind.TIMEOUT
    assert parse_kind("no_code") is RoundKind.NO_CODE
    with pytest.raises(ValueError):
        parse_kind("timeout-ish")


def test_eval_sandbox_runs_codecheck_as_advice(tmp_path, synthetic_store_dir):
    need_jail()
    f = tmp_path / "honest_but_flagged.py"
    f.write_text("import os  # the static check refuses os; the jail is the boundary\n\n\n"
                 "class C:\n    def solve(self, session):\n        return session.open()[0]\n\n\n"
                 "def make_controller(beta):\n    return C()\n")
    common = ("eval", "--sandbox", "--controller", str(f), "--replay-dir",
              str(synthetic_store_dir), "--models", "Qwen3-4B", "--benchmarks", "aime24",
              "--seeds", "0", "--betas", "0.5", "--baselines", "", "--no-progress")
    p = autotts(*common, "--out", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    assert "codecheck (advisory)" in p.stderr and "'os'" in p.stderr
    assert "30 episodes" in p.stdout


@pytest.mark.parametrize("command", ["eval", "discover"])
def test_no_jail_refuses_with_one_line(tmp_path, synthetic_store_dir, command):
    f = tmp_path / "c.py"
    f.write_text("def make_controller(beta):\n    return None\n")
    args = (["eval", "--sandbox", "--controller", str(f), "--seeds", "0", "--baselines", ""]
            if command == "eval" else ["discover", "--rounds", "1", "--seeds", "0"])
    p = autotts(*args, "--replay-dir", str(synthetic_store_dir), "--out",
                str(tmp_path / "out"), AUTOTTS_BWRAP="/nonexistent/bwrap")
    assert p.returncode != 0
    assert "AUTOTTS_BWRAP=/nonexistent/bwrap" in _one_line_error(p)
    assert not (tmp_path / "out" / "rounds").exists()


def test_seed_controllers_are_scored_first_and_seen_by_the_explorer(tmp_path,
                                                                    synthetic_store_dir):
    """``discover run --controller FILE.py:CLASS --controller-config``: a release-style
    class (numpy, scipy) is scored in the jail as round 1 with its config, before the
    explorer's round 2, whose prompt shows it; a bad seed fails before any work."""
    need_jail()
    run = tmp_path / "run"
    fixture = ROOT / "tests" / "fixtures" / "release_baselines.py"
    common = ("--explorer", "offline", "--out", str(run), "--replay-dir",
              str(synthetic_store_dir), "--models", "Qwen3-4B", "--seeds", "0",
              "--betas", "0.5")
    p = autotts("discover", "run", *common, "--rounds", "1",
                "--controller", f"{fixture}:SelfConsistency",
                "--controller-config", "n_samples=4")
    assert p.returncode == 0, p.stderr
    h = History(run)
    assert h.indices() == [1, 2]
    seed = h.load(1)
    assert seed["record.json"]["kind"] == "ok" and "SelfConsistency" in seed["controller.py"]
    steps = [json.loads(x)["steps"] for x in seed["records.jsonl"].splitlines()]
    assert steps and max(steps) <= 4  # the config reached the class: 4 reads per episode
    assert "SelfConsistency" in h.load(2)["prompt.md"]
    state = json.loads((run / "state.json").read_text())
    assert state["config"]["seed_controllers"][0]["config"] == {"n_samples": 4}
    p = autotts("discover", "run", *common, "--rounds", "1", "--out", str(tmp_path / "r2"),
                "--controller", str(tmp_path / "missing.py"))
    assert p.returncode == 2 and "seed controller must be a file" in _one_line_error(p)
    assert not (tmp_path / "r2").exists()
