"""Red team: state carried from one episode to the next inside one jail.

The same problem is replayed under many seeds, betas and models, so a candidate that
remembers what it saw (the majority answer of a problem it recognises from its answers)
answers later episodes at almost no tokens: a forged score. The jail plays a unit in
waves, at most one episode of a problem per wave, each wave in a fresh worker process;
episodes of one wave (different problems) share the candidate's module. So no episode may
meet anything left by an earlier (or concurrent) episode of its own problem, whatever the
channel.
"""

from __future__ import annotations

import textwrap

import pytest
from sandbox_util import need_jail

from autotts_discovery.codecheck import check_code
from autotts_discovery.sandbox import Limits, evaluate_in_sandbox

RECALL = '''
MEMORY = {}  # the sorted answers of every branch of a problem -> episodes of it seen so far


class Recall:
    def solve(self, session):
        answers = []
        while session.branches_left:
            answers.append(session.read())
        key = tuple(sorted(a for a in answers if a is not None))
        seen = MEMORY.get(key, 0)
        MEMORY[key] = seen + 1
        return str(seen)


def make_controller(beta):
    return Recall()
'''


@pytest.mark.parametrize("lanes", [1, Limits().lanes])
def test_no_episode_recalls_its_own_problem(synthetic_store, lanes):
    """A controller that recognises a problem exactly (all its branches' answers, the same
    under every seed) and answers how often it met it before: always 0, over seeds and
    betas, one lane or many."""
    need_jail()
    assert check_code(RECALL).ok, check_code(RECALL).message
    res = evaluate_in_sandbox(RECALL, synthetic_store, models="Qwen3-4B", benchmarks="aime24",
                              seeds=[0, 1, 2], betas=(0.0, 1.0), limits=Limits(lanes=lanes),
                              trace=False)
    assert res.ok, res.message
    assert len(res.results.records) == 180
    assert {r.answer for r in res.results.records} == {"0"}


def test_the_recall_controller_does_recall_in_process(synthetic_store):
    """The same code in one process does recall (the test above is not vacuous)."""
    import types

    from autotts_gym.controllers import load_controller
    from autotts_gym.harness import evaluate

    module = types.ModuleType("recall")
    exec(RECALL, vars(module))
    res = evaluate(load_controller(module), synthetic_store, models="Qwen3-4B",
                   benchmarks="aime24", seeds=[0, 1], betas=(0.5,), workers=1, fast=False,
                   progress=False, reference=None)
    assert {r.answer for r in res.records if r.seed == 1} == {"1"}


def _counter(get: str, put: str, head: str = "", init: str = "") -> str:
    """A controller answering how many episodes it saw before (through one channel): it
    reads the count, writes count + 1, makes a session call (so concurrent lanes run),
    and answers the count."""
    body = (f"n = {get}\n{put}\nsession.open()\nreturn str(n)\n")
    return (textwrap.dedent(head).strip("\n") + "\n\n\nclass C:\n"
            + textwrap.indent(textwrap.dedent(init).strip("\n") or "pass", "    ")
            + "\n\n    def solve(self, session):\n"
            + textwrap.indent(body, " " * 8) + "\n\ndef make_controller(beta):\n"
            "    return C()\n")


CHANNELS = {
    "session_class_attribute": _counter("SEEN(type(session))", "type(session).seen = n + 1",
                                        "def SEEN(c):\n    try:\n        return c.seen\n"
                                        "    except AttributeError:\n        return 0"),
    "stdlib_class_attribute": _counter("SEEN(random.Random)", "random.Random.seen = n + 1",
                                       "import random\n\n\ndef SEEN(c):\n    try:\n"
                                       "        return c.seen\n    except AttributeError:\n"
                                       "        return 0"),
    "jail_main_module": _counter("getattr(MAIN, 'seen', 0)", "MAIN.seen = n + 1",
                                 "import sys\n\nMAIN = sys.modules['__main__']"),
    "thread_ids": _counter("READ()", "WRITE(n + 1)", '''
        import threading

        def READ():
            t = threading.Thread(target=lambda: None)
            try:
                t.start()
                t.join()
                return t.native_id % 1000
            except RuntimeError:
                return 0

        def WRITE(n):
            pass
        '''),
    "pipe_signal_number": _counter("READ()", "WRITE(n + 1)", '''
        import fcntl
        import json
        import sys

        FD = json.loads(sys.argv[1])["in_fd"]

        def READ():
            return fcntl.fcntl(FD, 11)  # F_GETSIG of the data pipe every worker shares

        def WRITE(n):
            try:
                fcntl.fcntl(FD, 10, n)  # F_SETSIG
            except OSError:
                pass
        '''),
    "sysv_shared_memory": _counter("READ()", "WRITE(n + 1)", '''
        import ctypes

        LIBC = ctypes.CDLL(None, use_errno=True)
        KEY = 0x5EE5

        def _segment():
            shm = LIBC.shmget(KEY, 4096, 0o1666)
            if shm < 0:
                return None
            addr = ctypes.c_void_p(LIBC.shmat(shm, None, 0))
            return None if addr.value in (None, ctypes.c_void_p(-1).value) else addr

        def READ():
            addr = _segment()
            return ctypes.c_int.from_address(addr.value).value if addr else 0

        def WRITE(n):
            addr = _segment()
            if addr:
                ctypes.c_int.from_address(addr.value).value = n
        '''),
    "module_global": _counter("SEEN[0]", "SEEN[0] += 1", "SEEN = [0]"),
    "class_attribute": _counter("C.seen", "C.seen += 1", init="seen = 0"),
    "reused_instance": _counter("ONE.seen", "ONE.seen += 1", "class S:\n    seen = 0\n"
                                "ONE = S()\nONE.seen = 0"),
    "lru_cache": _counter("F.cache_info().misses", "F(F.cache_info().misses)",
                          "from functools import lru_cache\n\n@lru_cache(maxsize=None)\n"
                          "def F(x):\n    return x"),
    "math_attribute": _counter("getattr(math, 'seen', 0)", "math.seen = n + 1",
                               "import math"),
    "numpy_attribute": _counter("getattr(np, 'seen', 0)", "np.seen = n + 1",
                                "import numpy as np"),
    "voting_attribute": _counter("getattr(voting, 'seen', 0)", "voting.seen = n + 1",
                                 "from autotts_gym import voting"),
    "builtins_attribute": _counter("getattr(builtins, 'seen', 0)", "builtins.seen = n + 1",
                                   "import builtins"),
    "sys_modules": _counter("len(sys.modules.get('seen', []))",
                            "sys.modules.setdefault('seen', []).append(1)", "import sys"),
    "environment": _counter("int(os.environ.get('SEEN', '0'))",
                            "os.environ['SEEN'] = str(n + 1)", "import os"),
    "random_state": _counter("TABLE.get(random.random(), 0)", "random.seed(n + 1)",
                             "import random\n\nTABLE = {random.Random(k).random(): k "
                             "for k in range(1, 200)}"),
    "numpy_random_state": _counter(
        "TABLE.get(float(np.random.random()), 0)", "np.random.seed(n + 1)",
        "import numpy as np\n\nTABLE = {float(np.random.RandomState(k).random_sample()): k "
        "for k in range(1, 100)}"),
    "work_dir_file": _counter("READ()", "WRITE(n + 1)", '''
        import os

        PLACES = [".", "/sandbox/work", "/sandbox", "/sandbox/lib", "/", "/sandbox/lib/autotts_gym"]


        def READ():
            for d in PLACES:
                try:
                    return int(open(os.path.join(d, "seen")).read())
                except (OSError, ValueError):
                    pass
            return 0


        def WRITE(n):
            for d in PLACES:
                try:
                    with open(os.path.join(d, "seen"), "w") as f:
                        f.write(str(n))
                except OSError:
                    pass
        '''),
    "output_readback": _counter("READ()", "WRITE()", '''
        import os


        def READ():
            try:
                os.lseek(2, 0, 0)
                return os.read(2, 1 << 20).count(b"SEEN")
            except OSError:
                return 0


        def WRITE():
            try:
                os.write(2, b"SEEN\\n")
            except OSError:
                pass
        '''),
    "gc_leftovers": _counter("READ()", "SEEN.append(1)", '''
        import gc

        SEEN = ["autotts-memory-marker"]


        def READ():
            return max((len(o) - 1 for o in gc.get_objects()
                        if type(o) is list and o[:1] == ["autotts-memory-marker"]
                        and o is not SEEN), default=0)
        '''),
}


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_no_channel_between_waves(channel, synthetic_store):
    """The count an episode sees never includes an episode of an earlier wave: it stays
    below the number of problems (one wave), in one lane or many, over three seeds (three
    waves; a channel across waves would count up to 89)."""
    need_jail()
    code = CHANNELS[channel]
    for lanes in (1, Limits().lanes):
        res = evaluate_in_sandbox(code, synthetic_store, models="Qwen3-4B",
                                  benchmarks="aime24", seeds=[0, 1, 2], betas=(0.5,),
                                  limits=Limits(lanes=lanes), trace=False)
        assert res.ok, res.message
        counts = [int(r.answer) for r in res.results.records]
        assert len(counts) == 90 and max(counts) < 30, (channel, lanes, sorted(counts)[-5:])


HIJACK = '''
import json
import os
import sys
import time

CFG = json.loads(sys.argv[1])
try:  # what the previous worker left unread on the data pipe from the parent
    os.set_blocking(CFG["in_fd"], False)
    STALE = os.read(CFG["in_fd"], 1 << 16)
except OSError:
    STALE = b""
DONE = []


def send(msg):
    os.write(CFG["out_fd"], json.dumps(msg).encode() + b"\\n")


class Hijack:
    def solve(self, session):
        if STALE:
            return "stale"
        if not DONE:  # speak the protocol by hand: a call whose reply is never read,
            DONE.append(1)  # then every episode's answer, so the parent ends the wave
            send({"t": "batch", "g": 0, "calls": [session._ep, OPEN, 0], "done": []})
            time.sleep(0.5)
            send({"t": "batch", "g": 1, "calls": [], "done": [[i, "x"] for i in range(30)]})
            time.sleep(30)
        return "x"


def make_controller(beta):
    return Hijack()
'''


def test_a_reply_left_unread_does_not_reach_the_next_worker(synthetic_store):
    """A worker that makes the parent write a reply it never reads, then ends the wave:
    the next worker (the same problems under the next seed) finds the pipe empty."""
    need_jail()
    from autotts_gym.contracts import SESSION_METHODS

    code = f"OPEN = {SESSION_METHODS.index('open')}\n" + HIJACK
    res = evaluate_in_sandbox(code, synthetic_store, models="Qwen3-4B", benchmarks="aime24",
                              seeds=[0, 1, 2], betas=(0.5,), trace=False)
    assert res.ok, res.message
    answers = [r.answer for r in res.results.records]
    assert len(answers) == 90 and set(answers) == {"x"}, sorted(set(answers))

