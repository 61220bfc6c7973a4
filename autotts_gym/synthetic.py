"""A synthetic replay set generator, calibrated to the real AutoTTS data's statistics.

The public AutoTTS release carries no license, so the package ships a synthetic stand-in
made here instead (``autotts_gym/replay_data/synthetic``, see
``autotts_gym/replay_data/README.md``). Every store written by this module has
``synthetic=True``.

Generative model, per problem (``p`` = :class:`SynthParams` of one model x benchmark):

* gold answer: a random integer string in [0, 999] (AIME-style);
* branch accuracy ``a``: 0 with probability ``acc_zero`` (no branch solves it), 1 with
  probability ``acc_one``, else ``a ~ Beta(acc_mean * acc_conc, (1 - acc_mean) *
  acc_conc)`` (fitted on the problems with some but not all branches correct); each of
  the B branches is correct with probability ``a``; a wrong branch's final answer is ``ERR``
  with probability ``final_err``, else drawn from a Pitman-Yor process (concentration
  ``wrong_alpha``, discount ``wrong_discount``) over fresh wrong integers: a few popular
  wrong answers and a long tail, as in the data (fitted to the number of distinct wrong
  answers and to the probability ``(1 - d) / (1 + alpha)`` that two wrong branches agree);
* depth (number of probes) ``L = clip(round(exp(mu + correct * depth_shift + e)), 3, 80)``
  with ``mu ~ N(depth_mu, depth_sd_problem)`` per problem and ``e ~ N(0, depth_sd_branch)``
  per branch, truncated below the cap (correct branches are shorter), and a share
  ``depth_cap`` of branches hits the 80-probe cap (the data's generation limit);
* tokens ``T = probe_freq * (L - 1) + t`` with ``log t ~ N(tail_mu, tail_sd)``: the last
  interval is partial or overlong, so ``T`` is not aligned with ``500 * L`` (as in the data);
* probe answers: the last ``s`` probes equal the final answer, with ``s / L ~ Beta`` of mean
  ``settle_mean`` and concentration ``settle_conc`` (``s >= 1``, the last probe is the final
  answer, as in the data). The ``L - s`` unsettled probes form runs of geometric length
  (mean ``run_mean``); a run's answer is ``ERR`` (prob ``run_err``), the branch's own final
  answer (``run_final``), another branch's final answer of the problem (``run_pool``) or a
  problem-level scratch answer (a CRP of concentration ``junk_alpha``); consecutive runs
  differ, and the run just before the settled suffix differs from the final answer.

:func:`measure` computes the statistics (on real or synthetic :class:`ReplaySet` s);
:func:`fit` turns them into :class:`SynthParams`; ``CALIBRATED`` holds the parameters
fitted on the nine real files (regenerate with ``python -m autotts_gym.synthetic
--calibrate DIR``). ``python -m autotts_gym.synthetic --out
autotts_gym/replay_data/synthetic`` writes the bundled default: 3 pseudo-models x 3
benchmarks x 30 problems x 128 branches.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .store import ProblemBuilder, ReplaySet, write_replay_set

ERR = "ERR"
MIN_DEPTH, MAX_DEPTH = 3, 80
PROBE_FREQ = 500


@dataclass(frozen=True)
class SynthParams:
    """Parameters of the generative model (see the module doc)."""

    acc_zero: float
    acc_one: float
    acc_mean: float
    acc_conc: float
    wrong_alpha: float
    wrong_discount: float
    final_err: float
    depth_mu: float
    depth_shift: float
    depth_sd_problem: float
    depth_sd_branch: float
    depth_cap: float
    tail_mu: float
    tail_sd: float
    settle_mean: float
    settle_conc: float
    run_mean: float
    run_err: float
    run_final: float
    run_pool: float
    junk_alpha: float


# ----------------------------------------------------------------------------- measuring


def _runs(seq: list[int]) -> list[tuple[int, int]]:
    """(value, length) runs of a sequence."""
    out: list[tuple[int, int]] = []
    for a in seq:
        if out and out[-1][0] == a:
            out[-1] = (a, out[-1][1] + 1)
        else:
            out.append((a, 1))
    return out


def _crp_expected_distinct(alpha: float, n: int) -> float:
    return float(np.sum(alpha / (alpha + np.arange(n)))) if n > 0 else 0.0


def _py_expected_distinct(alpha: float, d: float, n: int) -> float:
    k = 0.0
    for i in range(n):
        k += (alpha + d * k) / (alpha + i) if i else 1.0
    return k


def _fit_pitman_yor(ns: list[int], distinct: float, agree: float) -> tuple[float, float]:
    """(alpha, discount) with pairwise agreement ``(1 - d) / (1 + alpha) = agree`` whose
    mean expected distinct count over draws ``ns`` is closest to ``distinct``."""
    agree = min(max(agree, 1e-3), 0.999)
    best = (float("inf"), 1.0, 0.0)
    for d in np.linspace(0.0, 0.95, 96):
        alpha = (1 - d) / agree - 1
        if alpha <= -d:
            continue
        k = np.mean([_py_expected_distinct(alpha, d, n) for n in ns if n > 0] or [0.0])
        best = min(best, (abs(k - distinct), alpha, d))
    return best[1], best[2]


def _fit_crp_alpha(ns: list[int], distinct: float) -> float:
    """The CRP concentration whose mean expected distinct count over draws ``ns`` is
    ``distinct`` (bisection on a log scale)."""
    if not ns or distinct <= 0:
        return 1e-3
    lo, hi = 1e-3, 1e4
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        if np.mean([_crp_expected_distinct(mid, n) for n in ns]) < distinct:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def measure(sets: ReplaySet | Iterable[ReplaySet]) -> dict[str, float]:
    """Statistics of one or more replay sets (all problems pooled).

    Outcome statistics (compared between real and synthetic data): ``majority_correct``
    (plurality of all finals, first-seen tie-break, equals gold), ``branch_acc``,
    ``agreement`` (probability two distinct branches share a final answer),
    ``distinct_finals``, ``depth_q10/q50/q90``, ``depth_max_share`` (L = 80),
    ``mean_tokens``, ``tokens_below`` (T < freq * L), ``tokens_above`` (T > freq * (L+1)),
    ``err_rate`` (ERR probes), ``final_share`` (probes equal to the final answer),
    ``changes`` (answer changes per branch), ``distinct_probe_answers`` (per problem).
    The remaining keys are the model-level estimates :func:`fit` uses.
    """
    if isinstance(sets, ReplaySet):
        sets = [sets]
    accs, majs, agree, nfin = [], [], [], []
    wrong_ns, wrong_distinct, final_err_n, wrong_n = [], [], 0, 0
    wrong_agree: list[float] = []
    log_l, corr, prob_of = [], [], []
    depth, tokens, freqs = [], [], []
    settle, err_p, fin_p, n_probes_tot, changes, ndp = [], 0, 0, 0, [], []
    unsettled_len, n_runs, run_kind = 0, 0, np.zeros(4)
    junk_ns, junk_distinct = [], []
    pid = 0
    for rs in sets:
        for p in rs.problems:
            err_id = p.answer_id(ERR)
            fin = p.final
            ok = fin == p.gold_id if p.gold_id >= 0 else np.zeros(len(fin), bool)
            accs.append(ok.mean())
            counts = np.bincount(fin, minlength=len(p.vocab))
            majs.append(p.gold_id >= 0 and int(np.argmax(counts)) == p.gold_id)
            n = len(fin)
            agree.append(float((counts * (counts - 1)).sum()) / (n * (n - 1)))
            nfin.append(int((counts > 0).sum()))
            wrong = fin[~ok]
            is_err = wrong == err_id
            final_err_n += int(is_err.sum())
            wrong_n += len(wrong)
            wrong_ns.append(int((~is_err).sum()))
            w = wrong[~is_err]
            wrong_distinct.append(len(set(w.tolist())))
            if len(w) >= 2:
                c = np.bincount(w)
                wrong_agree.append(float((c * (c - 1)).sum()) / (len(w) * (len(w) - 1)))
            finals_set = set(fin.tolist())
            junk_seen: set[int] = set()
            junk_runs = 0
            seen: set[int] = set()
            for b in range(n):
                pr = p.branch_probes(b).tolist()
                L = len(pr)
                f = int(fin[b])
                depth.append(L)
                tokens.append(int(p.tokens[b]))
                freqs.append(p.probe_freq)
                log_l.append(math.log(L))
                corr.append(bool(ok[b]))
                prob_of.append(pid)
                seen.update(pr)
                n_probes_tot += L
                err_p += sum(a == err_id for a in pr)
                fin_p += sum(a == f for a in pr)
                changes.append(sum(x != y for x, y in itertools.pairwise(pr)))
                s = 0
                while s < L and pr[L - 1 - s] == f:
                    s += 1
                settle.append(s / L)
                head = pr[: L - s]
                unsettled_len += len(head)
                for a, _ in _runs(head):
                    n_runs += 1
                    if a == err_id:
                        run_kind[0] += 1
                    elif a == f:
                        run_kind[1] += 1
                    elif a in finals_set:
                        run_kind[2] += 1
                    else:
                        run_kind[3] += 1
                        junk_runs += 1
                        junk_seen.add(a)
            junk_ns.append(junk_runs)
            junk_distinct.append(len(junk_seen))
            ndp.append(len(seen))
            pid += 1
    depth_a, tokens_a, freqs_a = np.array(depth), np.array(tokens), np.array(freqs)
    log_l_a, corr_a, prob_a = np.array(log_l), np.array(corr), np.array(prob_of)
    # depth model: log L = mu_problem + shift * correct + noise
    diffs = [log_l_a[(prob_a == i) & corr_a].mean() - log_l_a[(prob_a == i) & ~corr_a].mean()
             for i in range(pid) if 0 < corr_a[prob_a == i].sum() < (prob_a == i).sum()]
    shift = float(np.mean(diffs)) if diffs else 0.0
    resid = log_l_a - shift * corr_a
    mus = np.array([resid[prob_a == i].mean() for i in range(pid)])
    within = resid - mus[prob_a]
    wrong_alpha, wrong_discount = _fit_pitman_yor(
        wrong_ns, float(np.mean(wrong_distinct)), float(np.mean(wrong_agree or [0.0])))
    tail = tokens_a - freqs_a * (depth_a - 1)
    acc_a = np.array(accs)
    mid = acc_a[(acc_a > 0) & (acc_a < 1)]
    settle_a = np.array(settle)
    return {
        # outcome statistics
        "majority_correct": float(np.mean(majs)),
        "branch_acc": float(acc_a.mean()),
        "agreement": float(np.mean(agree)),
        "distinct_finals": float(np.mean(nfin)),
        "depth_q10": float(np.quantile(depth_a, 0.1)),
        "depth_q50": float(np.quantile(depth_a, 0.5)),
        "depth_q90": float(np.quantile(depth_a, 0.9)),
        "depth_max_share": float(np.mean(depth_a >= MAX_DEPTH)),
        "mean_tokens": float(tokens_a.mean()),
        "tokens_below": float(np.mean(tokens_a < freqs_a * depth_a)),
        "tokens_above": float(np.mean(tokens_a > freqs_a * (depth_a + 1))),
        "err_rate": err_p / n_probes_tot,
        "final_share": fin_p / n_probes_tot,
        "changes": float(np.mean(changes)),
        "distinct_probe_answers": float(np.mean(ndp)),
        # model-level estimates
        "acc_zero": float(np.mean(acc_a == 0)),
        "acc_one": float(np.mean(acc_a == 1)),
        "acc_mid_mean": float(mid.mean()) if len(mid) else 0.5,
        "acc_mid_var": float(mid.var()) if len(mid) > 1 else 0.05,
        "final_err": final_err_n / max(wrong_n, 1),
        "wrong_agree": float(np.mean(wrong_agree or [0.0])),
        "wrong_alpha": wrong_alpha,
        "wrong_discount": wrong_discount,
        # robust centre and spread: the data's log-depth is skewed, so match its quantiles
        "depth_mu": float(mus.mean() + np.median(within)),
        "depth_shift": shift,
        "depth_sd_problem": float(mus.std()),
        "depth_sd_branch": float(np.subtract(*np.quantile(within, [0.75, 0.25])) / 1.349),
        "depth_cap": float(np.mean(depth_a >= MAX_DEPTH)),
        "tail_mu": float(np.log(np.maximum(tail, 1)).mean()),
        "tail_sd": float(np.log(np.maximum(tail, 1)).std()),
        "settle_mean": float(settle_a.mean()),
        "settle_var": float(settle_a.var()),
        "run_mean": unsettled_len / max(n_runs, 1),
        "run_err": float(run_kind[0] / max(n_runs, 1)),
        "run_final": float(run_kind[1] / max(n_runs, 1)),
        "run_pool": float(run_kind[2] / max(n_runs, 1)),
        "junk_alpha": _fit_crp_alpha(junk_ns, float(np.mean(junk_distinct))),
    }


def fit(stats: dict[str, float]) -> SynthParams:
    """Generator parameters from :func:`measure` statistics (method of moments)."""
    m = min(max(stats["acc_mid_mean"], 1e-3), 1 - 1e-3)
    conc = max(m * (1 - m) / max(stats["acc_mid_var"], 1e-6) - 1, 0.05)
    sm = min(max(stats["settle_mean"], 1e-3), 1 - 1e-3)
    sconc = max(sm * (1 - sm) / max(stats["settle_var"], 1e-6) - 1, 0.05)
    names = {f.name for f in fields(SynthParams)}
    vals = {k: float(v) for k, v in stats.items() if k in names}
    vals.update(acc_mean=m, acc_conc=conc, settle_mean=sm, settle_conc=sconc)
    return SynthParams(**{k: round(vals[k], 5) for k in names})


# ----------------------------------------------------------------------------- generating


class _Crp:
    """A sequential Pitman-Yor (Chinese restaurant) process over fresh values from
    ``new()``: concentration ``alpha``, discount ``d`` (0: the plain CRP)."""

    def __init__(self, rng: np.random.Generator, alpha: float, new, d: float = 0.0):
        self.rng, self.alpha, self.d, self.new = rng, alpha, d, new
        self.values: list[str] = []
        self.sizes: list[int] = []
        self.n = 0

    def draw(self) -> str:
        n, k_tables = self.n, len(self.sizes)
        if n == 0 or self.rng.random() * (n + self.alpha) < self.alpha + self.d * k_tables:
            self.values.append(self.new())
            self.sizes.append(0)
            k = k_tables
        else:
            w = np.asarray(self.sizes, dtype=float) - self.d
            k = int(self.rng.choice(k_tables, p=w / w.sum()))
        self.sizes[k] += 1
        self.n += 1
        return self.values[k]


def _depths(rng: np.random.Generator, p: SynthParams, centre: np.ndarray) -> np.ndarray:
    """Probe counts: ``log L ~ N(centre, depth_sd_branch)`` truncated below the cap
    (inverse-CDF sampling), then a share ``depth_cap`` of branches is set to the cap."""
    from scipy.special import ndtr, ndtri

    sd = p.depth_sd_branch
    z_max = (math.log(MAX_DEPTH - 0.5) - centre) / sd
    u = rng.random(len(centre)) * ndtr(z_max)
    depth = np.round(np.exp(centre + sd * ndtri(np.maximum(u, 1e-12))))
    depth = np.clip(depth, MIN_DEPTH, MAX_DEPTH).astype(int)
    depth[rng.random(len(depth)) < p.depth_cap] = MAX_DEPTH
    return depth


def _probes(rng: np.random.Generator, p: SynthParams, L: int, final: str,
            pool: list[str], junk: _Crp) -> list[str]:
    a, b = p.settle_mean * p.settle_conc, (1 - p.settle_mean) * p.settle_conc
    s = min(L, max(1, round(rng.beta(a, b) * L)))
    head: list[str] = []
    kinds = np.array([p.run_err, p.run_final, p.run_pool,
                      max(1 - p.run_err - p.run_final - p.run_pool, 0.0)])
    kinds = kinds / kinds.sum()
    others = [x for x in pool if x != final]
    q = 1.0 / max(p.run_mean, 1.0)
    while len(head) < L - s:
        for _ in range(20):  # a run value differing from the previous run
            k = int(rng.choice(4, p=kinds))
            if k == 0:
                v = ERR
            elif k == 1:
                v = final
            elif k == 2 and others:
                v = others[int(rng.integers(len(others)))]
            else:
                v = junk.draw()
            if (not head or v != head[-1]) and not (
                    v == final and len(head) + 1 >= L - s):
                break
        n = min(int(rng.geometric(q)), L - s - len(head))
        if v == final and len(head) + n >= L - s:
            n = L - s - len(head) - 1  # keep the probe before the settled suffix != final
            if n <= 0:
                v, n = junk.draw(), 1
        head.extend([v] * n)
    return head + [final] * s


def generate_set(params: SynthParams, model: str, benchmark: str, n_problems: int = 30,
                 n_branches: int = 128, seed: int = 0,
                 probe_freq: int = PROBE_FREQ) -> ReplaySet:
    """One synthetic replay set; deterministic given the arguments."""
    p = params
    rng = np.random.default_rng([seed, zlib.crc32(model.encode()),
                                 zlib.crc32(benchmark.encode())])
    problems = []
    for i in range(n_problems):
        gold = str(int(rng.integers(0, 1000)))

        def new_wrong(g=gold) -> str:
            while True:
                v = str(int(rng.integers(0, 1000)))
                if v != g:
                    return v

        def new_junk() -> str:
            return f"{int(rng.integers(1, 100))}.{int(rng.integers(0, 10))}"

        u = rng.random()
        acc = (0.0 if u < p.acc_zero else 1.0 if u < p.acc_zero + p.acc_one
               else rng.beta(p.acc_mean * p.acc_conc, (1 - p.acc_mean) * p.acc_conc))
        correct = rng.random(n_branches) < acc
        wrong = _Crp(rng, p.wrong_alpha, new_wrong, p.wrong_discount)
        finals = [gold if c else (ERR if rng.random() < p.final_err else wrong.draw())
                  for c in correct]
        mu = rng.normal(p.depth_mu, p.depth_sd_problem)
        depth = _depths(rng, p, mu + p.depth_shift * correct)
        tail = np.maximum(np.round(np.exp(rng.normal(p.tail_mu, p.tail_sd, n_branches))), 1)
        tokens = probe_freq * (depth - 1) + tail.astype(int)
        junk = _Crp(rng, p.junk_alpha, new_junk)
        pool = sorted(set(finals))
        builder = ProblemBuilder(i, f"Synthetic problem {i} ({benchmark}-like).", gold,
                                 probe_freq)
        for b in range(n_branches):
            pr = _probes(rng, p, int(depth[b]), finals[b], pool, junk)
            builder.add_branch(pr, int(tokens[b]), finals[b])
        problems.append(builder.build())
    return ReplaySet(
        model=model, benchmark=benchmark, problems=problems,
        source_file=f"autotts_gym.synthetic (seed {seed})", source_sha256="",
        synthetic=True,
        extra_attrs={"synthetic_params": repr(asdict(p))},
    )


def generate_store(out: Path, seed: int = 0, n_problems: int = 30,
                   n_branches: int = 128) -> list[Path]:
    """Write one synthetic set per calibrated (model, benchmark), as
    ``<out>/<model>/<benchmark>.h5`` (the real model names; every set carries
    ``synthetic=True``, and every output made from it says SYNTHETIC). Returns the written
    paths."""
    paths = []
    for (model, bench), params in sorted(CALIBRATED.items()):
        rs = generate_set(params, model, bench, n_problems, n_branches, seed)
        path = Path(out) / rs.model / f"{bench}.h5"
        write_replay_set(path, rs)
        paths.append(path)
    return paths


# Fitted on the nine real files (github.com/zhengkid/AutoTTS release) by
# `python -m autotts_gym.synthetic --calibrate ../shared/replay/autotts`.
CALIBRATED: dict[tuple[str, str], SynthParams] = {
    ('Qwen3-0.6B', 'aime24'): SynthParams(
        acc_zero=0.43333, acc_one=0.0, acc_mean=0.1921, acc_conc=1.56503, wrong_alpha=2.85482,
        wrong_discount=0.62, final_err=0.00468, depth_mu=3.32967, depth_shift=-0.21143,
        depth_sd_problem=0.3841, depth_sd_branch=0.36066, depth_cap=0.00182, tail_mu=6.67247,
        tail_sd=0.49863, settle_mean=0.20976, settle_conc=2.25237, run_mean=2.4925,
        run_err=0.06655, run_final=0.06228, run_pool=0.34903, junk_alpha=89.96778,
    ),
    ('Qwen3-0.6B', 'aime25'): SynthParams(
        acc_zero=0.4, acc_one=0.0, acc_mean=0.27951, acc_conc=1.1499, wrong_alpha=1.57815,
        wrong_discount=0.73, final_err=0.00532, depth_mu=3.1871, depth_shift=-0.28864,
        depth_sd_problem=0.43441, depth_sd_branch=0.38064, depth_cap=0.00078, tail_mu=6.65278,
        tail_sd=0.5304, settle_mean=0.23618, settle_conc=2.36893, run_mean=2.04268,
        run_err=0.09325, run_final=0.046, run_pool=0.29659, junk_alpha=77.78454,
    ),
    ('Qwen3-0.6B', 'hmmt25'): SynthParams(
        acc_zero=0.5, acc_one=0.0, acc_mean=0.17031, acc_conc=1.30956, wrong_alpha=1.15835,
        wrong_discount=0.66, final_err=0.00313, depth_mu=3.22121, depth_shift=-0.16268,
        depth_sd_problem=0.4722, depth_sd_branch=0.38227, depth_cap=0.00182, tail_mu=6.64705,
        tail_sd=0.50469, settle_mean=0.2488, settle_conc=2.45315, run_mean=2.30412,
        run_err=0.05288, run_final=0.09591, run_pool=0.32218, junk_alpha=76.54167,
    ),
    ('Qwen3-1.7B', 'aime24'): SynthParams(
        acc_zero=0.2, acc_one=0.06667, acc_mean=0.53551, acc_conc=2.19367, wrong_alpha=2.33532,
        wrong_discount=0.51, final_err=0.0053, depth_mu=3.47179, depth_shift=-0.43882,
        depth_sd_problem=0.40176, depth_sd_branch=0.27273, depth_cap=0.00469, tail_mu=6.79967,
        tail_sd=0.56936, settle_mean=0.30846, settle_conc=2.14594, run_mean=2.28324,
        run_err=0.07389, run_final=0.04621, run_pool=0.33135, junk_alpha=47.94871,
    ),
    ('Qwen3-1.7B', 'aime25'): SynthParams(
        acc_zero=0.23333, acc_one=0.06667, acc_mean=0.40997, acc_conc=0.70936,
        wrong_alpha=0.84877, wrong_discount=0.63, final_err=0.01813, depth_mu=3.38728,
        depth_shift=-0.32214, depth_sd_problem=0.50737, depth_sd_branch=0.24942,
        depth_cap=0.00078, tail_mu=6.86335, tail_sd=0.61252, settle_mean=0.29225,
        settle_conc=2.2253, run_mean=2.15619, run_err=0.07716, run_final=0.03645,
        run_pool=0.26114, junk_alpha=54.01312,
    ),
    ('Qwen3-1.7B', 'hmmt25'): SynthParams(
        acc_zero=0.36667, acc_one=0.03333, acc_mean=0.30208, acc_conc=0.65388,
        wrong_alpha=0.38827, wrong_discount=0.61, final_err=0.00166, depth_mu=3.46235,
        depth_shift=-0.26703, depth_sd_problem=0.438, depth_sd_branch=0.23991,
        depth_cap=0.00104, tail_mu=6.92726, tail_sd=0.49046, settle_mean=0.33397,
        settle_conc=2.04086, run_mean=2.61155, run_err=0.0508, run_final=0.09681,
        run_pool=0.4987, junk_alpha=29.94903,
    ),
    ('Qwen3-4B', 'aime24'): SynthParams(
        acc_zero=0.1, acc_one=0.23333, acc_mean=0.72773, acc_conc=1.09056, wrong_alpha=1.10162,
        wrong_discount=0.44, final_err=0.01295, depth_mu=3.4844, depth_shift=-0.58777,
        depth_sd_problem=0.4666, depth_sd_branch=0.25377, depth_cap=0.00286, tail_mu=6.61127,
        tail_sd=0.53151, settle_mean=0.34119, settle_conc=2.5514, run_mean=2.24068,
        run_err=0.18814, run_final=0.05345, run_pool=0.24878, junk_alpha=17.34419,
    ),
    ('Qwen3-4B', 'aime25'): SynthParams(
        acc_zero=0.1, acc_one=0.23333, acc_mean=0.62266, acc_conc=1.07263, wrong_alpha=1.01989,
        wrong_discount=0.55, final_err=0.04519, depth_mu=3.44568, depth_shift=-0.27744,
        depth_sd_problem=0.55141, depth_sd_branch=0.22576, depth_cap=0.00156, tail_mu=6.83622,
        tail_sd=0.58475, settle_mean=0.29276, settle_conc=3.05591, run_mean=2.05139,
        run_err=0.21458, run_final=0.04594, run_pool=0.18202, junk_alpha=32.78822,
    ),
    ('Qwen3-4B', 'hmmt25'): SynthParams(
        acc_zero=0.36667, acc_one=0.1, acc_mean=0.53369, acc_conc=0.6993, wrong_alpha=0.9341,
        wrong_discount=0.45, final_err=0.00719, depth_mu=3.58014, depth_shift=-0.44433,
        depth_sd_problem=0.42702, depth_sd_branch=0.24489, depth_cap=0.00495, tail_mu=6.90155,
        tail_sd=0.56498, settle_mean=0.31899, settle_conc=2.54093, run_mean=2.86396,
        run_err=0.16381, run_final=0.08756, run_pool=0.36647, junk_alpha=18.01837,
    ),
}


def calibrate(json_dir: Path) -> dict[tuple[str, str], SynthParams]:
    """Import the real JSON into a temporary store and fit one parameter set per file."""
    import tempfile

    from .importer import import_sources
    from .store import ReplayStore

    with tempfile.TemporaryDirectory() as tmp:
        import_sources(json_dir, Path(tmp))
        store = ReplayStore(tmp)
        return {rs.key: fit(measure(rs)) for rs in store}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autotts_gym.synthetic",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="write the synthetic store here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibrate", type=Path, metavar="JSON_DIR",
                    help="print CALIBRATED fitted on real AutoTTS JSON")
    args = ap.parse_args(argv)
    if args.calibrate:
        print("CALIBRATED: dict[tuple[str, str], SynthParams] = {")
        for key, sp in calibrate(args.calibrate).items():
            args_ = ", ".join(f"{k}={v!r}" for k, v in asdict(sp).items())
            print(f"    {key!r}: SynthParams({args_}),")
        print("}")
    if args.out:
        for path in generate_store(args.out, args.seed):
            print(path)
    if not (args.out or args.calibrate):
        ap.error("give --out DIR and/or --calibrate JSON_DIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
