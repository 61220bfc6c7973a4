"""Problem-level intervals, paired differences, pooled aggregates, selection under noise,
and the reports that print them."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from autotts_gym import stats
from autotts_gym.harness import EpisodeRecord, Results, evaluate, reference_label


def _records(method: str, acc: np.ndarray, tokens: float, model="M", bench="B", beta=0.5,
             seeds=1):
    """Records whose per-problem correctness is ``acc`` (0/1 per problem and seed)."""
    acc = np.atleast_2d(acc).reshape(len(acc), -1) if np.ndim(acc) == 2 else \
        np.repeat(np.asarray(acc)[:, None], seeds, axis=1)
    return [EpisodeRecord(model, bench, p, s, beta, method, None, bool(acc[p, s]),
                          float(tokens), 1)
            for p in range(acc.shape[0]) for s in range(acc.shape[1])]


def test_interval_of_a_proportion_is_the_binomial_closed_form():
    """Resampling n problems of which k are right gives Binomial(n, k/n)/n exactly, so the
    95% percentile interval is that binomial's 2.5% and 97.5% quantiles (over n)."""
    n, k = 40, 10
    x = np.r_[np.ones(k), np.zeros(n - k)]
    iv = stats.mean_interval(x, n_resamples=20_000)
    lo, hi = sps.binom.ppf([0.025, 0.975], n, k / n) / n
    assert iv.estimate == k / n
    assert abs(iv.low - lo) <= 1 / n + 1e-9 and abs(iv.high - hi) <= 1 / n + 1e-9
    # a constant paired difference has the degenerate interval at that constant
    a = np.linspace(0, 1, 30)
    d = stats.paired_difference(a + 0.1, a)
    assert d.low == pytest.approx(0.1) and d.high == pytest.approx(0.1)


def test_pairing_matters_when_methods_share_hard_problems():
    rng = np.random.default_rng(3)
    hard = rng.random(30)  # per-problem difficulty, shared by both methods
    a = np.clip(hard + 0.05 + rng.normal(0, 0.01, 30), 0, 1)
    b = hard
    paired = stats.paired_difference(a, b)
    unpaired = sps.bootstrap((a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis),
                             method="percentile", rng=np.random.default_rng(0)
                             ).confidence_interval
    assert paired.excludes(0.0) and unpaired.low < 0 < unpaired.high
    assert (paired.high - paired.low) < (unpaired.high - unpaired.low) / 10


def test_coverage_of_a_known_difference():
    """300 replications of 30 problems with a true paired difference of 0.05: the 95%
    interval covers it 90-98% of the time (one vectorized bootstrap over all rows)."""
    rng = np.random.default_rng(11)
    true = 0.05
    d = true + rng.normal(0, 0.3, size=(300, 30))
    ivs = stats.mean_intervals(d, n_resamples=2000)
    cover = np.mean([iv.low <= true <= iv.high for iv in ivs])
    assert 0.90 <= cover <= 0.98, cover


def test_coverage_of_the_stratified_pooled_difference():
    rng = np.random.default_rng(5)
    hits = 0
    reps = 200
    for rep in range(reps):
        strata = [np.stack([true + rng.normal(0, 0.3, 30), np.zeros(30)])
                  for true in (0.0, 0.1, 0.2)]
        dist = stats.stratified_resample_means(strata, 1000, seed=rep)
        lo, hi = np.quantile(dist[0] - dist[1], [0.025, 0.975])
        hits += lo <= 0.1 <= hi
    assert 0.90 <= hits / reps <= 0.98, hits / reps


def test_summary_rows_reference_and_probability_of_improvement():
    base = np.r_[np.ones(10), np.zeros(20)]
    better = base.copy()
    better[10:14] = 1  # right on 4 more problems, never worse
    recs = _records("SC@64", base, 100.0) + _records("X", better, 30.0)
    rows = {r["method"]: r for r in stats.summarize(recs)}
    x, ref = rows["X"], rows["SC@64"]
    assert ref["delta_vs_ref_pts"] == 0 and ref["tokens_vs_ref"] == 1.0
    assert ref["p_improvement"] == 0.5
    assert x["delta_vs_ref_pts"] == pytest.approx(100 * 4 / 30)
    assert x["tokens_vs_ref"] == pytest.approx(0.3)
    assert x["p_improvement"] == pytest.approx((4 + 0.5 * 26) / 30)
    assert x["delta_ci_low"] > 0 and x["n_problems"] == 30 and x["n_seeds"] == 1
    assert list(stats.summarize(recs, reference="X")[0]) == list(x)
    # reproducible: the same rows again
    assert stats.summarize(recs) == stats.summarize(recs)


def test_pooled_average_is_the_mean_of_cells():
    a = _records("SC@64", np.r_[np.ones(10), np.zeros(20)], 100.0, model="A") + \
        _records("X", np.r_[np.ones(15), np.zeros(15)], 50.0, model="A")
    b = _records("SC@64", np.r_[np.ones(20), np.zeros(10)], 300.0, model="B") + \
        _records("X", np.r_[np.ones(20), np.zeros(10)], 100.0, model="B")
    (x,) = [r for r in stats.pooled_summary(a + b) if r["method"] == "X"]
    assert x["model"] == x["benchmark"] == "all"
    assert x["accuracy_pct"] == pytest.approx(100 * (15 / 30 + 20 / 30) / 2)
    assert x["delta_vs_ref_pts"] == pytest.approx(100 * (5 / 30) / 2)
    assert x["tokens_vs_ref"] == pytest.approx(75 / 200)
    assert x["delta_ci_low"] <= x["delta_vs_ref_pts"] <= x["delta_ci_high"]
    assert x["n_problems"] == 60 and x["n_cells"] == 2


def test_select_best_breaks_ties_within_noise_toward_fewer_tokens():
    rng = np.random.default_rng(0)
    acc = (rng.random((30, 4)) < 0.5).astype(int)
    same_cheaper = _records("cheap", acc, 1000.0, seeds=4)
    same_dearer = _records("dear", acc, 3000.0, seeds=4)  # objective lower by 0.004
    sel = stats.select_best({"dear": same_dearer, "cheap": same_cheaper})
    assert sel.best == "cheap"
    # a candidate clearly better (right on every problem) wins despite its tokens
    best = _records("best", np.ones((30, 4), dtype=int), 5000.0, seeds=4)
    sel = stats.select_best({"dear": same_dearer, "best": best, "cheap": same_cheaper})
    assert sel.best == sel.top == "best" and not sel["cheap"].within_noise
    assert sel["best"].objective.low <= sel["best"].objective.estimate
    assert "chosen" in sel.table()
    # a cheaper candidate within noise of a slightly better top one is chosen
    acc[1, :] = 1
    worse = acc.copy()
    worse[1, :2] = 0  # wrong on half the seeds of one problem: within noise
    sel = stats.select_best({"top": _records("top", acc, 3000.0, seeds=4),
                             "cheap": _records("cheap", worse, 1000.0, seeds=4)})
    assert sel.top == "top" and sel["cheap"].within_noise and sel.best == "cheap"
    with pytest.raises(stats.StatsError, match="same episodes"):
        stats.select_best({"a": same_cheaper, "b": same_cheaper[:-1]})


def test_reference_named_after_the_store_width():
    narrow = [SimpleNamespace(problems=[SimpleNamespace(n_branches=16)])]
    wide = [SimpleNamespace(problems=[SimpleNamespace(n_branches=128)])]
    assert reference_label(narrow) == "SC@16" and reference_label(wide) == "SC@64"


def test_results_repr_pandas_and_reference(tmp_path, synthetic_store):
    res = evaluate("cmc", synthetic_store, models="Qwen3-4B", benchmarks="aime25",
                   seeds=range(3), betas=(0.0, 1.0), progress=False, workers=1)
    assert res.reference == "SC@64" and {r.method for r in res.records} == {"CMC"}
    text = repr(res)
    assert "np.float64" not in text and len(text) < 300 and "SYNTHETIC" in text
    assert "CMC" in text and "SC@64" in text
    assert "np." not in repr(res.summary()[0]["accuracy_pct"])
    df = res.to_pandas()
    assert len(df) == 30 * 3 * 3 and set(df["method"]) == {"CMC", "SC@64"}
    assert list(res.to_pandas("summary").columns[:15]) == stats.SUMMARY_FIELDS
    assert evaluate("cmc", synthetic_store, models="Qwen3-4B", benchmarks="aime25",
                    seeds=[0], progress=False, workers=1, reference=None).reference is None
    back = Results.read(res.write(tmp_path, plot=False)["records"])
    assert back.all_records == res.all_records and back.summary() == res.summary()
    r = repr(synthetic_store)
    assert len(r) < 300 and "9 sets" in r
    import autotts_gym

    assert autotts_gym.evaluate is evaluate and callable(autotts_gym.select_best)


def test_curves_use_the_replay_rules(synthetic_store):
    from autotts_gym.curves import reference_curves

    rows = reference_curves(synthetic_store, "Qwen3-1.7B", "aime24", range(4), max_k=64)
    sc = {r["k"]: r for r in rows if r["curve"] == "SC@k"}
    pk = {r["k"]: r for r in rows if r["curve"] == "pass@k"}
    assert sorted(sc) == list(range(1, 65))
    ref = evaluate("sc64", synthetic_store, models="Qwen3-1.7B", benchmarks="aime24",
                   seeds=range(4), progress=False, workers=1).summary()[0]
    assert sc[64]["accuracy_pct"] == pytest.approx(ref["accuracy_pct"])
    assert sc[64]["mean_tokens"] == pytest.approx(ref["mean_tokens"])
    acc = [pk[k]["accuracy_pct"] for k in range(1, 65)]
    assert acc == sorted(acc) and all(pk[k]["accuracy_pct"] >= sc[k]["accuracy_pct"]
                                      for k in sc)
    assert sc[1]["accuracy_pct"] == pk[1]["accuracy_pct"]


def test_summary_csv_columns_on_a_real_compare(tmp_path, real_store_dir):
    from autotts_cli.main import main

    out = tmp_path / "cmp"
    assert main(["compare", "--controllers", "cmc,esc", "--betas", "0.5", "--models",
                 "Qwen3-4B", "--seeds", "0-3", "--replay-dir", str(real_store_dir),
                 "--workers", "1", "--out", str(out)]) == 0
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == stats.SUMMARY_FIELDS
    assert {r["method"] for r in rows} == {"CMC", "ESC", "SC@64"}
    assert {r["benchmark"] for r in rows} == {"aime25", "hmmt25"}
    for r in rows:
        assert float(r["accuracy_ci_low"]) <= float(r["accuracy_pct"]) <= \
            float(r["accuracy_ci_high"])
        assert r["n_problems"] == "30" and r["n_seeds"] == "4"
        if r["method"] == "SC@64":
            assert float(r["delta_vs_ref_pts"]) == 0 and float(r["tokens_vs_ref"]) == 1
    with open(out / "average.csv") as f:
        avg = list(csv.DictReader(f))
    assert list(avg[0]) == stats.SUMMARY_FIELDS
    assert {(r["model"], r["benchmark"]) for r in avg} == {("all", "all")}
    assert "[" in (out / "summary.md").read_text() and (out / "frontier.png").is_file()


def test_reproduce_footnotes_exactly_the_cells_where_paper_and_code_differ(real_store,
                                                                         reference_rows):
    from autotts_gym.reproduce import FOOTNOTE, FOOTNOTE_MARK, table1, table1_markdown

    differ = {(r["model"], r["benchmark"], r["method"]) for r in reference_rows
              if abs(float(r["paper_accuracy_pct"]) - float(r["spec_accuracy_pct"])) > 0.051
              or abs(float(r["paper_tokens_k"]) - float(r["spec_mean_tokens"]) / 1e3) > 0.051}
    assert len(differ) == 6
    results, rows = table1(real_store, range(2), workers=1, progress=False)
    text = table1_markdown(rows, results.synthetic)
    marked = {tuple(c.strip() for c in line.split("|")[1:4])
              for line in text.splitlines() if FOOTNOTE_MARK in line and line.startswith("|")}
    assert marked == differ and FOOTNOTE in text
    assert "[" in text  # intervals beside the numbers


def test_curves_and_eval_commands_write_their_files(tmp_path, synthetic_store_dir):
    from autotts_cli.main import main

    assert main(["curves", "--replay-dir", str(synthetic_store_dir), "--models", "Qwen3-4B",
                 "--benchmarks", "aime24", "--seeds", "0-1", "--max-k", "8", "--out",
                 str(tmp_path / "c")]) == 0
    with open(tmp_path / "c" / "curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16 and {r["curve"] for r in rows} == {"SC@k", "pass@k"}
    assert (tmp_path / "c" / "curves.png").stat().st_size > 10_000
    assert main(["eval", "--controller", "cmc", "--betas", "0,1", "--baselines", "",
                 "--replay-dir", str(synthetic_store_dir), "--models", "Qwen3-4B",
                 "--benchmarks", "aime24", "--seeds", "0-1", "--workers", "1", "--curves",
                 "--no-progress", "--out", str(tmp_path / "e")]) == 0
    md = (tmp_path / "e" / "summary.md").read_text()
    assert "SYNTHETIC" in md and "SC@64" in md and "[" in md
    assert main(["eval", "--controller", "cmc", "--reference", "nope", "--seeds", "0",
                 "--replay-dir", str(synthetic_store_dir), "--out", str(tmp_path / "x")]) == 2
