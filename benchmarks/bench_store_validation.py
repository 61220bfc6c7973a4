"""What validating a store on read costs: loading all replay sets with the checks of
``store.validate_arrays`` and without them, interleaved (median of --repeat runs).

    python benchmarks/bench_store_validation.py [--repeat 15]

Uses the real data when found (``$AUTOTTS_SHARED`` or ``../shared``), else the bundled
synthetic store (same shapes).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from autotts_gym import store

try:
    from common import SHARED, real_store_dir
except ImportError:  # run from another folder
    from benchmarks.common import SHARED, real_store_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    if (SHARED / "replay" / "autotts").is_dir():
        root, kind = real_store_dir(), "real"
    else:
        from autotts_gym.data import bundled_store_dir

        root, kind = Path(bundled_store_dir()), "synthetic"
    files = sorted(root.glob(f"*/*{store.STORE_SUFFIX}"))
    checks = store.validate_arrays

    def load(validate: bool) -> float:
        store.validate_arrays = checks if validate else (lambda *a: None)
        t = time.perf_counter()
        for f in files:
            store.read_replay_set(f)
        store.validate_arrays = checks
        return time.perf_counter() - t

    on, off = [], []
    for _ in range(args.repeat):
        off.append(load(False))
        on.append(load(True))
    a, b = statistics.median(off), statistics.median(on)
    print(f"{kind} data, {len(files)} sets; median of {args.repeat} interleaved runs")
    print(f"load without validation: {a * 1e3:7.1f} ms")
    print(f"load with validation:    {b * 1e3:7.1f} ms  (+{(b - a) * 1e3:.1f} ms, "
          f"{(b - a) / len(files) * 1e3:.2f} ms per set)")


if __name__ == "__main__":
    main()
