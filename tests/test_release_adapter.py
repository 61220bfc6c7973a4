"""Controllers written for the AutoTTS release, run unchanged through :mod:`autotts_gym.release`.

* the question API against the replay rules, call by call, with its exceptions;
* the loader: ``FILE.py:CLASS``, the lone candidate, one-line errors, ``--controller-config``;
* the project's release-style baselines (``tests/fixtures/release_baselines.py``) scored
  through the adapter equal the native baselines, episode by episode and on the reference
  table (every cell: ``slow``; a subset: always).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autotts_gym.contracts import SESSION_METHODS, SESSION_PROPERTIES
from autotts_gym.controllers import ControllerError, load_controller, load_controllers
from autotts_gym.core import Episode, branch_order
from autotts_gym.errors import UsageError
from autotts_gym.harness import HarnessError, Results, evaluate, evaluate_many
from autotts_gym.release import (
    ControllerConfigError,
    ReleaseController,
    ReleaseQuestion,
    parse_controller_config,
)
from autotts_gym.session import Session

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "release_baselines.py"
CLASSES = ["SelfConsistency", "AdaptiveConsistency", "EarlyStoppingConsistency",
           "ParallelProbe", "ConfidenceMomentum"]
# (release-style class, beta, native controller, name in the reference table)
TABLE1 = [("SelfConsistency", 0.5, "sc64", "SC@64"),
          ("AdaptiveConsistency", 0.5, "asc", "ASC"),
          ("EarlyStoppingConsistency", 0.5, "esc", "ESC"),
          ("ParallelProbe", 0.5, "parallel_probe", "Parallel-Probe"),
          ("ConfidenceMomentum", 0.5, "cmc", "CMC(beta=0.5)"),
          ("ConfidenceMomentum", 1.0, "cmc", "CMC(beta=1.0)")]


def _fixture_class(name: str):
    return load_controller(f"{FIXTURE}:{name}")


# ----------------------------------------------------------------------------- question API


class SpecQuestion:
    """The question API written straight from spec/replay-semantics.md over a problem's raw
    arrays (no core tables): the reference the adapter is checked against."""

    def __init__(self, problem, seed: int):
        self.p = problem
        self.order = branch_order(seed, problem.n_branches)
        self.depth: list[int] = []
        self.cost: list[int] = []

    def _answer(self, b: int, k: int) -> str:
        L = int(self.p.n_probes[b])
        a = self.p.branch_probes(b)[k - 1] if k <= L else self.p.final[b]
        return self.p.vocab[int(a)]

    def _step(self, i: int) -> tuple[str, bool]:
        b = self.order[i]
        L, freq, tok = int(self.p.n_probes[b]), int(self.p.probe_freq), int(self.p.tokens[b])
        k = self.depth[i] + 1
        if k <= L:
            charge = freq
        elif k == L + 1:
            charge = max(0, tok - freq * L)
        else:
            charge, k = 0, L + 1
        self.depth[i] = k
        self.cost[i] += charge
        return self._answer(b, k), k >= L + 1

    def probe_new(self):
        if len(self.depth) == len(self.order):
            raise ValueError("all open")
        self.depth.append(0)
        self.cost.append(0)
        a, fin = self._step(len(self.depth) - 1)
        return a, len(self.depth) - 1, fin

    def probe_more(self, i: int):
        if not 0 <= i < len(self.depth):
            raise ValueError("not opened")
        return self._step(i)

    def get_new_branch_final_answer(self):
        if len(self.depth) == len(self.order):
            raise IndexError("none left")
        b = self.order[len(self.depth)]
        self.depth.append(int(self.p.n_probes[b]) + 1)
        self.cost.append(int(self.p.tokens[b]))
        return self.p.vocab[int(self.p.final[b])]

    def get_cost_per_branch_active(self):
        return list(self.cost)

    def get_seq_and_total_tokens(self):
        return 0, sum(self.cost)


def _outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except (ValueError, IndexError) as e:
        return type(e).__name__, None


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_question_api_follows_the_replay_rules_call_by_call(synthetic_store, seed):
    """A random walk over every call (including the invalid ones) gives the same returns,
    exceptions, per-branch costs and totals as the spec, and the session's tokens agree."""
    rng = random.Random(seed)
    rs = synthetic_store.load("Qwen3-4B", "aime25")
    p = rs.problems[seed % len(rs.problems)]
    ep = Episode.from_seed(p, seed)
    session = Session(ep, 0.5)
    q, ref = ReleaseQuestion(session), SpecQuestion(p, seed)
    kinds = set()
    for _ in range(1500):
        n = len(ref.depth)
        call = rng.choice(["new", "new", "more", "more", "more", "more", "read", "bad"])
        if call == "new":
            got, want = _outcome(q.probe_new), _outcome(ref.probe_new)
        elif call == "read":
            got = _outcome(q.get_new_branch_final_answer)
            want = _outcome(ref.get_new_branch_final_answer)
        elif call == "more" and n:
            i = rng.randrange(n)
            got, want = _outcome(q.probe_more, i), _outcome(ref.probe_more, i)
        else:
            i = rng.choice([n, n + 3, -1])
            got, want = _outcome(q.probe_more, i), ("ValueError", None)
        assert got == want, (call, got, want)
        kinds.add((call, got[0]))
        assert q.get_cost_per_branch_active() == ref.get_cost_per_branch_active()
        assert q.get_seq_and_total_tokens() == ref.get_seq_and_total_tokens()
        assert session.tokens == sum(ref.cost) == ep.tokens
    # the walk met every call and every exception
    assert {("new", "ok"), ("new", "ValueError"), ("more", "ok"), ("read", "ok"),
            ("read", "IndexError"), ("bad", "ValueError")} <= kinds


def test_question_api_exceptions_and_types(synthetic_store):
    p = synthetic_store.load("Qwen3-0.6B", "aime24").problems[0]
    session = Session(Episode.from_seed(p, 5), 0.5)
    q = ReleaseQuestion(session)
    assert q.get_cost_per_branch_active() == [] and q.get_seq_and_total_tokens() == (0, 0)
    with pytest.raises(ValueError, match="not an opened branch"):
        q.probe_more(0)
    a, bid, fin = q.probe_new()
    assert (bid, isinstance(a, str), isinstance(fin, bool)) == (0, True, True)
    for bad in (1, -1, "0", 0.0, None):
        with pytest.raises(ValueError):
            q.probe_more(bad)
    import numpy as np

    assert q.probe_more(np.int64(0))[0] == a  # numpy ids work, as list indices do
    cost = q.get_cost_per_branch_active()
    assert all(type(c) is int for c in cost) and type(q.get_seq_and_total_tokens()[1]) is int
    while session.branches_left:
        q.get_new_branch_final_answer()
    spent = session.tokens
    with pytest.raises(IndexError):
        q.get_new_branch_final_answer()
    with pytest.raises(ValueError):
        q.probe_new()
    assert session.tokens == spent  # a refused call charges nothing
    assert len(q.get_cost_per_branch_active()) == p.n_branches


class _StrictSession:
    """Exposes exactly SessionAPI (what the sandbox's proxy session offers), nothing else."""

    def __init__(self, session):
        object.__setattr__(self, "_s", session)

    def __getattr__(self, name):
        if name in SESSION_PROPERTIES or name in SESSION_METHODS:
            return getattr(object.__getattribute__(self, "_s"), name)
        raise AttributeError(f"{name} is not part of SessionAPI")


@pytest.mark.parametrize("cls", CLASSES)
def test_adapter_needs_only_the_session_contract(synthetic_store, cls):
    spec = _fixture_class(cls)
    rs = synthetic_store.load("Qwen3-1.7B", "hmmt25")
    for p in rs.problems[:6]:
        for seed in (0, 9):
            direct_ep, strict_ep = Episode.from_seed(p, seed), Episode.from_seed(p, seed)
            a = spec.make_controller(0.7).solve(Session(direct_ep, 0.7))
            b = spec.make_controller(0.7).solve(_StrictSession(Session(strict_ep, 0.7)))
            assert (a, direct_ep.tokens) == (b, strict_ep.tokens)
            assert direct_ep.tokens > 0


def test_branch_tokens_sum_to_tokens(synthetic_store):
    p = synthetic_store.load("Qwen3-4B", "hmmt25").problems[3]
    ep = Episode.from_seed(p, 11, kappa_probe=7.0)
    s = Session(ep, 0.5)
    s.open(), s.read(), s.open()
    for _ in range(40):
        s.advance(0)
    s.probe(2)
    assert sum(s.branch_tokens(i) for i in range(s.n_opened)) == s.tokens
    L, tok = (int(x) for x in (p.n_probes[ep.order[0]], p.tokens[ep.order[0]]))
    depth = min(41, L + 1)  # opened, then 40 intervals (free once finished)
    assert s.branch_tokens(0) == (500 * min(depth, L) + (max(0, tok - 500 * L)
                                                         if depth == L + 1 else 0) + 41 * 7.0)
    assert s.branch_tokens(1) == int(p.tokens[ep.order[1]])  # a read: its full tokens
    L2, tok2 = (int(x) for x in (p.n_probes[ep.order[2]], p.tokens[ep.order[2]]))
    assert s.branch_tokens(2) == (500 if L2 else tok2) + 2 * 7.0


# ----------------------------------------------------------------------------- loader


def _write(tmp_path, body: str, name: str = "mine.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_class_selected_by_name_from_a_file_with_several(synthetic_store):
    spec = load_controller(f"{FIXTURE}:AdaptiveConsistency")
    assert spec.name == "AdaptiveConsistency" and spec.source.endswith(":AdaptiveConsistency")
    ctl = spec.make_controller(0.3)
    assert isinstance(ctl, ReleaseController)
    assert type(ctl.method).__name__ == "AdaptiveConsistency"
    assert ctl.config == {"beta": 0.3}
    kw = {"models": "Qwen3-0.6B", "benchmarks": "aime25", "seeds": range(4),
          "progress": False, "workers": 1}
    mine = evaluate(spec, synthetic_store, **kw)
    native = evaluate("asc", synthetic_store, **kw)
    assert [(r.answer, r.tokens) for r in mine.records] == \
        [(r.answer, r.tokens) for r in native.records]
    assert {r.method for r in mine.records} == {"AdaptiveConsistency"}


def test_several_candidates_listed_in_one_line():
    with pytest.raises(ControllerError) as e:
        load_controller(str(FIXTURE))
    msg = str(e.value)
    assert "\n" not in msg and "pick one with" in msg
    assert all(c in msg for c in CLASSES)
    assert "ReleaseMethod" not in msg.split("(")[1] and "_Chain" not in msg  # not candidates


def test_a_lone_candidate_is_detected(tmp_path, synthetic_store):
    path = _write(tmp_path, """
        import numpy as np
        from abc import ABC, abstractmethod
        from collections import Counter

        class Base(ABC):
            def __init__(self, config=None):
                self.config = config or {}
            @abstractmethod
            def solve(self, question): ...

        class Helper:
            pass

        class FirstFinals(Base):
            def solve(self, question):
                n = int(np.ceil(2 + 10 * self.config["beta"]))
                out = []
                for _ in range(n):
                    out.append(question.get_new_branch_final_answer())
                return Counter(out).most_common(1)[0][0]
        """)
    spec = load_controller(str(path))
    assert spec.name == "FirstFinals"
    res = evaluate(str(path), synthetic_store, models="Qwen3-4B", benchmarks="aime24",
                   seeds=[0, 1], betas=(0.0, 1.0), progress=False, workers=1)
    toks = {b: sum(r.tokens for r in res.records if r.beta == b) for b in (0.0, 1.0)}
    assert 0 < toks[0.0] < toks[1.0]  # beta reached the class through config


@pytest.mark.parametrize("body,needles", [
    ("x = 1\n", ["no callable make_controller", "no release-style class"]),
    ("""
     class NoConfig:
         def __init__(self, width):
             self.width = width
         def solve(self, question):
             return None
     """, ["NoConfig has a constructor without a config argument"]),
    ("""
     from abc import ABC, abstractmethod
     class Only(ABC):
         def __init__(self, config=None):
             pass
         @abstractmethod
         def solve(self, question): ...
     """, ["Only is abstract"]),
    ("""
     from collections import Counter as Imported
     """, ["no release-style class"]),
])
def test_a_file_with_no_candidate_names_the_problem(tmp_path, body, needles):
    path = _write(tmp_path, body)
    with pytest.raises(ControllerError) as e:
        load_controller(str(path))
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert all(n in msg for n in needles), msg


def test_class_name_errors(tmp_path):
    with pytest.raises(ControllerError, match=r"no class Missing .*SelfConsistency"):
        load_controller(f"{FIXTURE}:Missing")
    with pytest.raises(ControllerError, match="_Chain has no solve"):
        load_controller(f"{FIXTURE}:_Chain")
    with pytest.raises(ControllerError, match="ReleaseMethod is abstract"):
        load_controller(f"{FIXTURE}:ReleaseMethod")
    with pytest.raises(ControllerError, match="Counter is imported from collections"):
        load_controller(f"{FIXTURE}:Counter")
    with pytest.raises(ControllerError, match="not found"):
        load_controller(f"{tmp_path / 'gone.py'}:X")


def test_make_controller_wins_unless_a_class_is_named(tmp_path):
    path = _write(tmp_path, """
        class Native:
            def solve(self, session):
                return session.read()
        class Release:
            def __init__(self, config=None):
                self.config = config
            def solve(self, question):
                return question.get_new_branch_final_answer()
        def make_controller(beta):
            return Native()
        """)
    assert type(load_controller(str(path)).make_controller(0.5)).__name__ == "Native"
    ctl = load_controller(f"{path}:Release").make_controller(0.5)
    assert type(ctl.method).__name__ == "Release"
    with pytest.raises(ControllerError, match="applies only to release-style"):
        load_controller(str(path), config="k=1")
    with pytest.raises(ControllerError, match="applies only to release-style"):
        load_controller("cmc", config="k=1")


def test_constructor_errors_name_the_class(tmp_path, synthetic_store):
    path = _write(tmp_path, """
        class Picky:
            def __init__(self, config):
                if config.get("width", 0) < 1:
                    raise ValueError("width must be >= 1")
            def solve(self, question):
                return None
        """)
    with pytest.raises(ControllerError) as e:
        evaluate(str(path), synthetic_store, models="Qwen3-4B", benchmarks="aime24",
                 seeds=[0], progress=False, workers=1)
    assert "Picky(config={'beta': 0.5}) raised ValueError: width must be >= 1" in str(e.value)
    res = evaluate(load_controller(str(path), config="width=2"), synthetic_store,
                   models="Qwen3-4B", benchmarks="aime24", seeds=[0], progress=False,
                   workers=1)
    assert all(r.answer is None and not r.correct for r in res.records)


def test_solve_errors_name_the_episode(tmp_path, synthetic_store):
    path = _write(tmp_path, """
        class Greedy:
            def __init__(self, config=None):
                pass
            def solve(self, question):
                a, i, _ = question.probe_new()
                return question.probe_more(i + 1)[0]
        """)
    with pytest.raises(HarnessError, match=r"Greedy .*problem 0, seed 2.*ValueError: "
                                           r"branch 1 is not an opened branch"):
        evaluate(str(path), synthetic_store, models="Qwen3-4B", benchmarks="aime24",
                 seeds=[2], progress=False, workers=1)


# ----------------------------------------------------------------------------- config


def test_controller_config_parsing():
    got = parse_controller_config(" n=3, x=0.25 ,neg=-2, e=1e-3, on=true, off=False, "
                                  "name=abc, quoted='7', path=a/b.json,")
    assert got == {"n": 3, "x": 0.25, "neg": -2, "e": 1e-3, "on": True, "off": False,
                   "name": "abc", "quoted": "7", "path": "a/b.json"}
    assert [type(got[k]) for k in ("n", "x", "on", "quoted")] == [int, float, bool, str]
    assert parse_controller_config("") == {} and parse_controller_config(None) == {}
    assert parse_controller_config({"k": [1]}) == {"k": [1]}


@pytest.mark.parametrize("text,needle", [
    ("n", "'n' is not KEY=VALUE"),
    ("=3", "'' is not a valid key"),
    ("1x=3", "'1x' is not a valid key"),
    ("a=1,a=2", "key 'a' is given twice"),
    ("beta=0.3", "beta is set per run by --betas"),
])
def test_controller_config_errors(text, needle):
    with pytest.raises(ControllerConfigError) as e:
        parse_controller_config(text)
    assert isinstance(e.value, UsageError) and needle in str(e.value)
    assert "\n" not in str(e.value)


def test_controller_config_reaches_the_class(tmp_path, synthetic_store):
    seen = []
    path = _write(tmp_path, """
        SEEN = []
        class Recorder:
            def __init__(self, config=None):
                SEEN.append(dict(config))
            def solve(self, question):
                return question.get_new_branch_final_answer()
        """)
    spec = load_controller(str(path), config="k=3,x=0.5,flag=true,name=abc")
    ctl = spec.make_controller(0.25)
    seen = sys.modules[type(ctl.method).__module__].SEEN
    assert seen[-1] == {"beta": 0.25, "k": 3, "x": 0.5, "flag": True, "name": "abc"}
    # config changes behaviour: SC through the release API with n_samples=8 is SC@8
    from autotts_gym.baselines.sc import SelfConsistency

    kw = {"models": "Qwen3-1.7B", "benchmarks": "aime24", "seeds": range(3),
          "progress": False, "workers": 1}
    eight = evaluate(load_controller(f"{FIXTURE}:SelfConsistency", config="n_samples=8"),
                     synthetic_store, **kw)
    native8 = evaluate(lambda beta: SelfConsistency(8), synthetic_store, **kw)
    assert [(r.answer, r.tokens) for r in eight.records] == \
        [(r.answer, r.tokens) for r in native8.records]


def test_load_controllers_applies_config_to_release_classes_only():
    specs = load_controllers(["sc64", f"{FIXTURE}:SelfConsistency"], "n_samples=8")
    assert specs[0].name == "SC@64"
    assert specs[1].make_controller(0.5).config == {"beta": 0.5, "n_samples": 8}
    with pytest.raises(ControllerError, match="none of the controllers"):
        load_controllers(["sc64", "cmc"], "n_samples=8")


# ----------------------------------------------------------------------------- CLI


def _cli(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "autotts_cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_cli_eval_runs_a_release_class(tmp_path, synthetic_store_dir):
    out = tmp_path / "out"
    r = _cli("eval", "--controller", f"{FIXTURE}:ConfidenceMomentum", "--replay-dir",
             str(synthetic_store_dir), "--models", "Qwen3-4B", "--benchmarks", "aime24",
             "--seeds", "0-1", "--betas", "0,1", "--baselines", "", "--workers", "1",
             "--no-progress", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "ConfidenceMomentum" in (out / "summary.csv").read_text()
    r = _cli("sweep", "--controller", f"{FIXTURE}:SelfConsistency", "--controller-config",
             "n_samples=4", "--replay-dir", str(synthetic_store_dir), "--models", "Qwen3-4B",
             "--benchmarks", "aime24", "--seeds", "0", "--betas", "0.5", "--baselines", "",
             "--workers", "1", "--no-progress", "--out", str(tmp_path / "sweep"))
    assert r.returncode == 0, r.stderr


def _class_records(out: Path) -> list[str]:
    return [line for line in (out / "records.jsonl").read_text().splitlines()
            if '"method": "SelfConsistency"' in line]


def test_cli_eval_sandbox_runs_a_release_class_with_config(tmp_path, synthetic_store_dir):
    """``eval --sandbox --controller FILE.py:CLASS --controller-config k=v``: the class name
    and the config reach the jail as data; the records equal the in-process run's."""
    from sandbox_util import need_jail

    need_jail()
    common = ("eval", "--controller", f"{FIXTURE}:SelfConsistency", "--controller-config",
              "n_samples=4", "--replay-dir", str(synthetic_store_dir), "--models", "Qwen3-4B",
              "--benchmarks", "aime24", "--seeds", "0-1", "--betas", "0,1", "--baselines", "",
              "--workers", "1", "--no-progress")
    runs = {}
    for mode in ("jail", "here"):
        out = tmp_path / mode
        r = _cli(*common, *(["--sandbox"] if mode == "jail" else []), "--out", str(out))
        assert r.returncode == 0, r.stderr
        runs[mode] = _class_records(out)
    assert runs["jail"] == runs["here"] and len(runs["jail"]) == 120
    # the config reached the class: 4 samples, not the default 64
    four = _cli(*common[:4], "n_samples=64", *common[5:], "--sandbox", "--out",
                str(tmp_path / "64"))
    assert four.returncode == 0, four.stderr
    assert _class_records(tmp_path / "64") != runs["jail"]


@pytest.mark.parametrize("extra,needle", [
    (["--controller", f"{FIXTURE}:NoSuchClass"], "no class NoSuchClass"),
    (["--controller", f"{FIXTURE}:SelfConsistency", "--controller-config", "beta=1"],
     "beta is set per run"),
    (["--controller", str(REPO / "autotts_gym" / "baselines" / "cmc.py"),
      "--controller-config", "k=1"], "applies only to release-style"),
])
def test_cli_eval_sandbox_errors_are_one_line(tmp_path, synthetic_store_dir, extra, needle):
    from sandbox_util import need_jail

    need_jail()
    r = _cli("eval", "--sandbox", *extra, "--replay-dir", str(synthetic_store_dir),
             "--models", "Qwen3-4B", "--benchmarks", "aime24", "--seeds", "0",
             "--baselines", "", "--no-progress", "--out", str(tmp_path / "o"))
    assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len([line for line in r.stderr.splitlines() if "error" in line]) == 1


@pytest.mark.parametrize("extra,needle", [
    (["--controller", str(FIXTURE)], "several release-style classes"),
    (["--controller", f"{FIXTURE}:SelfConsistency", "--controller-config", "beta=1"],
     "beta is set per run"),
    (["--controller", "cmc", "--controller-config", "k=1"], "applies only to release-style"),
])
def test_cli_errors_are_one_line(tmp_path, synthetic_store_dir, extra, needle):
    r = _cli("eval", *extra, "--replay-dir", str(synthetic_store_dir), "--seeds", "0",
             "--baselines", "", "--no-progress", "--out", str(tmp_path / "o"))
    assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr
    assert len([line for line in r.stderr.splitlines() if "error" in line]) == 1


# ----------------------------------------------------------------------------- real data


def _native_records(store, seeds, models=None, benchmarks=None, methods=TABLE1) -> dict:
    entries = [(nat, (beta,), name) for _, beta, nat, name in methods]
    res = evaluate_many(entries, store, models, benchmarks, seeds, workers=2,
                        progress=False)
    return {(r.model, r.benchmark, r.method, r.seed, r.problem): r for r in res.records}


def _release_results(store, seeds, fast: bool, models=None, benchmarks=None,
                     methods=TABLE1) -> Results:
    entries = [(f"{FIXTURE}:{cls}", (beta,), name) for cls, beta, _, name in methods]
    return evaluate_many(entries, store, models, benchmarks, seeds, workers=2, fast=fast,
                         progress=False)


def _assert_same_episodes(release: Results, native: dict) -> None:
    assert len(release.records) == len(native)
    for r in release.records:
        n = native[(r.model, r.benchmark, r.method, r.seed, r.problem)]
        assert (r.answer, r.correct, r.tokens) == (n.answer, n.correct, n.tokens), (r, n)


def _assert_reference_cells(release: Results, reference_rows, expected_cells: int) -> None:
    ref = {(r["model"], r["benchmark"], r["method"]): r for r in reference_rows}
    rows = release.summary()
    assert len(rows) == expected_cells
    for row in rows:
        want = ref[(row["model"], row["benchmark"], row["method"])]
        assert f"{row['accuracy_pct']:.2f}" == want["spec_accuracy_pct"], (row, want)
        assert abs(row["mean_tokens"] - float(want["spec_mean_tokens"])) <= 1, (row, want)


def test_release_baselines_equal_native_on_every_set(real_store):
    """Every set, every Table 1 method, two seeds: the same answer and tokens per episode."""
    seeds = [0, 93]
    _assert_same_episodes(_release_results(real_store, seeds, fast=True),
                          _native_records(real_store, seeds))


def test_release_baselines_match_reference_on_one_set(real_store, reference_rows):
    """One set, all 100 seeds, per-episode path, the quicker methods (the slow test has
    them all): the reference cells and the native records, episode by episode."""
    kw = {"models": "Qwen3-4B", "benchmarks": "aime24",
          "methods": [m for m in TABLE1 if m[3] not in ("Parallel-Probe", "CMC(beta=1.0)")]}
    release = _release_results(real_store, range(100), fast=False, **kw)
    _assert_reference_cells(release, reference_rows, len(kw["methods"]))
    _assert_same_episodes(release, _native_records(real_store, range(100), **kw))


@pytest.mark.slow
def test_release_baselines_match_every_reference_cell(real_store, reference_rows):
    """Every cell of the reference table (9 sets x 6 methods x 100 seeds) through the
    adapter, and every episode equal to the native baselines'."""
    release = _release_results(real_store, range(100), fast=True)
    _assert_reference_cells(release, reference_rows, 54)
    _assert_same_episodes(release, _native_records(real_store, range(100)))


def test_docs_example_runs_unchanged(tmp_path, synthetic_store_dir):
    """The release-style file shown in docs/controllers.md, through the CLI as shown."""
    doc = (REPO / "docs" / "controllers.md").read_text()
    section = doc.split("## Controllers written for the AutoTTS release", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "methods.py").write_text(code)
    r = _cli("eval", "--controller", "methods.py:MajorityUntilConfident",
             "--controller-config", "max_samples=32", "--replay-dir", str(synthetic_store_dir),
             "--models", "Qwen3-4B", "--benchmarks", "aime25", "--seeds", "0-1",
             "--betas", "0,1", "--baselines", "", "--workers", "1", "--no-progress",
             "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "MajorityUntilConfident" in (tmp_path / "out" / "summary.csv").read_text()
