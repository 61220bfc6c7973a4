"""``autotts train`` and ``autotts compare``: learned policies beside controllers."""

from __future__ import annotations

import sys
from pathlib import Path

from autotts_gym.reproduce import TABLE1_METHODS

from .. import args as args_
from .evaluation import _betas, add_reference_arg


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
    add_reference_arg(p)
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


def cmd_compare(args) -> int:
    from autotts_gym.controllers import load_controllers
    from autotts_gym.protocol import Split
    from autotts_gym.report import average_markdown, data_note
    from autotts_rl.train import load_policy

    from .evaluation import baseline_entries, open_store_verbose, run_with_reference

    store = open_store_verbose(args.replay_dir)
    split = Split.for_benchmarks(store.benchmarks(), args.search, args.held_out)
    args.benchmarks = args.benchmarks or list(split.require_held_out())
    entries = []
    for spec in args.policy:
        pol = load_policy(spec)
        entries.append((pol, args.betas, pol.name))
    names = [c for c in args.controllers.split(",") if c]
    table1 = {ctl for ctl, _, _ in TABLE1_METHODS}
    others = [c for c in names if c not in table1]
    loaded = dict(zip(others, load_controllers(others, args.controller_config), strict=True))
    entries += baseline_entries([c for c in names if c in table1], args.betas, store, args)
    entries += [(loaded[c], args.betas, None) for c in others]
    results = run_with_reference(entries, store, args, list(args.seeds))
    paths = results.write(args.out)
    print(data_note(results) + "Average over the compared cells:\n\n"
          + average_markdown(results.average()))
    print(f"written to {args.out}/ ({', '.join(p.name for p in paths.values())})")
    return 0
