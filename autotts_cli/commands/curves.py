"""``autotts curves``: SC@k and pass@k for k = 1..N per (model, benchmark), with intervals."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("curves", help="reference curves: SC@k and pass@k (k = 1..N)")
    p.add_argument("--replay-dir", help="store or AutoTTS JSON folder (default: see README)")
    p.add_argument("--models", help="comma-separated models (default: all)")
    p.add_argument("--benchmarks", help="comma-separated benchmarks (default: all)")
    p.add_argument("--seeds", default="0-99", help="branch-order seeds, e.g. 0-99")
    p.add_argument("--max-k", type=int, default=None, help="largest k (default: all branches)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.set_defaults(func=cmd_curves)


def cmd_curves(args) -> int:
    from autotts_gym.curves import curves_csv, reference_curves
    from autotts_gym.data import describe_source
    from autotts_gym.harness import seeds_arg
    from autotts_gym.report import plot_frontier, write_text
    from autotts_gym.stats import INTERVAL_METHOD

    from .evaluation import open_store_verbose

    if args.max_k is not None and args.max_k < 1:
        raise ValueError(f"--max-k {args.max_k}: must be at least 1")
    store = open_store_verbose(args.replay_dir)
    rows = reference_curves(store, args.models, args.benchmarks, seeds_arg(args.seeds),
                            args.max_k)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "curves.csv", curves_csv(rows))
    plot_frontier([], args.out / "curves.png", curves=rows,
                  caption=f"Data: {describe_source(store)}. Bands: {INTERVAL_METHOD}.")
    top = max((r["k"] for r in rows), default=0)
    for r in rows:
        if r["k"] in (1, 4, 16, 64, top):
            print(f"{r['model']:<11} {r['benchmark']:<7} {r['curve']:<6} k={r['k']:<3} "
                  f"{r['accuracy_pct']:6.2f} [{r['accuracy_ci_low']:.1f}, "
                  f"{r['accuracy_ci_high']:.1f}]  {r['mean_tokens']:>12,.0f} tokens")
    print(f"written to {args.out}/curves.csv, curves.png", file=sys.stderr)
    return 0
