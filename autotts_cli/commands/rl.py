"""``autotts train`` and ``autotts compare``: learned policies beside controllers."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from .. import args as args_
from .evaluation import TABLE1_METHODS, _betas


def register(sub) -> None:
    p = sub.add_parser("train", help="train MaskablePPO on AutoTTS-v0 (search set only)")
    p.add_argument("--config", type=Path, help="YAML training config (see docs/rl.md)")
    p.add_argument("--out", required=True, type=Path, help="run directory, e.g. runs/NAME")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--replay-dir", help="overrides the config's replay_dir")
    _split_flags(p)
    p.set_defaults(func=cmd_train, out_policy="check")

    p = sub.add_parser("compare", help="RL policies and controllers on the same episodes")
    p.add_argument("--policy", action="append", default=[],
                   help="rl:runs/NAME/best.zip (repeatable)")
    p.add_argument("--controllers", default="sc64,cmc",
                   help="comma-separated controllers (built-in names or files)")
    p.add_argument("--controller-config", metavar="KEY=VALUE,...",
                   help="config of the release-style classes (FILE.py:CLASS), beside beta")
    p.add_argument("--betas", type=_betas, default=_betas("0,0.25,0.5,0.75,1"),
                   help="betas for the policies and beta-aware controllers")
    p.add_argument("--benchmarks", default=None, type=args_.names,
                   help="benchmarks to compare on (default: the split's held-out ones)")
    _split_flags(p)
    p.add_argument("--models", default=None, type=args_.names,
                   help="comma-separated models (default: all)")
    p.add_argument("--seeds", default="0-99", type=args_.seeds,
                   help="branch-order seeds, e.g. 0-99 or 0,1,5")
    p.add_argument("--replay-dir", help="store or AutoTTS JSON folder (default: see README)")
    p.add_argument("--workers", type=args_.positive_int, default=None,
                   help="processes (default: all cores)")
    p.add_argument("--out", required=True, type=Path,
                   help="output directory (checked and locked before the work starts)")
    p.set_defaults(func=cmd_compare, out_policy="lock")


def _split_flags(p) -> None:
    p.add_argument("--search", type=args_.names, default=None,
                   help="comma-separated search benchmarks (default: aime24)")
    p.add_argument("--held-out", type=args_.names, default=None,
                   help="comma-separated held-out benchmarks (default: aime25,hmmt25 where "
                        "the store has them, else every other benchmark)")


def cmd_train(args) -> int:
    from autotts_rl.train import TrainConfig, train

    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    if args.replay_dir:
        cfg.replay_dir = args.replay_dir
    if args.search is not None:
        cfg.search = args.search
    if args.held_out is not None:
        cfg.held_out = args.held_out
    if not args.resume and args.config is None:
        print("no --config given: training with the defaults of TrainConfig", file=sys.stderr)
    train(cfg, args.out, resume=args.resume)
    print(f"trained; policies in {args.out}/best.zip and {args.out}/final.zip")
    return 0


def held_out_average(rows: list[dict]) -> list[dict]:
    """Per (method, beta): accuracy and tokens averaged over the (model, benchmark) cells,
    tokens also relative to SC@64 (mean of per-cell ratios)."""
    sc = {(r["model"], r["benchmark"]): r for r in rows if r["method"] == "SC@64"}
    acc = defaultdict(list)
    for r in rows:
        ref = sc.get((r["model"], r["benchmark"]))
        acc[(r["method"], r["beta"])].append(
            (r["accuracy_pct"], r["mean_tokens"],
             r["mean_tokens"] / ref["mean_tokens"] if ref else float("nan"),
             r["accuracy_pct"] - ref["accuracy_pct"] if ref else float("nan")))
    out = []
    for (m, b), v in sorted(acc.items()):
        n = len(v)
        out.append({"method": m, "beta": b, "cells": n,
                    "accuracy_pct": sum(x[0] for x in v) / n,
                    "mean_tokens": sum(x[1] for x in v) / n,
                    "tokens_vs_sc64": sum(x[2] for x in v) / n,
                    "accuracy_minus_sc64": sum(x[3] for x in v) / n})
    return out


def cmd_compare(args) -> int:
    from autotts_gym.controllers import load_controllers
    from autotts_gym.data import describe_source, open_store
    from autotts_gym.harness import evaluate_many, seeds_arg
    from autotts_gym.protocol import Split
    from autotts_gym.report import write_text
    from autotts_rl.train import load_policy

    store = open_store(args.replay_dir)
    print(describe_source(store), file=sys.stderr)
    split = Split.for_benchmarks(store.benchmarks(), args.search, args.held_out)
    benchmarks = args.benchmarks or list(split.require_held_out())
    entries = []
    for spec in args.policy:
        pol = load_policy(spec)
        entries.append((pol, args.betas, pol.name))
    fixed = {ctl: (beta, name) for ctl, beta, name in TABLE1_METHODS if ctl != "cmc"}
    names = [c for c in args.controllers.split(",") if c]
    others = [c for c in names if c not in fixed]
    loaded = dict(zip(others, load_controllers(others, args.controller_config), strict=True))
    for ctl in names:
        if ctl in fixed:
            entries.append((ctl, (fixed[ctl][0],), fixed[ctl][1]))
        else:
            entries.append((loaded[ctl], args.betas, None))
    if not any(name == "SC@64" for _, _, name in entries):
        entries.append(("sc64", (0.5,), "SC@64"))
    results = evaluate_many(entries, store, args.models, benchmarks,
                            seeds_arg(args.seeds), args.workers)
    results.write(args.out)
    avg = held_out_average(results.summary())
    lines = ["| method | beta | cells | accuracy % | tokens | tokens vs SC@64 | "
             "accuracy - SC@64 (pts) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['beta']:g} | {r['cells']} | {r['accuracy_pct']:.2f} | "
              f"{r['mean_tokens']:,.0f} | {100 * r['tokens_vs_sc64']:.1f}% | "
              f"{r['accuracy_minus_sc64']:+.2f} |" for r in avg]
    text = "\n".join(lines) + "\n"
    write_text(args.out / "average.md", text)
    print(text)
    print(f"written to {args.out}/ (summary.md, summary.csv, frontier.png, average.md)")
    return 0
