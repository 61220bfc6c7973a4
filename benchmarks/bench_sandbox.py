"""Sandboxed vs in-process scoring of the same controller code on the same episodes.

    python benchmarks/bench_sandbox.py [--controller cmc|offline|FILE] [--seeds 0-4]
        [--models all] [--repeat 3] [--lanes 128] [--real]

The work is one discovery round's evaluation (the search set, every model, 5 seeds,
betas 0, 0.5, 1) on the bundled synthetic store, or with ``--real`` on the paper's replay
data (``../shared/replay/autotts``, imported into a temporary store). In-process: the
harness with one worker and one session per episode (the path untrusted code would take
without a jail).
Sandboxed: the same harness through one jail (:mod:`autotts_discovery.sandbox`). Reports
wall time (best of ``--repeat``), CPU time (the evaluator plus the jailed child, as the
child reports it), session calls, and the ratios: of the best times, and per repeat (each
sandboxed run over the in-process run just before it, which follows the machine's drift);
the records are checked equal.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from autotts_discovery.explorer import START, render
from autotts_discovery.sandbox import Limits, evaluate_in_sandbox
from autotts_gym.data import bundled_store_dir
from autotts_gym.harness import evaluate, seeds_arg
from autotts_gym.store import ReplayStore

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--controller", default="cmc", help="cmc, offline or a .py file")
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--models", default=None, help="comma-separated (default: all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lanes", type=int, default=Limits().lanes)
    ap.add_argument("--real", action="store_true", help="the real replay data, not synthetic")
    args = ap.parse_args()
    if args.controller == "cmc":
        path = REPO / "autotts_gym" / "baselines" / "cmc.py"
    elif args.controller == "offline":
        path = Path(tempfile.mkdtemp()) / "offline_start.py"
        path.write_text(render(START))
    else:
        path = Path(args.controller)
    code = path.read_text()
    if args.real:
        from common import real_store_dir

        store = ReplayStore(real_store_dir())
    else:
        store = ReplayStore(bundled_store_dir())
    kw = {"models": args.models.split(",") if args.models else None,
          "benchmarks": "aime24", "seeds": seeds_arg(args.seeds), "betas": (0.0, 0.5, 1.0)}
    best_in = best_sb = (float("inf"), 0.0)
    ratios = []  # per repeat: the sandboxed run over the in-process run just before it
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        ref = evaluate(str(path), store, workers=1, fast=False, progress=False, **kw)
        in_wall = time.perf_counter() - t
        best_in = min(best_in, (in_wall, time.process_time() - c))
        t, c = time.perf_counter(), time.process_time()
        res = evaluate_in_sandbox(code, store, trace=False, limits=Limits(lanes=args.lanes),
                                  **kw)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        assert res.ok, res.message
        best_sb = min(best_sb, (wall, cpu + (res.jail.get("child_cpu_seconds") or 0.0)))
        ratios.append(wall / in_wall)
    def key(r):
        return (r.model, r.problem, r.seed, r.beta)

    assert {key(r): (r.answer, r.tokens, r.steps) for r in ref.records} == \
        {key(r): (r.answer, r.tokens, r.steps) for r in res.results.records}
    calls = sum(r.steps for r in ref.records)
    print(f"{'real' if args.real else 'synthetic'} store, "
          f"controller {path.name}: {len(ref.records)} episodes, {calls:,} session calls, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"in-process: {best_in[0]:.2f} s wall, {best_in[1]:.2f} s CPU")
    print(f"sandboxed:  {best_sb[0]:.2f} s wall, {best_sb[1]:.2f} s CPU (evaluator + jail)")
    print(f"ratio sandboxed / in-process: wall {best_sb[0] / best_in[0]:.2f}x, "
          f"CPU {best_sb[1] / best_in[1]:.2f}x")
    print(f"paired ratios (each sandboxed run over the in-process run before it): median "
          f"{statistics.median(ratios):.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x "
          f"over {len(ratios)}")


if __name__ == "__main__":
    main()
