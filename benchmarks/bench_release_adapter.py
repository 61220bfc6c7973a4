"""CPU time of release-style controllers through the adapter, beside the native baselines.

    python benchmarks/bench_release_adapter.py [MODEL BENCHMARK]

One process, per-episode path (one session per episode), 100 seeds of one replay set
(default Qwen3-0.6B aime25): the project's release-style Table 1 methods
(tests/fixtures/release_baselines.py) through autotts_gym.release, and the native
controllers. Prints seconds per method, the ratio, and whether every episode agreed.
"""

from __future__ import annotations

import sys
import time

from common import REPO, real_store_dir

from autotts_gym.harness import evaluate
from autotts_gym.store import ReplayStore

FIXTURE = REPO / "tests" / "fixtures" / "release_baselines.py"
METHODS = [("SelfConsistency", "sc64", 0.5), ("AdaptiveConsistency", "asc", 0.5),
           ("EarlyStoppingConsistency", "esc", 0.5), ("ParallelProbe", "parallel_probe", 0.5),
           ("ConfidenceMomentum", "cmc", 0.5), ("ConfidenceMomentum", "cmc", 1.0)]


def _timed(ctl, store, kw):
    t0 = time.process_time()
    res = evaluate(ctl, store, **kw)
    return res, time.process_time() - t0


def main() -> None:
    model, bench = sys.argv[1:3] if len(sys.argv) >= 3 else ("Qwen3-0.6B", "aime25")
    store = ReplayStore(real_store_dir())
    store.load(model, bench)
    total = [0.0, 0.0]
    for cls, native, beta in METHODS:
        kw = {"models": model, "benchmarks": bench, "seeds": range(100), "betas": (beta,),
              "workers": 1, "fast": False, "progress": False}
        mine, t_mine = _timed(f"{FIXTURE}:{cls}", store, kw)
        ref, t_ref = _timed(native, store, kw)
        same = all((a.answer, a.tokens) == (b.answer, b.tokens)
                   for a, b in zip(mine.records, ref.records, strict=True))
        total[0] += t_mine
        total[1] += t_ref
        print(f"{cls:26s} beta {beta}: adapter {t_mine:6.2f} s, native {t_ref:6.2f} s "
              f"(x{t_mine / t_ref:.1f}), episodes equal: {same}")
    print(f"total: adapter {total[0]:.2f} s, native {total[1]:.2f} s CPU "
          f"({model} {bench}, 3000 episodes per method)")


if __name__ == "__main__":
    main()
