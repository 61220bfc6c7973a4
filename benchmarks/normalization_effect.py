"""How much merging spellings of one value changes accuracy on the real data.

    AUTOTTS_SHARED=/path/to/shared python benchmarks/normalization_effect.py \
        [--controllers sc64:0.5,cmc:0.5,cmc:1] [--seeds 100] [--normalizers math,math-verify]

Imports the real AutoTTS release once per normalizer (``none``: answers as stored), scores
each controller on seeds 0..N-1 of every set, and prints accuracy per set with the change
against ``none`` and its 95% interval: a paired bootstrap over problems (each problem's
accuracy over the seeds, with and without the normalizer), so the interval reflects which
problems are in the benchmark, not only the seeds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from common import SHARED
from scipy.stats import bootstrap

from autotts_gym.collect.normalize import get_vocab_normalizer
from autotts_gym.harness import evaluate_many
from autotts_gym.importer import import_sources
from autotts_gym.store import ReplayStore


def store(normalizer: str) -> tuple[ReplayStore, int]:
    """The real data imported through a normalizer, and its number of timeouts."""
    out = Path(tempfile.mkdtemp(prefix=f"autotts-norm-{normalizer}-"))
    norm = get_vocab_normalizer(normalizer)
    import_sources(SHARED / "replay" / "autotts", out, normalizer=norm,
                   normalizer_name=normalizer)
    return ReplayStore(out), int(getattr(norm, "timeouts", 0))


def per_problem(results) -> dict[tuple, dict[int, float]]:
    """(model, benchmark, method) -> problem -> accuracy % over seeds."""
    acc: dict[tuple, dict[int, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in results.records:
        acc[(r.model, r.benchmark, f"{r.method}@{r.beta:g}")][r.problem].append(r.correct)
    return {k: {p: 100 * float(np.mean(v)) for p, v in d.items()} for k, d in acc.items()}


def interval(diffs: np.ndarray) -> tuple[float, float]:
    if np.allclose(diffs, diffs[0]):
        return float(diffs[0]), float(diffs[0])
    ci = bootstrap((diffs,), np.mean, n_resamples=10_000, confidence_level=0.95,
                   method="percentile", random_state=0).confidence_interval
    return float(ci.low), float(ci.high)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--controllers", default="sc64:0.5,cmc:0.5,cmc:1")
    ap.add_argument("--normalizers", default="math,math-verify")
    ap.add_argument("--seeds", type=int, default=100)
    args = ap.parse_args()
    entries = [(name, (float(beta),), name) for name, beta in
               (item.split(":") for item in args.controllers.split(","))]
    norms = ["none", *args.normalizers.split(",")]
    acc, vocab = {}, {}
    for norm in norms:
        t0 = time.perf_counter()
        st, timeouts = store(norm)
        t_import = time.perf_counter() - t0
        vocab[norm] = sum(len(p.vocab) for rs in st.select() for p in rs.problems)
        acc[norm] = per_problem(evaluate_many(entries, st, seeds=range(args.seeds),
                                              progress=False))
        print(f"{norm}: import {t_import:.0f} s, {vocab[norm]:,} vocabulary strings, "
              f"{timeouts} timeouts", flush=True)
    print()
    head = " | ".join(f"with {n} | change [95% CI]" for n in norms[1:])
    print(f"| model | benchmark | method | as stored | {head} |")
    print("|---|---|---|---|" + "---|---|" * (len(norms) - 1))
    pooled: dict[tuple[str, str], list[float]] = defaultdict(list)
    for key in sorted(acc["none"]):
        base = acc["none"][key]
        probs = sorted(base)
        cells = []
        for norm in norms[1:]:
            d = np.array([acc[norm][key][p] - base[p] for p in probs])
            pooled[(key[2], norm)].extend(d)
            lo, hi = interval(d)
            cells.append(f"{np.mean([acc[norm][key][p] for p in probs]):.2f} | "
                         f"{d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]")
        print(f"| {key[0]} | {key[1]} | {key[2]} | {np.mean(list(base.values())):.2f} | "
              + " | ".join(cells) + " |")
    print()
    for (method, norm), d in sorted(pooled.items()):
        d = np.asarray(d)
        lo, hi = interval(d)
        print(f"{method} with {norm}: mean change {d.mean():+.2f} points [{lo:+.2f}, "
              f"{hi:+.2f}] over {len(d)} problems (9 sets); problems changed: "
              f"{int((d != 0).sum())}")


if __name__ == "__main__":
    main()
