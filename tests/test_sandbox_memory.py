"""Red team: state carried from one episode to the next inside one jail.

The same problem is replayed under many seeds, betas and models, so a candidate that
remembers what it saw (the majority answer of a problem it fingerprints from its first
answers) answers later episodes at almost no tokens: a forged score. Every episode must
start from a fresh controller in a fresh module namespace, with nothing the candidate
wrote in an earlier (or a concurrently running) episode in reach.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict

import pytest
from sandbox_util import need_jail

from autotts_discovery.codecheck import check_code
from autotts_discovery.sandbox import Limits, evaluate_in_sandbox

MEMORIZER = '''
from collections import Counter

MEMORY = []  # (answers seen, majority answer) per problem met so far


class Memorizer:
    def solve(self, session):
        first = [session.read(), session.read()]
        for seen, majority in MEMORY:
            if LOOKUP and first[0] in seen and first[1] in seen:
                return majority  # this problem again, under another branch order
        answers = first + [session.read() for _ in range(14)]
        answers = [a for a in answers if a is not None]
        majority = Counter(answers).most_common(1)[0][0]
        MEMORY.append((set(answers), majority))
        return majority


def make_controller(beta):
    return Memorizer()
'''


def _by_seed(records) -> dict[int, tuple[float, float]]:
    acc, tok = defaultdict(list), defaultdict(list)
    for r in records:
        acc[r.seed].append(r.correct)
        tok[r.seed].append(r.tokens)
    return {s: (sum(acc[s]) / len(acc[s]), sum(tok[s]) / len(tok[s])) for s in sorted(acc)}


@pytest.mark.parametrize("lanes", [1, Limits().lanes])
def test_a_memorizer_cannot_reuse_earlier_seeds(synthetic_store, lanes):
    """The memorizer (it passes codecheck) scores exactly like its honest twin (the same
    code with the look-up off): no episode meets another's memory, in one lane or in
    concurrent lanes, across seeds or across betas."""
    need_jail()
    forger = "LOOKUP = True\n" + MEMORIZER
    twin = "LOOKUP = False\n" + MEMORIZER
    assert check_code(forger).ok, check_code(forger).message
    kw = {"models": "Qwen3-4B", "benchmarks": "aime24", "seeds": [0, 1, 2, 3],
          "betas": (0.0, 1.0), "limits": Limits(lanes=lanes), "trace": False}
    got = evaluate_in_sandbox(forger, synthetic_store, **kw)
    want = evaluate_in_sandbox(twin, synthetic_store, **kw)
    assert got.ok and want.ok, (got.message, want.message)
    forged = {(r.problem, r.seed, r.beta): (r.answer, r.tokens) for r in got.results.records}
    honest = {(r.problem, r.seed, r.beta): (r.answer, r.tokens) for r in want.results.records}
    assert len(forged) == 240
    assert forged == honest, (
        f"memory carried across episodes: (accuracy, mean tokens) per seed "
        f"{_by_seed(got.results.records)} vs honest {_by_seed(want.results.records)}")


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
def test_no_channel_between_episodes(channel, synthetic_store):
    """Every episode sees a count of 0: nothing written by an earlier episode (one lane,
    in turn) or a concurrent one (many lanes, interleaved) reaches it."""
    need_jail()
    code = CHANNELS[channel]
    # (gc also shows the objects of episodes running now: other problems of one wave)
    for lanes in (1,) if channel.startswith("gc_") else (1, Limits().lanes):
        res = evaluate_in_sandbox(code, synthetic_store, models="Qwen3-4B",
                                  benchmarks="aime24", seeds=[0, 1], betas=(0.5,),
                                  limits=Limits(lanes=lanes), trace=False)
        assert res.ok, res.message
        seen = sorted({r.answer for r in res.results.records})
        assert seen == ["0"], (channel, lanes, seen[:10])
