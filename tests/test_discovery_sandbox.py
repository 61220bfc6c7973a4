"""Red team: hostile controllers against the sandbox (runtime barrier, static check off)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from autotts_discovery.codecheck import check_code
from autotts_discovery.sandbox import Limits, evaluate_in_sandbox

LIMITS = Limits(cpu_seconds=4, memory_mb=512, wall_seconds=40, episode_seconds=4)


def _ctl(body: str) -> str:
    """A controller whose solve runs ``body`` (which may return)."""
    body = textwrap.dedent(body).strip("\n")
    return ("class C:\n    def solve(self, session):\n" + textwrap.indent(body, " " * 8)
            + "\n\n\ndef make_controller(beta):\n    return C()\n")


def _peek(attempt: str) -> str:
    """A peeking controller: returns whatever the attempt found, else 'nothing'."""
    attempt = textwrap.dedent(attempt).strip("\n")
    return _ctl("try:\n" + textwrap.indent(attempt, "    ")
                + "\nexcept BaseException as e:\n    found = 'blocked: ' + type(e).__name__\n"
                "return str(found)[:200] if found else 'nothing'\n")


PEEKERS = {
    "gc": """
        import gc
        found = [o["gold_answer"] for o in gc.get_objects()
                 if isinstance(o, dict) and "gold_answer" in o][:1]
        found = found[0] if found else None
        """,
    "frames": """
        import sys
        f, found = sys._getframe(), None
        while f is not None:
            for v in f.f_locals.values():
                if hasattr(v, "gold_answer"):
                    found = v.gold_answer
            f = f.f_back
        """,
    "introspection": """
        found = None
        for name in dir(session):
            v = getattr(session, name, None)
            for inner in getattr(v, "__dict__", {}).values():
                if hasattr(inner, "gold_answer"):
                    found = inner.gold_answer
        """,
    "store_loader": """
        from autotts_gym.data import open_store
        found = open_store().select()[0].problems[0].gold_answer
        """,
    "files": """
        found = open("/work/shared/replay/autotts/Qwen3-4B/aime24.json").read(100)
        """,
    "environment": """
        import os
        found = os.environ.get("AUTOTTS_REPLAY_DIR") or os.environ.get("HOME")
        """,
}

FAILERS = {
    "endless_loop": ("while True:\n    pass\n", "timeout"),
    "memory_bomb": ("x = []\nwhile True:\n    x.append(bytearray(50_000_000))\n", "memory"),
    "fork_bomb": ("import os\nwhile True:\n    os.fork()\n", "escape"),
    "write_outside": ("open('/tmp/autotts_sandbox_pwned', 'w').write('x')\nreturn 'x'\n",
                      "escape"),
    "network": ("import socket\nsocket.socket().connect(('127.0.0.1', 9))\nreturn 'x'\n",
                "escape"),
    "subprocess": ("import os\nos.system('id > /tmp/autotts_sandbox_pwned2')\nreturn 'x'\n",
                   "escape"),
    "non_string": ("session.open()\nreturn 12\n", "bad_return"),
}


@pytest.mark.parametrize("name", sorted(PEEKERS))
def test_peeking_controllers_find_nothing(name, synthetic_store):
    code = _peek(PEEKERS[name])
    assert not check_code(code).ok or name in ("introspection", "environment")
    res = evaluate_in_sandbox(code, synthetic_store, models="Qwen3-4B", benchmarks="aime24",
                              seeds=[0], betas=(0.5,), limits=LIMITS)
    assert res.ok, (res.kind, res.message)
    assert len(res.results.records) == 30
    assert not any(r.correct for r in res.results.records)  # accuracy 0
    answers = {r.answer for r in res.results.records}
    assert not any("/work" in a or "gold" in a for a in answers), answers


@pytest.mark.parametrize("name", sorted(FAILERS))
def test_escaping_controllers_are_stopped_with_a_record(name, synthetic_store):
    body, kind = FAILERS[name]
    res = evaluate_in_sandbox(_ctl(body), synthetic_store, models="Qwen3-4B", benchmarks="aime24",
                              seeds=[0], betas=(0.5,), limits=LIMITS)
    assert not res.ok and res.kind == kind, (res.kind, res.message)
    assert "problem 0" in res.message
    assert not Path("/tmp/autotts_sandbox_pwned").exists()
    assert not Path("/tmp/autotts_sandbox_pwned2").exists()


def test_patching_the_session_does_not_change_accounting(synthetic_store):
    code = _ctl("""
        type(session).tokens = property(lambda s: 0.0)
        answers = [session.read() for _ in range(4)]
        assert session.tokens == 0.0
        return answers[0]
        """)
    res = evaluate_in_sandbox(code, synthetic_store, models="Qwen3-4B", benchmarks="aime24",
                              seeds=[0], betas=(0.5,), limits=LIMITS)
    assert res.ok
    from autotts_gym.core import Episode

    rs = synthetic_store.load("Qwen3-4B", "aime24")
    for r in res.results.records:
        ep = Episode.from_seed(rs.problems[r.problem], 0)
        for _ in range(4):
            ep.read()
        assert r.tokens == ep.tokens > 0  # the parent charged the real cost


def test_cmc_in_sandbox_equals_harness(synthetic_store):
    """The sandbox's records equal the in-process harness for a real controller."""
    from autotts_gym.harness import evaluate

    code = Path(__file__).parents[1].joinpath("autotts_gym/baselines/cmc.py").read_text()
    res = evaluate_in_sandbox(code, synthetic_store, models="Qwen3-1.7B", benchmarks="aime24",
                              seeds=[0, 1], betas=(0.5,), limits=LIMITS)
    ref = evaluate("cmc", synthetic_store, models="Qwen3-1.7B", benchmarks="aime24", seeds=[0, 1],
                   betas=(0.5,), workers=1, progress=False)
    assert res.ok
    import os

    if os.getuid() == 0:  # started as root, the child drops to nobody in its own netns
        assert res.applied == {"netns": True, "user": 65534}
    got = {(r.problem, r.seed): (r.answer, r.tokens, r.steps) for r in res.results.records}
    want = {(r.problem, r.seed): (r.answer, r.tokens, r.steps) for r in ref.records}
    assert got == want
