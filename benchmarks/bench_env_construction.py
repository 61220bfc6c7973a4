"""AutoTTS-v0 construction time, and whether it grows with the number of problems.

    python benchmarks/bench_env_construction.py [--repeat 5]

On the real data (imported into a temporary store) and on the bundled synthetic store,
times (a) the first env built on a freshly opened store (replay sets loaded from disk,
included), (b) a second env on the same store, each over all nine replay sets and over one
set. Medians over ``--repeat`` fresh stores; one core.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from common import real_store_dir

from autotts_gym.data import bundled_store_dir
from autotts_gym.env import AutoTTSEnv
from autotts_gym.store import ReplayStore


def _time(fn) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(root, repeat: int, **sel) -> tuple[float, float, float]:
    """(store load, first env excluding the load, second env) in seconds, medians."""
    load, first, second = [], [], []
    for _ in range(repeat):
        store = ReplayStore(root)

        def make(store: ReplayStore = store) -> AutoTTSEnv:
            return AutoTTSEnv(store=store, max_width=16, **sel)

        load.append(_time(lambda s=store: s.select(sel.get("model"), sel.get("benchmark"))))
        first.append(_time(make))
        second.append(_time(make))
    return statistics.median(load), statistics.median(first), statistics.median(second)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    for label, root in (("real", real_store_dir()), ("synthetic", bundled_store_dir())):
        n = sum(len(rs) for rs in ReplayStore(root))
        for sel_label, sel in (("all sets", {}),
                               ("one set", {"model": "Qwen3-4B", "benchmark": "aime24"})):
            load, first, second = measure(root, args.repeat, **sel)
            print(f"{label:9s} ({n} problems) {sel_label:8s}: load {1e3 * load:7.1f} ms, "
                  f"first env {1e3 * first:7.1f} ms, next env {1e3 * second:6.2f} ms")


if __name__ == "__main__":
    main()
