"""The harness: Table 1 against the reference numbers (real data); invariants (batched
equals per-episode, worker independence, errors, files) on the bundled synthetic store."""

from __future__ import annotations

import csv
import importlib
import json
import textwrap

import pytest

from autotts_gym.actions import ANSWER, BRANCH, encode
from autotts_gym.controllers import ControllerError, load_controller
from autotts_gym.core import Episode, EpisodeBatch
from autotts_gym.harness import GymPolicy, HarnessError, evaluate
from autotts_gym.reproduce import TABLE1_METHODS, table1
from autotts_gym.session import Session

MODULES = {"sc64": "sc", "asc": "asc", "esc": "esc", "parallel_probe": "parallel_probe",
           "cmc": "cmc"}


def _check_rows(rows, reference_rows):
    ref = {(r["model"], r["benchmark"], r["method"]): r for r in reference_rows}
    assert len(rows) == len(ref) == 54
    for r in rows:
        want = ref[(r["model"], r["benchmark"], r["method"])]
        assert r["accuracy_pct"] == want["spec_accuracy_pct"], (r, want)
        assert abs(float(r["mean_tokens"]) - float(want["spec_mean_tokens"])) <= 1, (r, want)


def test_table1_reproduced_exactly_fast_path(real_store, reference_rows):
    _, rows = table1(real_store, range(100), workers=2, progress=False)
    _check_rows(rows, reference_rows)


@pytest.mark.slow
def test_table1_reproduced_exactly_per_episode(real_store, reference_rows):
    from autotts_gym.harness import Results

    results = Results()
    for ctl, beta, name in TABLE1_METHODS:
        results = results + evaluate(ctl, real_store, seeds=range(100), betas=(beta,),
                                     workers=2, fast=False, method=name, progress=False,
                                     reference=None)
    rows = [{"model": r["model"], "benchmark": r["benchmark"], "method": r["method"],
             "accuracy_pct": f"{r['accuracy_pct']:.2f}",
             "mean_tokens": f"{r['mean_tokens']:.0f}"} for r in results.summary()]
    _check_rows(rows, reference_rows)


@pytest.mark.parametrize("name,beta", [("sc64", 0.5), ("asc", 0.5), ("esc", 0.5),
                                       ("parallel_probe", 0.5), ("cmc", 0.0), ("cmc", 0.5),
                                       ("cmc", 1.0)])
def test_batched_equals_per_episode(synthetic_store, name, beta):
    """Same answer, tokens and session calls per episode, on every set, for a few seeds."""
    mod = importlib.import_module(f"autotts_gym.baselines.{MODULES[name]}")
    seeds = [0, 17, 93]
    for rs in synthetic_store.select():
        ctl = mod.make_controller(beta)
        batch = EpisodeBatch.from_seeds(rs.problems, seeds)
        ids = ctl.solve_batch(batch)
        for i, p in enumerate(rs.problems):
            for j, seed in enumerate(seeds):
                row = i * len(seeds) + j
                ep = Episode.from_seed(p, seed)
                s = Session(ep, beta, record_trace=False)
                ans = ctl.solve(s)
                assert ans == (p.vocab[ids[row]] if ids[row] >= 0 else None)
                assert ep.tokens == batch.tokens[row]
                assert s.steps == batch.steps[row]


def test_per_episode_subset_matches_reference(real_store, reference_rows):
    """The per-episode path alone reproduces a sample of cells (SC, ESC, CMC on Qwen3-4B)."""
    ref = {(r["model"], r["benchmark"], r["method"]): r for r in reference_rows}
    for ctl, beta, name in [("sc64", 0.5, "SC@64"), ("esc", 0.5, "ESC"),
                            ("cmc", 0.5, "CMC(beta=0.5)")]:
        res = evaluate(ctl, real_store, models="Qwen3-4B", benchmarks="aime24",
                       betas=(beta,), fast=False, method=name, progress=False, workers=2,
                       reference=None)
        (row,) = res.summary()
        want = ref[("Qwen3-4B", "aime24", name)]
        assert f"{row['accuracy_pct']:.2f}" == want["spec_accuracy_pct"]
        assert abs(row["mean_tokens"] - float(want["spec_mean_tokens"])) <= 1


def test_results_independent_of_workers(synthetic_store):
    kw = dict(models="Qwen3-0.6B", benchmarks="hmmt25", seeds=range(12), betas=(0.3, 0.8),
              fast=False, progress=False, seed_chunk=5)
    one = evaluate("cmc", synthetic_store, workers=1, **kw)
    two = evaluate("cmc", synthetic_store, workers=2, **kw)
    assert one.records == two.records and len(one.records) == 30 * 12 * 2


def _write(tmp_path, body: str):
    path = tmp_path / "ctl.py"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.mark.parametrize("body,needle", [
    ("""
     class C:
         def solve(self, session):
             session.open()
             raise KeyError("boom")
     def make_controller(beta):
         return C()
     """, "raised KeyError"),
    ("""
     class C:
         def solve(self, session):
             return 42
     def make_controller(beta):
         return C()
     """, "returned int"),
    ("""
     class C:
         def solve(self, session):
             while True:
                 session.probe(0) if session.n_opened else session.open()
     def make_controller(beta):
         return C()
     """, "never stopped"),
])
def test_broken_controller_errors_name_the_episode(tmp_path, synthetic_store, body, needle):
    path = _write(tmp_path, body)
    with pytest.raises(HarnessError) as e:
        evaluate(str(path), synthetic_store, models="Qwen3-4B", benchmarks="aime25", seeds=[3],
                 max_steps=1000, workers=1, progress=False)
    msg = str(e.value)
    assert needle in msg and "ctl" in msg and "problem 0" in msg and "seed 3" in msg
    assert "Qwen3-4B" in msg and "aime25" in msg


def test_loader_errors(tmp_path):
    with pytest.raises(ControllerError, match="make_controller"):
        load_controller(str(_write(tmp_path, "x = 1\n")))
    with pytest.raises(ControllerError, match="not found"):
        load_controller(str(tmp_path / "missing.py"))
    with pytest.raises(ControllerError, match="built-in names"):
        load_controller("no_such_controller_anywhere")


def test_gym_policy_sc64_matches_controller_plus_overshoot(synthetic_store):
    """A policy playing SC@64 through env actions, scored by the harness, gets SC@64's
    accuracy exactly and its tokens plus the interval overshoot the spec charges."""
    n = 64

    def sc64_policy(obs, mask):
        opened = round(float(obs["n_open"][0]) * n)
        if mask[BRANCH]:
            return BRANCH
        for i in range(opened):
            if mask[encode("continue", i, n)]:
                return encode("continue", i, n)
            if mask[encode("probe", i, n)]:
                return encode("probe", i, n)
        return ANSWER

    kw = dict(models="Qwen3-4B", benchmarks="hmmt25", seeds=range(4), progress=False,
              workers=2)
    pol = evaluate(GymPolicy(sc64_policy, "sc64-policy"), synthetic_store, **kw)
    ctl = evaluate("sc64", synthetic_store, **kw)
    rs = synthetic_store.load("Qwen3-4B", "hmmt25")
    from autotts_gym.core import branch_order

    for a, b in zip(pol.records, ctl.records, strict=True):
        assert (a.problem, a.seed) == (b.problem, b.seed)
        assert a.answer == b.answer and a.correct == b.correct
        p = rs.problems[a.problem]
        over = sum(max(0, 500 * int(p.n_probes[x]) - int(p.tokens[x]))
                   for x in branch_order(a.seed)[:64])
        assert a.tokens == b.tokens + over


def test_results_files(tmp_path, synthetic_store):
    res = evaluate("cmc", synthetic_store, models="Qwen3-1.7B", benchmarks="aime24",
                   seeds=range(5), betas=(0.0, 0.5, 1.0), progress=False, trace=True,
                   workers=1)  # tracing takes the per-episode path even with fast=True
    assert res.reference == "SC@64" and {r.method for r in res.records} == {"CMC"}
    assert {r.method for r in res.reference_records} == {"SC@64"}  # added like the CLI does
    paths = res.write(tmp_path)
    rows = list(csv.DictReader(open(paths["summary_csv"])))
    assert len(rows) == 4
    cmc = [r for r in rows if r["method"] == "CMC"]
    assert [float(r["beta"]) for r in cmc] == [0.0, 0.5, 1.0]
    # accuracy and cost rise with beta for CMC on this set; tokens relative to SC@64 < 1
    toks = [float(r["mean_tokens"]) for r in cmc]
    assert toks == sorted(toks) and all(float(r["tokens_vs_ref"]) < 1 for r in cmc)
    assert paths["plot"].stat().st_size > 10_000
    lines = [json.loads(line) for line in open(paths["records"])]
    assert lines == [r.__dict__ for r in res.all_records] and len(lines) == 30 * 5 * 4
    traces = [json.loads(line) for line in open(paths["traces"])]
    assert len(traces) == 30 * 5 * 3 and all(t["trace"] for t in traces)
    lo, hi = float(rows[0]["accuracy_ci_low"]), float(rows[0]["accuracy_ci_high"])
    assert lo <= float(rows[0]["accuracy_pct"]) <= hi
