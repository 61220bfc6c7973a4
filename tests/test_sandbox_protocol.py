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
import time

import pytest
from sandbox_util import ctl, need_jail

from autotts_discovery import jail
from autotts_discovery.sandbox import Limits, SandboxExecutor, evaluate_in_sandbox
from autotts_gym.contracts import SESSION_METHODS
from autotts_gym.core import Episode
from autotts_gym.harness import EpisodeFailure
from autotts_gym.harness import FailureKind as K
from autotts_gym.session import Session

N = 3


def _fake_child(payload: bytes, replies_then: bytes = b"", ready: bool = True,
                drip_seconds: float = 0.0) -> jail.Running:
    """A plain process in the jail's place (zygote and worker in one): it reads the wave
    message, writes ``ready`` (unless told not to) and ``payload`` (then, with
    ``drip_seconds``, a space every half millisecond for that long), then (after the parent's
    reply) ``replies_then``, answers ``end`` with ``reaped``, then lingers."""
    files = []
    for data in ((b'{"t":"ready"}\n' if ready else b"") + payload, replies_then):
        f = tempfile.NamedTemporaryFile(delete=False)
        f.write(data)
        f.close()
        files.append(f.name)
    p2c, c2p, p2z, z2p = os.pipe(), os.pipe(), os.pipe(), os.pipe()
    code = ("import os, sys, time\n"
            "d_in, d_out, z_in, z_out = map(int, sys.argv[1:])\n"
            f"first, then = (open(p, 'rb').read() for p in {files!r})\n"
            f"for p in {files!r}:\n"
            "    os.unlink(p)\n"
            "os.read(z_in, 1 << 20)\n"
            "os.write(d_out, first)\n"
            f"until = time.monotonic() + {drip_seconds!r}\n"
            "while time.monotonic() < until:\n"
            "    os.write(d_out, b' ')\n"
            "    t = time.monotonic() + 0.0005\n"
            "    while time.monotonic() < t:\n"
            "        pass\n"
            "if then:\n"
            "    os.read(d_in, 1 << 20)\n"
            "    os.write(d_out, then)\n"
            "if b'end' in os.read(z_in, 1 << 20):\n"
            "    os.write(z_out, b'{\"t\":\"reaped\"}\\n')\n"
            "time.sleep(3)\n")
    kids = (p2c[0], c2p[1], p2z[0], z2p[1])
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, kids)], pass_fds=kids,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for fd in kids:
        os.close(fd)
    return jail.Running(proc, p2c[1], c2p[0], 0, tempfile.TemporaryFile(), p2z[1], z2p[0])


def _run(running: jail.Running, store, limits: Limits | None = None):
    rs = store.load("Qwen3-4B", "aime24")
    sessions = [Session(Episode.from_seed(p, 0), 0.5) for p in rs.problems[:N]]
    ex = SandboxExecutor("", limits or Limits(reply_seconds=2))
    ex._jail = running
    ex._t0 = __import__("time").monotonic()
    for fd in (running.to_child, running.from_child, running.to_zygote,
               running.from_zygote):
        os.set_blocking(fd, False)
    try:
        return ex.solve(0.5, sessions), sessions
    finally:
        ex.close()


OPEN, ADVANCE = SESSION_METHODS.index("open"), SESSION_METHODS.index("advance")


def _batch(calls=(), done=(), g=0) -> bytes:
    return json.dumps({"t": "batch", "g": g, "calls": list(calls), "done": list(done)}
                      ).encode() + b"\n"


BAD = {
    "not_json": b"hello\n",
    "truncated": b'{"t": "batch", "g": 0, "calls": [0, 5',
    "giant_frame": b"[" + b"1," * 1_200_000,
    "deep_nesting": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "not_an_object": b"[1, 2, 3]\n",
    "unknown_type": b'{"t": "hello"}\n',
    "extra_field": b'{"t": "batch", "g": 0, "calls": [], "done": [], "x": 1}\n',
    "bad_group": _batch(g=7),
    "group_as_bool": _batch(g=True),
    "calls_not_list": b'{"t": "batch", "g": 0, "calls": {}, "done": []}\n',
    "calls_nested": _batch(calls=[[0, OPEN, 0]]),
    "calls_not_triples": _batch(calls=[0, OPEN]),
    "episode_as_string": _batch(calls=["0", OPEN, 0]),
    "episode_as_bool": _batch(calls=[True, OPEN, 0]),
    "episode_as_float": _batch(calls=[0.0, OPEN, 0]),
    "episode_out_of_range": _batch(calls=[N, OPEN, 0]),
    "negative_episode": _batch(calls=[-1, OPEN, 0]),
    "unknown_method": _batch(calls=[0, len(SESSION_METHODS), 0]),
    "negative_method": _batch(calls=[0, -1, 0]),
    "method_by_name": _batch(calls=[0, "gold_answer", 0]),
    "float_argument": _batch(calls=[0, ADVANCE, 0.5]),
    "huge_argument": _batch(calls=[0, ADVANCE, 2 ** 80]),
    "too_many_calls": _batch(calls=[0, OPEN, 0] * 1000),
    "answer_int": _batch(done=[[0, 17]]),
    "answer_list": _batch(done=[[0, ["17"]]]),
    "answer_long": _batch(done=[[0, "1" * 1000]]),
    "answer_twice": _batch(done=[[0, "1"], [0, "1"]]),
    "stop_early": _batch(done=[[0, "1"]]) + _batch(g=1) + _batch(g=0),
    "fail_unknown_kind": b'{"t": "fail", "kind": "ok", "ep": 0, "msg": "x"}\n',
    "fail_claims_escape": b'{"t": "fail", "kind": "timeout", "ep": 0, "msg": "x"}\n',
    "fail_bad_msg": b'{"t": "fail", "kind": "runtime_error", "ep": 0, "msg": 5}\n',
    "silence": b"",
    "nan": b'{"t": "batch", "g": 0, "calls": [NaN, 5, 0], "done": []}\n',
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_messages_fail_the_candidate(name, synthetic_store):
    with pytest.raises(EpisodeFailure) as e:
        _run(_fake_child(BAD[name]), synthetic_store)
    assert e.value.kind in {K.PROTOCOL, K.BAD_RETURN, K.CRASH, K.TIMEOUT}, e.value.message
    assert len(e.value.message) <= 300 and e.value.message.isprintable()


def test_a_batch_before_ready_fails_the_candidate(synthetic_store):
    with pytest.raises(EpisodeFailure) as e:
        _run(_fake_child(_batch(calls=[0, OPEN, 0]), ready=False), synthetic_store)
    assert e.value.kind is K.PROTOCOL and "expected ready" in e.value.message


def test_a_message_trickled_byte_by_byte_still_has_one_deadline(synthetic_store):
    """A worker that sends a message one byte every half millisecond, never ending it,
    times out after ``reply_seconds`` (2 s here): every byte ends a wait before it would
    sleep, and each wait keeps the message's deadline."""
    t0 = time.monotonic()
    with pytest.raises(EpisodeFailure) as e:
        _run(_fake_child(b'{"t": "batch", "g": 0, "calls": [', drip_seconds=20.0),
             synthetic_store)
    assert e.value.kind is K.TIMEOUT, e.value.message
    assert time.monotonic() - t0 < 8


@pytest.mark.parametrize("seed", range(12))
def test_random_bytes(seed, synthetic_store):
    rng = random.Random(seed)
    payload = bytes(rng.randrange(256) for _ in range(rng.choice([1, 50, 5000, 70000])))
    with pytest.raises(EpisodeFailure) as e:
        _run(_fake_child(payload + (b"\n" if seed % 2 else b"")), synthetic_store)
    assert e.value.kind in {K.PROTOCOL, K.CRASH, K.TIMEOUT}


def test_a_well_formed_exchange_is_served(synthetic_store):
    """The same fake child, speaking correctly, gets real answers (the fuzz is not vacuous)."""
    first = _batch(calls=[x for i in range(N) for x in (i, OPEN, 0)])
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


def test_allowed_submodules_a_candidate_imports_are_loaded_before_the_workers(
        synthetic_store):
    """``from scipy import stats`` is found in the code (parsed, not run) and imported once
    in the zygote, so no worker imports it again for its wave (over a second each here)."""
    need_jail()
    code = ctl("return f'{PRELOADED}:{stats.norm.cdf(0.0):.2f}'",
               "import sys\n\nPRELOADED = 'scipy.stats' in sys.modules\nfrom scipy import stats")
    res = evaluate_in_sandbox(code, synthetic_store, models="Qwen3-4B", seeds=[0, 1],
                              betas=(0.5,), trace=False)
    assert res.ok, res.message
    assert {r.answer for r in res.results.records} == {"True:0.50"}
    assert res.jail["waves"] == 2


@pytest.mark.parametrize("head, body", [
    ("import sys\nfrom typing import TYPE_CHECKING\n\n"
     "if TYPE_CHECKING:\n    import numpy\n    from scipy import stats\n", ""),
    ("import sys\nfrom autotts_gym.voting import vote\nfrom autotts_gym.baselines import cmc\n",
     "vote(['7', '7', '8'])\n"),
], ids=["imported only for type checking", "a controller that only votes"])
def test_the_jail_loads_no_numpy_or_scipy_the_controller_does_not_run(synthetic_store, head,
                                                                       body):
    """The zygote imports only what the candidate's executed imports name: an import under
    ``if TYPE_CHECKING:`` never runs, and the voting module's single-list counters and
    confidence (what CMC uses) need only the standard library. numpy and scipy would cost
    about a quarter of a second at every jail start."""
    need_jail()
    code = ctl(body + "return f\"{('numpy' in sys.modules, 'scipy' in sys.modules)}\"", head)
    res = evaluate_in_sandbox(code, synthetic_store, models="Qwen3-4B", seeds=[0],
                              betas=(0.5,), trace=False)
    assert res.ok, res.message
    assert {r.answer for r in res.results.records} == {"(False, False)"}
