"""``autotts train`` and ``autotts compare``: learned policies beside controllers."""

from __future__ import annotations

import sys
from pathlib import Path

from autotts_gym.harness import betas_arg

from .evaluation import add_reference_arg


def register(sub) -> None:
    p = sub.add_parser("train", help="train MaskablePPO on AutoTTS-v0 (search set only)")
    p.add_argument("--config", type=Path, help="YAML training config (see docs/rl.md)")
    p.add_argument("--out", required=True, type=Path, help="run directory, e.g. runs/NAME")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--replay-dir", help="overrides the config's replay_dir")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("compare", help="RL policies and controllers on the same episodes")
    p.add_argument("--policy", action="append", default=[],
                   help="rl:runs/NAME/best.zip (repeatable)")
    p.add_argument("--controllers", default="sc64,cmc",
                   help="comma-separated controllers (built-in names or files)")
    p.add_argument("--betas", type=betas_arg, default=betas_arg("0,0.25,0.5,0.75,1"),
                   help="betas for the policies and beta-aware controllers")
    p.add_argument("--benchmarks", default="aime25,hmmt25",
                   help="benchmarks to compare on (default: the held-out ones)")
    p.add_argument("--models", default=None)
    p.add_argument("--seeds", default="0-99")
    p.add_argument("--replay-dir")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--out", required=True, type=Path)
    add_reference_arg(p)
    p.set_defaults(func=cmd_compare)


def cmd_train(args) -> int:
    from autotts_rl.train import TrainConfig, train

    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    if args.replay_dir:
        cfg.replay_dir = args.replay_dir
    if not args.resume and args.config is None:
        print("no --config given: training with the defaults of TrainConfig", file=sys.stderr)
    train(cfg, args.out, resume=args.resume)
    print(f"trained; policies in {args.out}/best.zip and {args.out}/final.zip")
    return 0


def cmd_compare(args) -> int:
    from autotts_gym.harness import seeds_arg
    from autotts_gym.report import average_markdown, data_note
    from autotts_rl.train import load_policy

    from .evaluation import baseline_entries, open_store_verbose, run_with_reference

    store = open_store_verbose(args.replay_dir)
    entries = []
    for spec in args.policy:
        pol = load_policy(spec)
        entries.append((pol, args.betas, pol.name))
    entries += baseline_entries(args.controllers, args.betas, store, args)
    results = run_with_reference(entries, store, args, seeds_arg(args.seeds))
    paths = results.write(args.out)
    avg = results.average()
    print(data_note(results) + "Average over the compared cells:\n\n" + average_markdown(avg))
    print(f"written to {args.out}/ ({', '.join(p.name for p in paths.values())})")
    return 0
