"""Reference curves per (model, benchmark): SC@k and pass@k for k = 1..N.

Both read whole branches in each seed's order through the replay core
(:meth:`EpisodeBatch.read`, so tokens are charged exactly as for SC@64): SC@k answers the
majority of the first k final answers (:func:`autotts_gym.voting.batch_majority`, the
vote SC@64 uses); pass@k (the oracle) is right when any of the first k is right. Each
point carries a 95% problem-level interval (:func:`autotts_gym.stats.mean_intervals`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .core import EpisodeBatch
from .stats import mean_intervals
from .store import ReplaySet, ReplayStore
from .voting import batch_majority

CURVE_FIELDS = ["model", "benchmark", "curve", "k", "accuracy_pct", "accuracy_ci_low",
                "accuracy_ci_high", "mean_tokens", "n_problems", "n_seeds"]


def set_curves(rs: ReplaySet, seeds: Iterable[int], max_k: int | None = None
               ) -> list[dict]:
    """SC@k and pass@k rows (k = 1..max_k, default every branch) of one replay set."""
    seeds = [int(s) for s in seeds]
    batch = EpisodeBatch.from_seeds(rs.problems, seeds)
    width = int(batch.n_branches.min())
    K = min(max_k or width, width)
    n_ids = max(len(t.vocab) for t in batch.tables)
    answers = np.full((batch.n_rows, K), -1, dtype=np.int64)
    tokens = np.zeros((batch.n_rows, K))
    every = np.ones(batch.n_rows, dtype=bool)
    for k in range(K):
        _, answers[:, k] = batch.read(every)
        tokens[:, k] = batch.tokens
    hit = batch.correct(answers.T).T  # (E, K): the k-th branch's final answer is right
    sc = np.stack([batch.correct(batch_majority(answers[:, :k + 1], n_ids)[0])
                   for k in range(K)], axis=1)
    passk = np.logical_or.accumulate(hit, axis=1)
    P, S = len(rs.problems), len(seeds)

    def per_problem(x: np.ndarray) -> np.ndarray:  # (E, K) -> (K, P): seed means
        return x.reshape(P, S, K).mean(axis=1).T

    tok = per_problem(tokens).mean(axis=1)
    rows = []
    for name, values in (("SC@k", sc), ("pass@k", passk)):
        for k, iv in enumerate(mean_intervals(per_problem(values.astype(float)))):
            rows.append({"model": rs.model, "benchmark": rs.benchmark, "curve": name,
                         "k": k + 1, "accuracy_pct": 100 * iv.estimate,
                         "accuracy_ci_low": 100 * iv.low, "accuracy_ci_high": 100 * iv.high,
                         "mean_tokens": float(tok[k]), "n_problems": P, "n_seeds": S})
    return rows


def reference_curves(store: ReplayStore, models=None, benchmarks=None,
                     seeds: Iterable[int] = range(100), max_k: int | None = None
                     ) -> list[dict]:
    """:func:`set_curves` for every selected replay set."""
    seeds = list(seeds)
    return [row for rs in store.select(models, benchmarks)
            for row in set_curves(rs, seeds, max_k)]


def curves_csv(rows: list[dict]) -> str:
    out = [",".join(CURVE_FIELDS)]
    for r in rows:
        out.append(",".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k])
                            for k in CURVE_FIELDS))
    return "\n".join(out) + "\n"
