"""`autotts collect` through the real openai client against a local completions server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
from localhttp import JSONServer

from autotts_cli.main import main as cli
from autotts_gym.collect.extract import make_extractor
from autotts_gym.collect.normalize import normalize_math
from autotts_gym.collect.questions import Question, load_questions
from autotts_gym.collect.runner import CollectConfig, CompletionsClient, collect
from autotts_gym.store import ReplayStore

TOKEN = "§ "


def trajectory_length(base_seed: int) -> int:
    return 700 + base_seed % 2300


def final_answer(base_seed: int) -> str:
    return "42" if base_seed % 3 else "7"


class CompletionsServer(JSONServer):
    """Answers /v1/completions like an OpenAI-compatible server, deterministically: a
    trajectory (identified by its base seed) is T tokens of filler, then a boxed answer;
    a probe (prompt ending in the forcing suffix) answers from the depth reached."""

    def __init__(self, failures: list[int] | None = None, delay: float = 0.0):
        self.failures = list(failures or [])
        self.delay = delay
        self.calls = 0
        super().__init__(self._respond)
        self.url = self.root + "/v1"

    def _respond(self, path: str, body: dict, headers: dict) -> tuple[int, dict]:
        self.calls += 1
        if self.failures:
            status = self.failures.pop(0)
            return status, {"error": {"message": f"injected {status}"}}
        time.sleep(self.delay)
        return 200, self.answer(body)

    @staticmethod
    def answer(body: dict) -> dict:
        prompt, max_tokens = body["prompt"], int(body["max_tokens"])
        done = prompt.count(TOKEN)
        if prompt.endswith("\\boxed{"):
            text, used, finish = f"{10 + done // 500}}}", 2, "stop"
        else:
            base = int(body["seed"]) - done
            total = trajectory_length(base)
            used = min(max_tokens, total - done)
            text = TOKEN * used
            finish = "length"
            if done + used >= total:
                text += f" so \\boxed{{{final_answer(base)}}}"
                finish = "stop"
        return {"id": "cmpl-test", "object": "text_completion", "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "text": text, "finish_reason": finish,
                             "logprobs": None}],
                "usage": {"prompt_tokens": 1, "completion_tokens": used,
                          "total_tokens": used + 1}}


@pytest.fixture
def server():
    s = CompletionsServer()
    yield s
    s.close()


def _questions(tmp_path, n=3):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i}?", "answer": "42"}) + "\n"
                            for i in range(n)))
    return path


def test_interval_boundaries_tokens_and_probes(tmp_path, server):
    qs = [Question("What is 1?", "42"), Question("What is 2?", "7")]
    cfg = CollectConfig(model="tiny/model-1", benchmark="toy", n=6, concurrency=3)
    client = CompletionsClient(server.url, cfg.model)
    path = collect(qs, client, tmp_path, cfg, progress=False, log=lambda *a: None)
    rs = ReplayStore(tmp_path).load("tiny--model-1", "toy")
    assert path.is_file() and len(rs.problems) == 2 and rs.normalizer == "none"
    from autotts_gym.collect.runner import _seed

    for q, p in enumerate(rs.problems):
        assert p.gold_answer == qs[q].answer and p.n_branches == 6
        for t in range(6):
            T = trajectory_length(_seed(cfg, q, t))
            L = -(-T // 500) - 1  # one probe after every full interval before the end
            assert p.tokens[t] == T and p.n_probes[t] == L
            assert [p.vocab[a] for a in p.branch_probes(t)] == [str(10 + k) for k in
                                                                range(1, L + 1)]
            assert p.vocab[p.final[t]] == final_answer(_seed(cfg, q, t))
    assert "probe_suffix" in rs.extra_attrs and rs.extra_attrs["interval"] == "500"


def test_retries_after_429_and_500(tmp_path):
    s = CompletionsServer(failures=[429, 500])
    try:
        cfg = CollectConfig(model="m", benchmark="b", n=1, concurrency=1)
        collect([Question("q", "42")], CompletionsClient(s.url, "m"), tmp_path, cfg,
                progress=False, log=lambda *a: None)
    finally:
        s.close()
    assert s.calls >= 3 and not s.failures
    assert ReplayStore(tmp_path).load("m", "b").problems[0].n_branches == 1


def test_extraction_rules():
    boxed = make_extractor("boxed")
    assert boxed("a \\boxed{\\frac{1}{2}} b \\boxed{x^{2}}") == "x^{2}"
    assert boxed("no answer here") == "ERR"
    assert make_extractor("regex:ANSWER: (\\d+)")("ANSWER: 3 ... ANSWER: 5") == "5"
    assert make_extractor("regex:ANSWER: (\\d+)")("none") == "ERR"
    letters = make_extractor("letters")
    assert letters("so the answer is (C).") == "C" and letters("\\boxed{B}") == "B"
    assert letters("I am unsure") == "ERR"
    with pytest.raises(ValueError, match="regular expression"):
        make_extractor("regex:(")
    assert {normalize_math(s) for s in ["1/2", "\\frac{1}{2}", "0.5", "\\dfrac12"]} == {"1/2"}
    assert normalize_math("x^2") == "x^2"


def test_question_file_errors(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "a", "answer": "1"}\n{"question": "b"}\n')
    with pytest.raises(ValueError, match="line 2: column 'answer'"):
        load_questions(bad)
    csvf = tmp_path / "q.csv"
    csvf.write_text("problem,solution\nwhat,1\n")
    assert load_questions(csvf, "problem", "solution")[0] == Question("what", "1")
    with pytest.raises(ValueError, match="column 'question' is missing"):
        load_questions(csvf)


def test_token_cap_then_resume_and_kill(tmp_path):
    s = CompletionsServer(delay=0.004)
    qfile = _questions(tmp_path)
    out = tmp_path / "store"
    cmd = [sys.executable, "-m", "autotts_cli.main", "collect", "--base-url", s.url,
           "--model", "toy", "--questions", str(qfile), "--out", str(out), "--n", "8",
           "--concurrency", "2", "--no-progress"]
    try:
        # a token cap stops the run with a journal and no store
        r = subprocess.run([*cmd, "--max-tokens-total", "5000"], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 3 and "token cap" in r.stdout + r.stderr
        assert not (out / "toy" / "q.h5").exists()
        # resume without the cap, kill it mid-way, resume again
        proc = subprocess.Popen([*cmd, "--resume"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        journal = out / ".collect" / "toy" / "q.journal.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline and sum(1 for _ in open(journal)) < 8:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (out / "toy" / "q.h5").exists()
        r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    finally:
        s.close()
    keys = [(json.loads(line)["q"], json.loads(line)["t"]) for line in open(journal)
            if line.strip().endswith("}")]
    assert sorted(set(keys)) == [(q, t) for q in range(3) for t in range(8)]
    rs = ReplayStore(out).load("toy", "q")
    assert [p.n_branches for p in rs.problems] == [8, 8, 8]
    assert cli(["data", "info", str(out)]) == 0
    env = gym.make("autotts_gym:AutoTTS-v0", replay_dir=str(out), model="toy",
                   benchmark="q", max_width=8)
    env.reset(seed=0)
    obs, r, _, _, _ = env.step(1)
    assert obs["depth"][0] == 1 and np.isfinite(r)
