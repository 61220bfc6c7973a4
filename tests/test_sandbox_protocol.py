"""The parent's side of the protocol under fuzz: whatever a child sends ends in a typed
failure of the candidate (never a traceback, a hang or a wrong score), and the jail's own
view of the world, asserted from inside."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile

import pytest
from sandbox_util import ctl, need_jail

from autotts_discovery import jail
from autotts_discovery.sandbox import Limits, SandboxExecutor, evaluate_in_sandbox
from autotts_gym.core import Episode
from autotts_gym.harness import EpisodeFailure
from autotts_gym.harness import FailureKind as K
from autotts_gym.session import Session

N = 3


def _fake_child(payload: bytes, replies_then: bytes = b"") -> jail.Running:
    """A plain process that reads the unit message, writes ``payload``, then (after the
    parent's reply) ``replies_then``, then lingers."""
    files = []
    for data in (payload, replies_then):
        f = tempfile.NamedTemporaryFile(delete=False)
        f.write(data)
        f.close()
        files.append(f.name)
    code = ("import os, sys, time\n"
            f"first, then = (open(p, 'rb').read() for p in {files!r})\n"
            f"for p in {files!r}:\n"
            "    os.unlink(p)\n"
            "os.read(0, 1 << 20)\n"
            "os.write(1, first)\n"
            "if then:\n"
            "    os.read(0, 1 << 20)\n"
            "    os.write(1, then)\n"
            "time.sleep(3)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return jail.Running(proc, os.dup(proc.stdin.fileno()), os.dup(proc.stdout.fileno()), 0,
                        tempfile.TemporaryFile())


def _run(running: jail.Running, store, limits: Limits | None = None):
    rs = store.load("Qwen3-4B", "aime24")
    sessions = [Session(Episode.from_seed(p, 0), 0.5) for p in rs.problems[:N]]
    ex = SandboxExecutor("", limits or Limits(reply_seconds=2))
    ex._jail = running
    ex._t0 = __import__("time").monotonic()
    os.set_blocking(running.to_child, False)
    os.set_blocking(running.from_child, False)
    try:
        return ex.solve(0.5, sessions), sessions
    finally:
        ex.close()
        for f in (running.proc.stdin, running.proc.stdout):
            f.close()


def _batch(calls=(), done=(), g=0) -> bytes:
    return json.dumps({"t": "batch", "g": g, "calls": list(calls), "done": list(done)}
                      ).encode() + b"\n"


BAD = {
    "not_json": b"hello\n",
    "truncated": b'{"t": "batch", "g": 0, "calls": [[0, "op',
    "giant_frame": b"[" + b"1," * 1_200_000,
    "deep_nesting": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "not_an_object": b"[1, 2, 3]\n",
    "unknown_type": b'{"t": "hello"}\n',
    "extra_field": b'{"t": "batch", "g": 0, "calls": [], "done": [], "x": 1}\n',
    "bad_group": _batch(g=7),
    "calls_not_list": b'{"t": "batch", "g": 0, "calls": {}, "done": []}\n',
    "episode_as_string": _batch(calls=[["0", "open", []]]),
    "episode_as_bool": _batch(calls=[[True, "open", []]]),
    "episode_as_float": _batch(calls=[[0.0, "open", []]]),
    "episode_out_of_range": _batch(calls=[[N, "open", []]]),
    "negative_episode": _batch(calls=[[-1, "open", []]]),
    "unknown_call": _batch(calls=[[0, "gold_answer", []]]),
    "dunder_call": _batch(calls=[[0, "__init__", []]]),
    "wrong_arity": _batch(calls=[[0, "advance", []]]),
    "float_argument": _batch(calls=[[0, "advance", [0.5]]]),
    "huge_argument": _batch(calls=[[0, "advance", [2 ** 80]]]),
    "too_many_calls": _batch(calls=[[0, "open", []]] * 100),
    "answer_int": _batch(done=[[0, 17]]),
    "answer_list": _batch(done=[[0, ["17"]]]),
    "answer_long": _batch(done=[[0, "1" * 1000]]),
    "answer_twice": _batch(done=[[0, "1"], [0, "1"]]),
    "stop_early": _batch(done=[[0, "1"]]) + _batch(g=1) + _batch(g=0),
    "fail_unknown_kind": b'{"t": "fail", "kind": "ok", "ep": 0, "msg": "x"}\n',
    "fail_claims_escape": b'{"t": "fail", "kind": "timeout", "ep": 0, "msg": "x"}\n',
    "fail_bad_msg": b'{"t": "fail", "kind": "runtime_error", "ep": 0, "msg": 5}\n',
    "silence": b"",
    "nan": b'{"t": "batch", "g": 0, "calls": [[NaN, "open", []]], "done": []}\n',
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_messages_fail_the_candidate(name, synthetic_store):
    with pytest.raises(EpisodeFailure) as e:
        _run(_fake_child(BAD[name]), synthetic_store)
    assert e.value.kind in {K.PROTOCOL, K.BAD_RETURN, K.CRASH, K.TIMEOUT}, e.value.message
    assert len(e.value.message) <= 300 and e.value.message.isprintable()


@pytest.mark.parametrize("seed", range(12))
def test_random_bytes(seed, synthetic_store):
    rng = random.Random(seed)
    payload = bytes(rng.randrange(256) for _ in range(rng.choice([1, 50, 5000, 70000])))
    with pytest.raises(EpisodeFailure) as e:
        _run(_fake_child(payload + (b"\n" if seed % 2 else b"")), synthetic_store)
    assert e.value.kind in {K.PROTOCOL, K.CRASH, K.TIMEOUT}


def test_a_well_formed_exchange_is_served(synthetic_store):
    """The same fake child, speaking correctly, gets real answers (the fuzz is not vacuous)."""
    first = _batch(calls=[[i, "open", []] for i in range(N)])
    answers, sessions = _run(_fake_child(first, _batch(done=[[i, "5"] for i in range(N)])),
                             synthetic_store)
    assert answers == ["5"] * N
    assert all(s.steps == 1 and s.tokens > 0 for s in sessions)


def test_the_jail_from_inside(synthetic_store):
    """No host /proc, no store, no network, no h5py; numpy and scipy importable; a fresh
    uid; a read-only library; a work dir the candidate cannot write once loaded (no state
    from one episode to the next)."""
    need_jail()
    code = ctl("""
        import json, os, socket
        facts = {"uid": os.getuid(), "root": sorted(os.listdir("/")),
                 "proc": os.path.exists("/proc/1"), "etc": os.path.exists("/etc/passwd"),
                 "home": os.environ.get("HOME"), "cwd": os.getcwd()}
        try:
            socket.socket()
            facts["socket"] = True
        except OSError:
            facts["socket"] = False
        for mod in ("h5py", "autotts_gym.store", "autotts_gym.synthetic", "numpy",
                    "scipy.special", "autotts_gym.voting"):
            try:
                __import__(mod)
                facts[mod] = True
            except ImportError:
                facts[mod] = False
        try:
            open("/sandbox/lib/x", "w")
            facts["lib_writable"] = True
        except OSError:
            facts["lib_writable"] = False
        try:
            open("w", "w").write("x")
            facts["work_writable"] = True
        except OSError:
            facts["work_writable"] = False
        return json.dumps(facts, separators=(",", ":"))
        """)
    res = evaluate_in_sandbox(code, synthetic_store, models="Qwen3-4B", seeds=[0],
                              betas=(0.5,), limits=Limits(max_answer_chars=1000))
    assert res.ok, res.message
    facts = json.loads(res.results.records[0].answer)
    assert facts["root"] == sorted(set(facts["root"]) & {"sandbox", "usr", "lib", "lib64",
                                                          "lib32", "libx32", "root"})
    assert "proc" not in facts["root"] and not facts["proc"] and not facts["etc"]
    assert facts["socket"] is False
    assert facts["h5py"] is False and facts["autotts_gym.store"] is False
    assert facts["autotts_gym.synthetic"] is False
    assert facts["numpy"] and facts["scipy.special"] and facts["autotts_gym.voting"]
    assert facts["lib_writable"] is False and facts["cwd"] == "/sandbox/work"
    assert facts["work_writable"] is False
    assert facts["uid"] != 0 and facts["uid"] == res.jail["uid"]


def test_no_jail_is_refused_not_weakened(monkeypatch, synthetic_store):
    monkeypatch.setenv("AUTOTTS_BWRAP", "/nonexistent/bwrap")
    jail._probe.cache_clear()
    try:
        with pytest.raises(jail.JailUnavailable, match="AUTOTTS_BWRAP=/nonexistent/bwrap"):
            evaluate_in_sandbox(ctl("return None"), synthetic_store, seeds=[0])
    finally:
        monkeypatch.undo()
        jail._probe.cache_clear()


def test_sandboxed_records_equal_the_in_process_harness(synthetic_store):
    """One scoring loop: CMC's code in the jail gives the harness's records exactly."""
    need_jail()
    from pathlib import Path

    from autotts_gym.harness import evaluate

    code = (Path(__file__).parents[1] / "autotts_gym" / "baselines" / "cmc.py").read_text()
    kw = {"models": "Qwen3-1.7B", "benchmarks": "aime24", "seeds": [0, 1],
          "betas": (0.0, 1.0)}
    res = evaluate_in_sandbox(code, synthetic_store, limits=Limits(lanes=7), **kw)
    ref = evaluate("cmc", synthetic_store, workers=1, fast=False, progress=False, trace=True,
                   **kw)
    assert res.ok, res.message
    def key(r):
        return (r.problem, r.seed, r.beta)

    got = {key(r): (r.answer, r.correct, r.tokens, r.steps) for r in res.results.records}
    want = {key(r): (r.answer, r.correct, r.tokens, r.steps) for r in ref.records}
    assert got == want and len(got) == 120
    assert res.results.traces.keys() == {
        (m, b, "candidate", beta, seed, p) for (m, b, _, beta, seed, p) in ref.traces}


def test_release_style_controller_runs_in_the_jail(tmp_path, synthetic_store):
    """Any style the project's one loader accepts runs jailed: a release-style class that
    imports numpy and scipy gives the in-process records."""
    need_jail()
    from autotts_gym.harness import evaluate

    code = '''
import numpy as np
from scipy.stats import beta as beta_dist


class Release:
    def __init__(self, config=None):
        self.config = dict(config or {})

    def solve(self, question):
        finals = []
        while len(finals) < 8:
            try:
                finals.append(question.get_new_branch_final_answer())
            except (ValueError, IndexError):
                break
        values, counts = np.unique(np.array(finals), return_counts=True)
        top = int(np.argmax(counts))
        assert beta_dist.cdf(0.5, counts[top] + 1, 1) <= 1.0
        return str(values[top]) if finals else None
'''
    path = tmp_path / "release_one.py"
    path.write_text(code)
    kw = {"models": "Qwen3-4B", "benchmarks": "aime24", "seeds": [0], "betas": (0.5,)}
    res = evaluate_in_sandbox(code, synthetic_store, **kw)
    assert res.ok, res.message
    ref = evaluate(str(path), synthetic_store, workers=1, fast=False, progress=False, **kw)
    got = {r.problem: (r.answer, r.tokens, r.steps) for r in res.results.records}
    assert got == {r.problem: (r.answer, r.tokens, r.steps) for r in ref.records}
