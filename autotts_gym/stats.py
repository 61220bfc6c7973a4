"""Problem-level uncertainty: every number a report prints comes with an interval from here.

The unit of resampling is the problem. A seed only reorders the same cached branches, so
each problem's correctness (and tokens) is first averaged over its seeds; the question an
interval answers is "would this hold on other problems like these?".

* :func:`cell_stats`: one (model, benchmark, method, beta) cell: accuracy with a 95%
  interval, and against a reference cell the paired difference in accuracy (points) and
  in tokens, the token ratio, each with a 95% interval, and the probability of
  improvement (share of problems where the method does better, ties counted half, the
  per-problem form of rliable's ``probability_of_improvement``). Resampling by
  ``scipy.stats.bootstrap`` (paired, percentile).
* :func:`pooled_stats`: the same for an average over cells (the held-out average, an
  average over models) by a stratified bootstrap: problems are resampled within each cell.
* :func:`summarize` / :func:`pooled_summary`: the rows of ``summary.csv`` / ``average.csv``.
* :func:`select_best`: pick the best of several candidates by the protocol's objective,
  with its interval, breaking ties within noise toward fewer tokens (discovery rounds and
  RL checkpoints use it).

Every resampling draws from ``numpy.random.default_rng(seed)`` afresh, so the same input
gives the same interval in any order and any process.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .errors import UsageError
from .protocol import ScoredEpisode

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
SEED = 0
INTERVAL_METHOD = ("95% percentile bootstrap over problems (each problem's correctness "
                   "averaged over its seeds first), 10,000 resamples")

SUMMARY_FIELDS = ["model", "benchmark", "method", "beta", "accuracy_pct", "accuracy_ci_low",
                  "accuracy_ci_high", "mean_tokens", "tokens_vs_ref", "delta_vs_ref_pts",
                  "delta_ci_low", "delta_ci_high", "p_improvement", "n_problems", "n_seeds"]
ALL = "all"


class StatsError(UsageError):
    """Inputs the statistics cannot use (no episodes, episodes that do not pair up)."""


class Record(ScoredEpisode, Protocol):
    """What the statistics need of an episode record (``harness.EpisodeRecord``): the
    objective's fields (:class:`~autotts_gym.protocol.ScoredEpisode`) and where the episode
    comes from; read-only members, so frozen dataclasses satisfy it."""

    @property
    def model(self) -> str: ...
    @property
    def benchmark(self) -> str: ...
    @property
    def problem(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def method(self) -> str: ...


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% interval."""

    estimate: float
    low: float
    high: float

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside the interval."""
        return not self.low <= value <= self.high

    def scaled(self, k: float) -> Interval:
        return Interval(self.estimate * k, self.low * k, self.high * k)

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"

    __repr__ = __str__


@dataclass(frozen=True)
class Cell:
    """One (model, benchmark, method, beta) cell, reduced to one value per problem."""

    model: str
    benchmark: str
    method: str
    beta: float
    problems: np.ndarray  # problem indices, sorted
    correct: np.ndarray  # per problem: mean correctness over its seeds, in [0, 1]
    tokens: np.ndarray  # per problem: mean tokens over its seeds
    n_seeds: int

    @property
    def key(self) -> tuple[str, str, str, float]:
        return (self.model, self.benchmark, self.method, self.beta)

    def __repr__(self) -> str:
        return (f"Cell({self.model}/{self.benchmark}, {self.method}, beta {self.beta:g}: "
                f"{len(self.problems)} problems x {self.n_seeds} seeds)")


@dataclass(frozen=True)
class CellStats:
    """What a report prints about one cell (or a pool of cells) against a reference."""

    accuracy: Interval  # percent
    mean_tokens: float
    delta: Interval | None = None  # accuracy - reference accuracy, points
    tokens_delta: Interval | None = None  # tokens - reference tokens
    tokens_ratio: Interval | None = None  # tokens / reference tokens
    p_improvement: float | None = None
    n_problems: int = 0
    n_seeds: int = 0
    n_cells: int = 1


# ----------------------------------------------------------------------------- cells


CellKey = tuple[str, str, str, float]  # (model, benchmark, method, beta)


def cells_from_records(records: Iterable[Record]) -> dict[CellKey, Cell]:
    """Group episode records into cells keyed ``(model, benchmark, method, beta)``."""
    groups: dict[CellKey, list[tuple[int, int, float, float]]] = defaultdict(list)
    for r in records:
        groups[(r.model, r.benchmark, r.method, float(r.beta))].append(
            (r.problem, r.seed, float(r.correct), float(r.tokens)))
    out: dict[CellKey, Cell] = {}
    for key, rows in sorted(groups.items()):
        model, benchmark, method, beta = key
        a = np.asarray(rows, dtype=np.float64)
        problems, inv = np.unique(a[:, 0].astype(np.int64), return_inverse=True)
        n = np.bincount(inv)
        out[key] = Cell(model, benchmark, method, beta, problems=problems,
                        correct=np.bincount(inv, weights=a[:, 2]) / n,
                        tokens=np.bincount(inv, weights=a[:, 3]) / n,
                        n_seeds=len(np.unique(a[:, 1])))
    return out


def _pair(cell: Cell, ref: Cell) -> tuple[np.ndarray, ...]:
    """Per-problem arrays of a cell and its reference on their common problems."""
    if np.array_equal(cell.problems, ref.problems):
        return cell.correct, ref.correct, cell.tokens, ref.tokens
    common, i, j = np.intersect1d(cell.problems, ref.problems, return_indices=True)
    if not len(common):
        raise StatsError(f"{cell!r} and reference {ref!r} share no problem")
    return cell.correct[i], ref.correct[j], cell.tokens[i], ref.tokens[j]


def probability_of_improvement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of problems where ``a`` beats ``b`` (ties count half)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return float(np.mean((d > 0) + 0.5 * (d == 0)))


def _percentile(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1 - CONFIDENCE) / 2
    return np.quantile(dist, alpha, axis=-1), np.quantile(dist, 1 - alpha, axis=-1)


def mean_interval(values: Sequence[float] | np.ndarray, n_resamples: int = N_RESAMPLES,
                  seed: int = SEED) -> Interval:
    """The mean of per-problem values with a 95% percentile bootstrap interval."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise StatsError("the mean of no values has no interval")
    if x.size == 1 or np.all(x == x[0]):
        return Interval(float(x.mean()), float(x.mean()), float(x.mean()))
    res = bootstrap((x,), np.mean, vectorized=True, method="percentile",
                    n_resamples=n_resamples, confidence_level=CONFIDENCE,
                    rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return Interval(float(x.mean()), float(ci.low), float(ci.high))


def mean_intervals(values: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = SEED
                   ) -> list[Interval]:
    """:func:`mean_interval` for each row of a ``(k, n)`` array (k statistics over the same
    n problems, e.g. SC@k for k = 1..K), in one vectorized bootstrap."""
    from scipy.stats import bootstrap

    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    est = x.mean(axis=-1)
    if x.shape[-1] < 2:
        return [Interval(float(e), float(e), float(e)) for e in est]
    res = bootstrap((x,), np.mean, vectorized=True, axis=-1, method="percentile",
                    n_resamples=n_resamples, confidence_level=CONFIDENCE,
                    batch=max(1, 4_000_000 // x.size), rng=np.random.default_rng(seed))
    lo, hi = res.confidence_interval.low, res.confidence_interval.high
    return [Interval(float(e), float(e if np.isnan(a) else a), float(e if np.isnan(b) else b))
            for e, a, b in zip(est, lo, hi, strict=True)]


def paired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                      n_resamples: int = N_RESAMPLES, seed: int = SEED) -> Interval:
    """Mean of ``a - b`` over problems (paired), with a 95% percentile bootstrap interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise StatsError(f"paired values must have the same shape, got {a.shape} and "
                         f"{b.shape}")
    return mean_interval(a - b, n_resamples, seed)


def cell_stats(cell: Cell, ref: Cell | None = None, n_resamples: int = N_RESAMPLES,
               seed: int = SEED) -> CellStats:
    """Accuracy (%) of a cell with its interval; against ``ref``, the paired differences."""
    from scipy.stats import bootstrap

    n = len(cell.problems)
    if ref is None:
        return CellStats(mean_interval(cell.correct, n_resamples, seed).scaled(100),
                         float(cell.tokens.mean()), n_problems=n, n_seeds=cell.n_seeds)
    a, b, ta, tb = _pair(cell, ref)
    point = _statistics(a, b, ta, tb, axis=-1)
    if len(a) < 2:
        low = high = point
    else:
        res = bootstrap((a, b, ta, tb), _statistics, paired=True, vectorized=True,
                        method="percentile", n_resamples=n_resamples,
                        confidence_level=CONFIDENCE, rng=np.random.default_rng(seed))
        low, high = res.confidence_interval.low, res.confidence_interval.high
    return _stats_from(point, low, high, probability_of_improvement(a, b), n,
                       cell.n_seeds, 1)


def _statistics(a: np.ndarray, b: np.ndarray, ta: np.ndarray, tb: np.ndarray, *,
                axis: int = -1) -> np.ndarray:
    """accuracy %, accuracy delta (points), tokens delta, tokens ratio (resampled together)."""
    ma, mb, mta, mtb = (np.mean(x, axis=axis) for x in (a, b, ta, tb))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mta / mtb
    return np.stack([100 * ma, 100 * (ma - mb), mta - mtb, ratio, mta])


def _stats_from(point, low, high, p_imp, n, n_seeds, n_cells) -> CellStats:
    iv = [Interval(float(p), float(lo), float(hi))
          for p, lo, hi in zip(point, low, high, strict=True)]
    # degenerate resamples (identical values) can give a NaN bound: use the estimate
    iv = [Interval(i.estimate, i.estimate if np.isnan(i.low) else i.low,
                   i.estimate if np.isnan(i.high) else i.high) for i in iv]
    return CellStats(iv[0], float(point[4]), delta=iv[1], tokens_delta=iv[2],
                     tokens_ratio=iv[3] if np.isfinite(point[3]) else None,
                     p_improvement=p_imp, n_problems=n, n_seeds=n_seeds, n_cells=n_cells)


def stratified_resample_means(strata: Sequence[np.ndarray], n_resamples: int = N_RESAMPLES,
                              seed: int = SEED) -> np.ndarray:
    """Bootstrap the mean over strata of per-stratum means, resampling within each stratum.

    ``strata[i]`` is a ``(k, n_i)`` array: k quantities (resampled together, i.e. paired)
    over the n_i problems of cell i. Returns a ``(k, n_resamples)`` array of the resampled
    averages over cells (cells weighted equally).
    """
    rng = np.random.default_rng(seed)
    total = None
    for x in strata:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        idx = rng.integers(0, x.shape[1], size=(n_resamples, x.shape[1]))
        m = x[:, idx].mean(axis=-1)  # (k, R)
        total = m if total is None else total + m
    if total is None:
        raise StatsError("no cells to pool")
    return total / len(strata)


def pooled_stats(cells: Sequence[Cell], refs: Sequence[Cell | None] | None = None,
                 n_resamples: int = N_RESAMPLES, seed: int = SEED) -> CellStats:
    """The average over ``cells`` (each weighted equally) with stratified-bootstrap
    intervals; with ``refs`` (one per cell, all present) the paired differences too."""
    if not cells:
        raise StatsError("no cells to pool")
    n_seeds = min(c.n_seeds for c in cells)
    if refs is not None and len(refs) != len(cells):
        raise StatsError(f"{len(refs)} reference cells for {len(cells)} cells")
    paired = [] if refs is None else [r for r in refs if r is not None]
    if len(paired) != len(cells):  # no reference, or one is missing: accuracy only
        strata = [np.stack([c.correct, c.tokens]) for c in cells]
        dist = stratified_resample_means(strata, n_resamples, seed)
        point = np.mean([[c.correct.mean(), c.tokens.mean()] for c in cells], axis=0)
        lo, hi = _percentile(dist[0])
        acc = Interval(100 * float(point[0]), 100 * float(lo), 100 * float(hi))
        return CellStats(acc, float(point[1]), n_problems=sum(len(c.problems) for c in cells),
                         n_seeds=n_seeds, n_cells=len(cells))
    pairs = [_pair(c, r) for c, r in zip(cells, paired, strict=True)]
    strata = [np.stack(p) for p in pairs]
    dist = stratified_resample_means(strata, n_resamples, seed)  # (4, R): a, b, ta, tb
    point_means = np.mean([[x.mean() for x in p] for p in pairs], axis=0)
    stat = _statistics(*(d[:, None] for d in dist), axis=-1)  # (5, R)
    point = _statistics(*point_means[:, None], axis=-1)  # (5,)
    low, high = _percentile(stat)
    p_imp = float(np.mean([probability_of_improvement(p[0], p[1]) for p in pairs]))
    return _stats_from(point, low, high, p_imp, sum(len(p[0]) for p in pairs), n_seeds,
                       len(cells))


# ----------------------------------------------------------------------------- summaries


_SC = re.compile(r"^SC@(\d+)$")


def default_reference(methods: Iterable[str], preferred: str | None = None) -> str | None:
    """The reference method: ``preferred`` when present, else the widest ``SC@k``."""
    methods = set(methods)
    if preferred is not None:
        if preferred not in methods:
            raise StatsError(f"reference {preferred!r} is not among the methods "
                             f"({', '.join(sorted(methods))})")
        return preferred
    sc = sorted((int(m.group(1)), m.group(0)) for m in map(_SC.match, methods) if m)
    return sc[-1][1] if sc else None


def _reference_cell(cells: Mapping[tuple, Cell], model: str, benchmark: str, beta: float,
                    reference: str | None) -> Cell | None:
    """The reference cell to pair (model, benchmark, beta) with: the same beta if the
    reference has it, else its only beta (SC@k ignores beta)."""
    if reference is None:
        return None
    same = cells.get((model, benchmark, reference, beta))
    if same is not None:
        return same
    others = [c for k, c in cells.items() if k[:3] == (model, benchmark, reference)]
    return others[0] if len(others) == 1 else None


def _row(model, benchmark, method, beta, s: CellStats, reference: str | None) -> dict:
    d, r = s.delta, s.tokens_ratio
    row = {
        "model": model, "benchmark": benchmark, "method": method, "beta": float(beta),
        "accuracy_pct": s.accuracy.estimate, "accuracy_ci_low": s.accuracy.low,
        "accuracy_ci_high": s.accuracy.high, "mean_tokens": s.mean_tokens,
        "tokens_vs_ref": None if r is None else r.estimate,
        "delta_vs_ref_pts": None if d is None else d.estimate,
        "delta_ci_low": None if d is None else d.low,
        "delta_ci_high": None if d is None else d.high,
        "p_improvement": s.p_improvement, "n_problems": s.n_problems, "n_seeds": s.n_seeds,
        # beyond the CSV contract: token intervals and the reference's name
        "tokens_vs_ref_ci_low": None if r is None else r.low,
        "tokens_vs_ref_ci_high": None if r is None else r.high,
        "tokens_delta": None if s.tokens_delta is None else s.tokens_delta.estimate,
        "tokens_delta_ci_low": None if s.tokens_delta is None else s.tokens_delta.low,
        "tokens_delta_ci_high": None if s.tokens_delta is None else s.tokens_delta.high,
        "reference": reference if d is not None else None, "n_cells": s.n_cells,
    }
    return row


def summarize(records: Iterable[Record], reference: str | None = None,
              n_resamples: int = N_RESAMPLES, seed: int = SEED) -> list[dict]:
    """One row per (model, benchmark, method, beta): the ``summary.csv`` contract
    (:data:`SUMMARY_FIELDS`, accuracy and deltas in percent points) plus token intervals.

    ``reference``: the method compared against (default: the widest ``SC@k`` present;
    none present and none named: no differences). The reference's own row has delta 0.
    """
    cells = cells_from_records(records)
    ref = default_reference({k[2] for k in cells}, reference)
    rows = []
    for (m, b, meth, beta), cell in cells.items():
        rc = _reference_cell(cells, m, b, beta, ref)
        rows.append(_row(m, b, meth, beta, cell_stats(cell, rc, n_resamples, seed), ref))
    return rows


def pooled_summary(records: Iterable[Record], reference: str | None = None,
                   over: Sequence[str] = ("model", "benchmark"),
                   n_resamples: int = N_RESAMPLES, seed: int = SEED) -> list[dict]:
    """Rows averaged over cells (stratified bootstrap): ``over=("model", "benchmark")``
    gives one row per (method, beta) with model and benchmark ``all`` (``average.csv``);
    ``over=("model",)`` averages over models per benchmark."""
    bad = set(over) - {"model", "benchmark"}
    if bad or not over:
        raise StatsError(f"can pool over model and/or benchmark, not {sorted(bad) or over}")
    cells = cells_from_records(records)
    ref = default_reference({k[2] for k in cells}, reference)
    groups: dict[tuple, list[Cell]] = defaultdict(list)
    for (m, b, meth, beta), cell in cells.items():
        gm = ALL if "model" in over else m
        gb = ALL if "benchmark" in over else b
        groups[(gm, gb, meth, beta)].append(cell)
    rows = []
    for (gm, gb, meth, beta), group in sorted(groups.items()):
        refs = [_reference_cell(cells, c.model, c.benchmark, beta, ref) for c in group]
        s = pooled_stats(group, refs if ref is not None else None, n_resamples, seed)
        rows.append(_row(gm, gb, meth, beta, s, ref))
    return rows


# ----------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Candidate:
    """One candidate's search-set objective with its interval."""

    name: str
    objective: Interval  # mean episode objective (protocol.episode_objective)
    mean_tokens: float
    vs_best: Interval  # paired difference to the highest-objective candidate
    within_noise: bool  # vs_best's interval contains 0


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and every candidate's objective interval."""

    best: str
    top: str  # the highest point estimate (differs from best when a cheaper one ties)
    candidates: tuple[Candidate, ...]
    rule: str = ("highest mean objective; among candidates whose paired difference to it "
                 "has a 95% interval containing 0, the one with the fewest tokens")

    def __getitem__(self, name: str) -> Candidate:
        return next(c for c in self.candidates if c.name == name)

    def table(self) -> str:
        lines = ["| candidate | objective [95% CI] | mean tokens | vs top [95% CI] | |",
                 "|---|---|---|---|---|"]
        for c in self.candidates:
            mark = "chosen" if c.name == self.best else ("tie" if c.within_noise else "")
            lines.append(f"| {c.name} | {c.objective.estimate:.4f} [{c.objective.low:.4f}, "
                         f"{c.objective.high:.4f}] | {c.mean_tokens:,.0f} | "
                         f"{c.vs_best.estimate:+.4f} [{c.vs_best.low:+.4f}, "
                         f"{c.vs_best.high:+.4f}] | {mark} |")
        return "\n".join(lines) + "\n"


def _episode_key(r: Record) -> tuple:
    return (r.model, r.benchmark, r.problem, r.seed, float(r.beta))


def select_best(candidates: Mapping[str, Sequence[Record]], n_resamples: int = N_RESAMPLES,
                seed: int = SEED) -> Selection:
    """Choose among candidates scored on the same episodes by the protocol's objective.

    Each candidate's per-episode objectives (:func:`protocol.episode_objectives`) are
    averaged per problem (over seeds and betas), then bootstrapped over problems within
    each (model, benchmark) cell. The top candidate has the highest mean objective; every
    candidate whose paired difference to it has an interval containing 0 ties with it,
    and among the ties the one with the fewest mean tokens is chosen.
    """
    from .protocol import episode_objectives

    if not candidates:
        raise StatsError("no candidates to select from")
    keys = None
    per: dict[str, tuple[list[np.ndarray], list[np.ndarray], float, float]] = {}
    for name, recs in candidates.items():
        recs = sorted(recs, key=_episode_key)
        if not recs:
            raise StatsError(f"candidate {name!r} has no episodes")
        k = [_episode_key(r) for r in recs]
        if keys is None:
            keys = k
        elif k != keys:
            raise StatsError(f"candidate {name!r} was not scored on the same episodes as "
                             f"{next(iter(candidates))!r}")
        obj = np.asarray(episode_objectives(recs))
        tok = np.asarray([float(r.tokens) for r in recs])
        cells: dict[tuple, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, x in enumerate(k):
            cells[x[:2]][x[2]].append(i)
        strata_o = [np.asarray([obj[ix].mean() for ix in probs.values()])
                    for probs in cells.values()]
        strata_t = [np.asarray([tok[ix].mean() for ix in probs.values()])
                    for probs in cells.values()]
        per[name] = (strata_o, strata_t, float(obj.mean()), float(tok.mean()))
    names = list(per)
    objs = {n: _pooled_mean_interval(per[n][0], per[n][2], n_resamples, seed) for n in names}
    top = max(names, key=lambda n: (per[n][2], -per[n][3]))
    out = []
    for n in names:
        diff = [a - b for a, b in zip(per[n][0], per[top][0], strict=True)]
        vs = _pooled_mean_interval(diff, per[n][2] - per[top][2], n_resamples, seed)
        out.append(Candidate(n, objs[n], per[n][3], vs, n == top or not vs.excludes(0.0)))
    ties = [c for c in out if c.within_noise]
    best = min(ties, key=lambda c: (c.mean_tokens, -c.objective.estimate)).name
    return Selection(best, top, tuple(out))


def _pooled_mean_interval(strata: Sequence[np.ndarray], estimate: float, n_resamples: int,
                          seed: int) -> Interval:
    """Interval of a mean over problems pooled across cells (weights: problems per cell),
    resampling problems within each cell."""
    sizes = np.asarray([len(s) for s in strata], dtype=float)
    w = sizes / sizes.sum()
    rng = np.random.default_rng(seed)
    total = np.zeros(n_resamples)
    for s, wi in zip(strata, w, strict=True):
        total += wi * s[rng.integers(0, len(s), size=(n_resamples, len(s)))].mean(axis=1)
    lo, hi = _percentile(total)
    return Interval(estimate, min(float(lo), estimate), max(float(hi), estimate))
